#include "protocol/matching.hpp"

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
  bool any = kind == headers_match_kind::any
             || kind == headers_match_kind::any_with_x;
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
