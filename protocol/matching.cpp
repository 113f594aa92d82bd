#include "protocol/matching.hpp"

#include <algorithm>

namespace flotilla::protocol {

// -- topic --------------------------------------------------------------------

namespace {

// A word position: the offset of a word's first byte, or npos past the last
// word. The empty string has no words; "a." has "a" and "" (offset 2).
constexpr size_t no_word = std::string_view::npos;

size_t first_word(std::string_view s) {
  return s.empty() ? no_word : 0;
}

size_t next_word(std::string_view s, size_t at) {
  auto dot = s.find('.', at);
  return dot == std::string_view::npos ? no_word : dot + 1;
}

std::string_view word_at(std::string_view s, size_t at) {
  auto dot = s.find('.', at);
  return s.substr(at, dot == std::string_view::npos ? dot : dot - at);
}

} // namespace

bool topic_match(std::string_view pattern, std::string_view routing_key) {
  // Wildcard matching over words with one backtrack point, as in glob
  // matching: '#' is glob '*', '*' is glob '?'. When a word fails to match we
  // let the most recent '#' swallow one more key word and retry from there;
  // earlier '#'s never need revisiting, so this is O(|pattern| * |key|).
  auto p = first_word(pattern);
  auto k = first_word(routing_key);
  auto hash_p = no_word; // the word after the last '#' seen
  auto hash_k = no_word; // key word that '#' would swallow next
  bool have_hash = false;
  while (k != no_word) {
    if (p != no_word) {
      auto pw = word_at(pattern, p);
      if (pw == "#") {
        have_hash = true;
        hash_p = next_word(pattern, p);
        hash_k = k;
        p = hash_p;
        continue;
      }
      if (pw == "*" || pw == word_at(routing_key, k)) {
        p = next_word(pattern, p);
        k = next_word(routing_key, k);
        continue;
      }
    }
    if (!have_hash)
      return false;
    hash_k = next_word(routing_key, hash_k);
    k = hash_k;
    p = hash_p;
  }
  while (p != no_word && word_at(pattern, p) == "#")
    p = next_word(pattern, p);
  return p == no_word;
}

// -- headers ------------------------------------------------------------------

namespace {

std::optional<int64_t> as_number(const field_value& v) {
  if (auto i = v.as_int())
    return i;
  if (auto* t = std::get_if<timestamp_value>(&v.value))
    return static_cast<int64_t>(t->seconds);
  return std::nullopt;
}

std::optional<double> as_floating(const field_value& v) {
  if (auto* f = std::get_if<float>(&v.value))
    return static_cast<double>(*f);
  if (auto* d = std::get_if<double>(&v.value))
    return *d;
  return std::nullopt;
}

bool values_match(const field_value& binding, const field_value& header) {
  if (auto a = as_number(binding)) {
    auto b = as_number(header);
    return b && *a == *b;
  }
  if (auto* a = binding.as_string()) {
    auto* b = header.as_string();
    return b != nullptr && *a == *b;
  }
  if (auto a = as_floating(binding)) {
    auto b = as_floating(header);
    return b && *a == *b;
  }
  return binding == header;
}

bool starts_with_x(std::string_view key) {
  return key.size() >= 2 && key[0] == 'x' && key[1] == '-';
}

} // namespace

std::optional<headers_match_kind>
headers_match_kind_of(const field_table& binding_arguments) {
  auto* v = binding_arguments.find("x-match");
  if (v == nullptr)
    return headers_match_kind::all;
  auto* s = std::get_if<std::string>(&v->value);
  if (s == nullptr)
    return std::nullopt;
  if (*s == "all")
    return headers_match_kind::all;
  if (*s == "any")
    return headers_match_kind::any;
  if (*s == "all-with-x")
    return headers_match_kind::all_with_x;
  if (*s == "any-with-x")
    return headers_match_kind::any_with_x;
  return std::nullopt;
}

const char* to_string(headers_match_kind k) {
  switch (k) {
    case headers_match_kind::all:
      return "all";
    case headers_match_kind::any:
      return "any";
    case headers_match_kind::all_with_x:
      return "all-with-x";
    case headers_match_kind::any_with_x:
      return "any-with-x";
  }
  return "all";
}

bool headers_match(const field_table& binding_arguments,
                   const field_table* message_headers) {
  auto kind = headers_match_kind_of(binding_arguments)
                .value_or(headers_match_kind::all);
  bool any
    = kind == headers_match_kind::any || kind == headers_match_kind::any_with_x;
  bool with_x = kind == headers_match_kind::all_with_x
                || kind == headers_match_kind::any_with_x;
  for (auto& [key, expected] : binding_arguments.entries) {
    if (with_x ? key == "x-match" : starts_with_x(key))
      continue;
    const field_value* actual
      = message_headers != nullptr ? message_headers->find(key) : nullptr;
    bool matched = actual != nullptr
                   && (expected.is_void() || values_match(expected, *actual));
    if (any && matched)
      return true;
    if (!any && !matched)
      return false;
  }
  return !any;
}

} // namespace flotilla::protocol

