#pragma once

// A slow, obviously correct topic matcher that tests and the matching fuzz
// target compare protocol::topic_match and topic_trie against: split into
// words, then try every way '#' can absorb words (memoised, so it stays
// polynomial).

#include <string_view>
#include <vector>

namespace flotilla::test {

/// Splits a topic into its words ("" has none; "a." has "a" and "").
inline std::vector<std::string_view> topic_words(std::string_view s) {
  std::vector<std::string_view> out;
  if (s.empty())
    return out;
  size_t at = 0;
  for (;;) {
    auto dot = s.find('.', at);
    if (dot == std::string_view::npos) {
      out.push_back(s.substr(at));
      return out;
    }
    out.push_back(s.substr(at, dot - at));
    at = dot + 1;
  }
}

/// Returns true if `pattern` matches `key` under AMQP topic rules.
inline bool reference_topic_match(std::string_view pattern,
                                  std::string_view key) {
  auto p = topic_words(pattern);
  auto k = topic_words(key);
  std::vector<signed char> memo((p.size() + 1) * (k.size() + 1), -1);
  auto match = [&](auto& self, size_t i, size_t j) -> bool {
    auto& m = memo[i * (k.size() + 1) + j];
    if (m >= 0)
      return m != 0;
    bool r;
    if (i == p.size())
      r = j == k.size();
    else if (p[i] == "#")
      r = self(self, i + 1, j) || (j < k.size() && self(self, i, j + 1));
    else
      r = j < k.size() && (p[i] == "*" || p[i] == k[j])
          && self(self, i + 1, j + 1);
    m = r ? 1 : 0;
    return r;
  };
  return match(match, 0, 0);
}

} // namespace flotilla::test
