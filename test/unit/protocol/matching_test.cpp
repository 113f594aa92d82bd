#include <doctest/doctest.h>

#include "protocol/matching.hpp"
#include "test/unit/protocol/topic_reference.hpp"

using namespace flotilla::protocol;

TEST_SUITE("protocol") {

  TEST_CASE("topic matching") {
    struct row {
      const char* pattern;
      const char* key;
      bool match;
    };
    const row rows[] = {
      {"a.b.c", "a.b.c", true},
      {"a.b.c", "a.b", false},
      {"a.b", "a.b.c", false},
      {"a.*", "a.b", true},
      {"a.*", "a", false},
      {"a.*", "a.b.c", false},
      {"a.*", "a.", true}, // one empty word
      {"*", "", false},
      {"*", "a", true},
      {"*", ".", false},
      {"*.*", ".", true},
      {"*.b", ".b", true},
      {"#", "", true},
      {"#", "a", true},
      {"#", "a.b.c", true},
      {"#", ".", true},
      {"a.#", "a", true},
      {"a.#", "a.b", true},
      {"a.#", "a.b.c", true},
      {"a.#", "b.a", false},
      {"a.#", "ab", false},
      {"#.a", "a", true},
      {"#.a", "x.y.a", true},
      {"#.a", "x.y.a.b", false},
      {"#.#", "", true},
      {"#.#", "a.b", true},
      {"a.#.b", "a.b", true},
      {"a.#.b", "a.x.b", true},
      {"a.#.b", "a.x.y.b", true},
      {"a.#.b", "a.x.y", false},
      {"a.#.b", "a.b.b.b", true},
      {"a.#.b.#.c", "a.b.c", true},
      {"a.#.b.#.c", "a.x.b.y.z.c", true},
      {"a.#.b.#.c", "a.x.c.y.b", false},
      {"#.*", "", false},
      {"#.*", "a", true},
      {"*.#", "a.b.c", true},
      {"*.#.*", "a", false},
      {"*.#.*", "a.b", true},
      {"", "", true},
      {"", "a", false},
      {"a", "", false},
      {".", ".", true},
      {"a..b", "a..b", true},
      {"a.*.b", "a..b", true},
      {"a.#.b", "a..b", true},
      {"stock.usd.nyse", "stock.usd.nyse", true},
      {"stock.*.nyse", "stock.eur.nyse", true},
      {"stock.#", "stock.usd.nyse", true},
      {"*.orange.*", "quick.orange.rabbit", true},
      {"*.*.rabbit", "lazy.orange.elephant", false},
      {"lazy.#", "lazy.orange.male.rabbit", true},
      {"*.orange.*", "quick.orange.male.rabbit", false},
      {"a#", "a#", true}, // '#' only special as a whole word
      {"a*", "ab", false},
    };
    for (auto& r : rows) {
      CAPTURE(r.pattern);
      CAPTURE(r.key);
      CHECK(topic_match(r.pattern, r.key) == r.match);
      CHECK(flotilla::test::reference_topic_match(r.pattern, r.key) == r.match);
    }
  }

  TEST_CASE("topic matching agrees with the reference on generated cases") {
    const char* pattern_words[] = {"a", "b", "*", "#", ""};
    const char* key_words[] = {"a", "b", ""};
    // All patterns up to 4 words and keys up to 4 words over small alphabets.
    std::vector<std::string> patterns{""};
    std::vector<std::string> keys{""};
    auto extend = [](std::vector<std::string>& v, const char* const* w,
                     size_t nw, int len) {
      std::vector<std::string> cur{""};
      for (int l = 1; l <= len; ++l) {
        std::vector<std::string> next;
        for (auto& s : cur)
          for (size_t i = 0; i < nw; ++i)
            next.push_back(l == 1 ? std::string(w[i]) : s + "." + w[i]);
        v.insert(v.end(), next.begin(), next.end());
        cur = std::move(next);
      }
    };
    extend(patterns, pattern_words, 5, 4);
    extend(keys, key_words, 3, 4);
    size_t checked = 0;
    for (auto& p : patterns)
      for (auto& k : keys) {
        if (topic_match(p, k) != flotilla::test::reference_topic_match(p, k)) {
          FAIL_CHECK("mismatch for pattern '" << p << "' key '" << k << "'");
        }
        ++checked;
      }
    CHECK(checked > 10000);
  }

  TEST_CASE("topic trie: matches like topic_match") {
    const char* patterns[]
      = {"a.b.c", "a.*.c", "a.#",  "#",   "*.b.*", "#.c",   "a.#.c", "#.#",
         "",      "*",     "a..c", "*.*", "a.b.#", "x.y.z", "#.b.#"};
    topic_trie trie;
    uint64_t id = 0;
    for (auto* p : patterns)
      CHECK(trie.insert(p, id++));
    CHECK(trie.size() == 15);
    CHECK_FALSE(trie.insert("a.#", 2)); // already there
    CHECK(trie.insert("a.#", 100));     // same pattern, other id
    const char* keys[] = {"",  "a",     "a.b",     "a.b.c", "a..c",    "x.y.z",
                          "b", "q.b.q", "a.b.c.d", ".",     "a.x.y.c", "c"};
    for (auto* k : keys) {
      CAPTURE(k);
      std::vector<uint64_t> expected;
      for (uint64_t i = 0; i < 15; ++i)
        if (topic_match(patterns[i], k))
          expected.push_back(i);
      if (topic_match("a.#", k))
        expected.push_back(100);
      std::vector<uint64_t> got{999}; // existing content is kept
      trie.match(k, got);
      REQUIRE(!got.empty());
      CHECK(got.front() == 999);
      got.erase(got.begin());
      CHECK(got == expected);
    }
  }

  TEST_CASE("topic trie: erase prunes and ids are reported once") {
    topic_trie trie;
    CHECK(trie.insert("a.#", 1));
    CHECK(trie.insert("#.b", 1));
    CHECK(trie.insert("a.b", 2));
    std::vector<uint64_t> got;
    trie.match("a.b", got);
    CHECK(got == std::vector<uint64_t>{1, 2});
    CHECK_FALSE(trie.erase("a.b", 1));
    CHECK_FALSE(trie.erase("a.c", 2));
    CHECK(trie.erase("a.#", 1));
    CHECK(trie.erase("#.b", 1));
    got.clear();
    trie.match("a.b", got);
    CHECK(got == std::vector<uint64_t>{2});
    CHECK(trie.erase("a.b", 2));
    CHECK(trie.empty());
    got.clear();
    trie.match("a.b", got);
    CHECK(got.empty());
    // Nodes are reused after pruning.
    CHECK(trie.insert("a.b.c", 3));
    trie.match("a.b.c", got);
    CHECK(got == std::vector<uint64_t>{3});
    trie.clear();
    CHECK(trie.size() == 0);
  }

  TEST_CASE("topic trie: many hashes stay fast") {
    topic_trie trie;
    trie.insert("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z", 1);
    trie.insert("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b", 2);
    std::string key;
    for (int i = 0; i < 120; ++i)
      key += "a.";
    key += "a";
    std::vector<uint64_t> got;
    trie.match(key, got);
    CHECK(got.empty());
    CHECK_FALSE(topic_match("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b", key));
    trie.match(key + ".b", got);
    CHECK(got == std::vector<uint64_t>{2});
  }

  TEST_CASE("headers matching: all and any") {
    field_table headers{{"format", "pdf"}, {"type", "report"}, {"n", 5}};
    field_table all{{"format", "pdf"}, {"type", "report"}};
    CHECK(headers_match(all, &headers));
    all.set("x-match", "all");
    CHECK(headers_match(all, &headers));
    all.set("type", "log");
    CHECK_FALSE(headers_match(all, &headers));
    field_table any{{"x-match", "any"}, {"format", "zip"}, {"type", "report"}};
    CHECK(headers_match(any, &headers));
    any.set("type", "log");
    CHECK_FALSE(headers_match(any, &headers));
    // Missing key.
    CHECK_FALSE(headers_match(field_table{{"missing", 1}}, &headers));
    // No headers at all.
    CHECK_FALSE(headers_match(field_table{{"format", "pdf"}}, nullptr));
    CHECK(headers_match(field_table{}, nullptr));
    CHECK(headers_match(field_table{{"x-match", "all"}}, nullptr));
    CHECK_FALSE(headers_match(field_table{{"x-match", "any"}}, &headers));
  }

  TEST_CASE("headers matching: x- keys and the with-x modes") {
    field_table headers{{"x-tenant", "acme"}, {"kind", "a"}};
    // all/any ignore x- keys in the binding.
    CHECK(headers_match(field_table{{"x-tenant", "other"}, {"kind", "a"}},
                        &headers));
    CHECK_FALSE(headers_match(
      field_table{{"x-match", "any"}, {"x-tenant", "acme"}}, &headers));
    // with-x modes count them (x-match itself still skipped).
    CHECK_FALSE(headers_match(field_table{{"x-match", "all-with-x"},
                                          {"x-tenant", "other"},
                                          {"kind", "a"}},
                              &headers));
    CHECK(headers_match(field_table{{"x-match", "all-with-x"},
                                    {"x-tenant", "acme"},
                                    {"kind", "a"}},
                        &headers));
    CHECK(headers_match(
      field_table{{"x-match", "any-with-x"}, {"x-tenant", "acme"}}, &headers));
    CHECK_FALSE(headers_match(
      field_table{{"x-match", "any-with-x"}, {"x-tenant", "zzz"}}, &headers));
  }

  TEST_CASE(
    "headers matching: void matches presence and values compare by value") {
    field_table headers{
      {"flag", false}, {"n", int64_t{5}}, {"s", "txt"}, {"f", 2.5}};
    CHECK(headers_match(field_table{{"flag", field_value{}}}, &headers));
    CHECK_FALSE(headers_match(field_table{{"other", field_value{}}}, &headers));
    CHECK(headers_match(field_table{{"n", 5}}, &headers));          // I vs l
    CHECK(headers_match(field_table{{"n", uint8_t{5}}}, &headers)); // B vs l
    CHECK_FALSE(headers_match(field_table{{"n", 6}}, &headers));
    CHECK(headers_match(field_table{{"s", byte_array{"txt"}}}, &headers));
    CHECK(headers_match(field_table{{"f", 2.5f}}, &headers));
    CHECK_FALSE(headers_match(field_table{{"flag", true}}, &headers));
    CHECK_FALSE(headers_match(field_table{{"flag", 0}}, &headers));
    CHECK_FALSE(headers_match(field_table{{"n", "5"}}, &headers));
  }

  TEST_CASE("headers matching: x-match parsing") {
    CHECK(headers_match_kind_of(field_table{}) == headers_match_kind::all);
    CHECK(headers_match_kind_of(field_table{{"x-match", "any"}})
          == headers_match_kind::any);
    CHECK(headers_match_kind_of(field_table{{"x-match", "all-with-x"}})
          == headers_match_kind::all_with_x);
    CHECK(headers_match_kind_of(field_table{{"x-match", "any-with-x"}})
          == headers_match_kind::any_with_x);
    CHECK_FALSE(headers_match_kind_of(field_table{{"x-match", "some"}}));
    CHECK_FALSE(headers_match_kind_of(field_table{{"x-match", 1}}));
    CHECK_FALSE(
      headers_match_kind_of(field_table{{"x-match", byte_array{"any"}}}));
    CHECK(std::string(to_string(headers_match_kind::any_with_x))
          == "any-with-x");
    // An invalid x-match routes as all, like RabbitMQ.
    field_table headers{{"a", 1}};
    CHECK(headers_match(field_table{{"x-match", "bogus"}, {"a", 1}}, &headers));
    CHECK_FALSE(headers_match(
      field_table{{"x-match", "bogus"}, {"a", 1}, {"b", 2}}, &headers));
  }

} // TEST_SUITE