// -- topic_trie ---------------------------------------------------------------

namespace flotilla::protocol {

namespace {

template<class F>
void for_each_word(std::string_view s, F&& f) {
  for (auto at = first_word(s); at != no_word; at = next_word(s, at))
    f(word_at(s, at));
}

} // namespace

topic_trie::topic_trie() {
  clear();
}

void topic_trie::clear() {
  nodes_.clear();
  free_.clear();
  nodes_.emplace_back(); // root
  size_ = 0;
}

uint32_t topic_trie::new_node(uint32_t parent, std::string_view word) {
  uint32_t n;
  if (!free_.empty()) {
    n = free_.back();
    free_.pop_back();
    nodes_[n] = node{};
  } else {
    n = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  nodes_[n].parent = parent;
  nodes_[n].word.assign(word.data(), word.size());
  return n;
}

uint32_t topic_trie::child(uint32_t n, std::string_view word) const {
  auto& nd = nodes_[n];
  if (word == "*")
    return nd.star;
  if (word == "#")
    return nd.hash;
  auto i = nd.children.find(word);
  return i == nd.children.end() ? no_node : i->second;
}

bool topic_trie::insert(std::string_view pattern, uint64_t id) {
  uint32_t n = 0;
  for_each_word(pattern, [&](std::string_view w) {
    auto c = child(n, w);
    if (c == no_node) {
      c = new_node(n, w);
      auto& nd = nodes_[n];
      if (w == "*")
        nd.star = c;
      else if (w == "#")
        nd.hash = c;
      else
        nd.children.emplace(std::string{w}, c);
    }
    n = c;
  });
  auto& ids = nodes_[n].ids;
  auto i = std::lower_bound(ids.begin(), ids.end(), id);
  if (i != ids.end() && *i == id)
    return false;
  ids.insert(i, id);
  ++size_;
  return true;
}

bool topic_trie::erase(std::string_view pattern, uint64_t id) {
  uint32_t n = 0;
  bool found = true;
  for_each_word(pattern, [&](std::string_view w) {
    if (!found)
      return;
    n = child(n, w);
    found = n != no_node;
  });
  if (!found)
    return false;
  auto& ids = nodes_[n].ids;
  auto i = std::lower_bound(ids.begin(), ids.end(), id);
  if (i == ids.end() || *i != id)
    return false;
  ids.erase(i);
  --size_;
  prune(n);
  return true;
}

// Removes `n` and its ancestors while they hold nothing.
void topic_trie::prune(uint32_t n) {
  while (n != 0) {
    auto& nd = nodes_[n];
    if (!nd.ids.empty() || !nd.children.empty() || nd.star != no_node
        || nd.hash != no_node)
      return;
    auto parent = nd.parent;
    auto& p = nodes_[parent];
    if (p.star == n)
      p.star = no_node;
    else if (p.hash == n)
      p.hash = no_node;
    else
      p.children.erase(nd.word);
    nd = node{};
    free_.push_back(n);
    n = parent;
  }
}

// Depth-first walk over (node, key word index) states. A '#' node may be
// entered at any later index; `hash_low` remembers, per '#' node, the lowest
// index it was already entered from, because entering at i covers every
// index >= i. That keeps the walk polynomial for patterns like "#.#.#.#".
struct topic_trie::match_state {
  const topic_trie& trie;
  std::vector<std::string_view> words;
  std::vector<uint64_t>& out;
  std::vector<std::pair<uint32_t, size_t>> hash_low;

  void visit(uint32_t n, size_t i) {
    auto& nd = trie.nodes_[n];
    if (i == words.size()) {
      out.insert(out.end(), nd.ids.begin(), nd.ids.end());
      if (nd.hash != no_node)
        enter_hash(nd.hash, i);
      return;
    }
    if (!nd.children.empty()) {
      auto c = nd.children.find(words[i]);
      if (c != nd.children.end())
        visit(c->second, i + 1);
    }
    if (nd.star != no_node)
      visit(nd.star, i + 1);
    if (nd.hash != no_node)
      enter_hash(nd.hash, i);
  }

  // '#' node h swallows words i..j-1 for every j in [i, size].
  void enter_hash(uint32_t h, size_t i) {
    size_t end = words.size() + 1;
    auto it
      = std::find_if(hash_low.begin(), hash_low.end(), [h](const auto& e) {
          return e.first == h;
        });
    if (it != hash_low.end()) {
      if (it->second <= i)
        return;
      end = it->second;
      it->second = i;
    } else {
      hash_low.emplace_back(h, i);
    }
    for (size_t j = i; j < end; ++j)
      visit(h, j);
  }
};

void topic_trie::match(std::string_view routing_key,
                       std::vector<uint64_t>& out) const {
  if (size_ == 0)
    return;
  auto start = out.size();
  match_state st{*this, {}, out, {}};
  for_each_word(routing_key, [&](std::string_view w) {
    st.words.push_back(w);
  });
  st.visit(0, 0);
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
  out.erase(
    std::unique(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()),
    out.end());
}

} // namespace flotilla::protocol
