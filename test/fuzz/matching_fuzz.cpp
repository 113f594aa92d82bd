// topic_match against a straightforward recursive reference (memoised, so it
// stays polynomial), and topic_trie against topic_match. Input: segments
// separated by 0 bytes: pattern, routing key, then more patterns for the
// trie. Bytes map onto a tiny alphabet so that words collide often.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/matching.hpp"
#include "test/unit/protocol/topic_reference.hpp"

using namespace flotilla::protocol;

namespace {

char map_char(uint8_t c) {
  static const char alphabet[] = {'a', 'b', '.', '*', '#', '.', 'a', 'x'};
  return alphabet[c % sizeof(alphabet)];
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1024)
    return 0;
  std::vector<std::string> segments(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0)
      segments.emplace_back();
    else
      segments.back().push_back(map_char(data[i]));
  }
  auto& pattern = segments[0];
  std::string key = segments.size() > 1 ? segments[1] : std::string{};
  FUZZ_CHECK(topic_match(pattern, key)
             == flotilla::test::reference_topic_match(pattern, key));
  // "#" matches everything, and every key matches itself read as a pattern
  // ("*" and "#" each match themselves as one word).
  FUZZ_CHECK(topic_match("#", key));
  FUZZ_CHECK(topic_match(key, key));

  // The trie holds the pattern and every segment after the key; ids are
  // segment indexes (the pattern is id 0). Some ids share patterns.
  topic_trie trie;
  std::vector<std::pair<std::string, uint64_t>> bound;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i == 1)
      continue;
    uint64_t id = i % 5;
    bool fresh
      = std::find(bound.begin(), bound.end(), std::make_pair(segments[i], id))
        == bound.end();
    FUZZ_CHECK(trie.insert(segments[i], id) == fresh);
    if (fresh)
      bound.emplace_back(segments[i], id);
  }
  FUZZ_CHECK(trie.size() == bound.size());
  auto check_trie = [&] {
    std::vector<uint64_t> expected;
    for (auto& [p, id] : bound)
      if (topic_match(p, key))
        expected.push_back(id);
    std::sort(expected.begin(), expected.end());
    expected.erase(std::unique(expected.begin(), expected.end()),
                   expected.end());
    std::vector<uint64_t> got;
    trie.match(key, got);
    FUZZ_CHECK(got == expected);
  };
  check_trie();
  // Erase every other binding and check again.
  for (size_t i = 0; i < bound.size(); i += 2)
    FUZZ_CHECK(trie.erase(bound[i].first, bound[i].second));
  std::vector<std::pair<std::string, uint64_t>> kept;
  for (size_t i = 1; i < bound.size(); i += 2)
    kept.push_back(bound[i]);
  bound = kept;
  FUZZ_CHECK(trie.size() == bound.size());
  check_trie();
  return 0;
}
