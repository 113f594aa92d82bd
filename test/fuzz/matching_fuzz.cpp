// topic_match against a straightforward recursive reference (memoised, so it
// stays polynomial). Input: pattern, a 0 byte, routing key; both use a tiny
// alphabet after mapping so that words collide often.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/matching.hpp"

using namespace flotilla::protocol;

namespace {

std::vector<std::string_view> words(std::string_view s) {
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

struct reference {
  const std::vector<std::string_view>& p;
  const std::vector<std::string_view>& k;
  std::vector<signed char> memo; // -1 unknown

  reference(const std::vector<std::string_view>& p,
            const std::vector<std::string_view>& k)
    : p(p), k(k), memo((p.size() + 1) * (k.size() + 1), -1) {
  }

  bool match(size_t i, size_t j) {
    auto& m = memo[i * (k.size() + 1) + j];
    if (m >= 0)
      return m != 0;
    bool r;
    if (i == p.size())
      r = j == k.size();
    else if (p[i] == "#")
      r = match(i + 1, j) || (j < k.size() && match(i, j + 1));
    else
      r = j < k.size() && (p[i] == "*" || p[i] == k[j]) && match(i + 1, j + 1);
    m = r ? 1 : 0;
    return r;
  }
};

char map_char(uint8_t c) {
  static const char alphabet[] = {'a', 'b', '.', '*', '#', '.', 'a', 'x'};
  return alphabet[c % sizeof(alphabet)];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 512)
    return 0;
  std::string pattern;
  std::string key;
  bool in_key = false;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && !in_key) {
      in_key = true;
      continue;
    }
    (in_key ? key : pattern).push_back(map_char(data[i]));
  }
  auto pw = words(pattern);
  auto kw = words(key);
  reference ref{pw, kw};
  FUZZ_CHECK(topic_match(pattern, key) == ref.match(0, 0));
  // "#" matches everything, and every key matches itself read as a pattern
  // ("*" and "#" each match themselves as one word).
  FUZZ_CHECK(topic_match("#", key));
  FUZZ_CHECK(topic_match(key, key));
  return 0;
}
