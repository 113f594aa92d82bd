#include <doctest/doctest.h>

#include "config/users.hpp"

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace flotilla::config;
using namespace std::string_literals;

namespace {

// Encodes one field-table entry of type 'S' (long string).
std::string long_string_entry(const std::string& key, const std::string& v) {
  std::string r;
  r += static_cast<char>(key.size());
  r += key;
  r += 'S';
  auto n = static_cast<uint32_t>(v.size());
  r += static_cast<char>(n >> 24);
  r += static_cast<char>(n >> 16);
  r += static_cast<char>(n >> 8);
  r += static_cast<char>(n);
  r += v;
  return r;
}

std::string amqplain(const std::string& login, const std::string& pass) {
  return long_string_entry("LOGIN", login)
         + long_string_entry("PASSWORD", pass);
}

} // namespace

TEST_SUITE("config") {

  TEST_CASE("SASL PLAIN") {
    std::string user, pass;
    CHECK(parse_sasl_plain("\0guest\0guest"s, user, pass));
    CHECK(user == "guest");
    CHECK(pass == "guest");
    // An authzid equal to the authcid is accepted; acting as another user
    // (proxy authorization) is not.
    CHECK(parse_sasl_plain("bob\0bob\0p@ss word"s, user, pass));
    CHECK(user == "bob");
    CHECK(pass == "p@ss word");
    CHECK(!parse_sasl_plain("admin\0bob\0p@ss word"s, user, pass));
    CHECK(parse_sasl_plain("\0bob\0"s, user, pass));
    CHECK(user == "bob");
    CHECK(pass.empty());
  }

  TEST_CASE("SASL PLAIN rejects malformed responses") {
    for (auto bad : {""s, "guest"s, "\0guest"s, "guestguest\0"s, "\0\0pass"s,
                     "\0guest\0pa\0ss"s, "\0\0"s, "a\0b\0c\0"s}) {
      std::string user = "unchanged", pass = "unchanged";
      CHECK_FALSE(parse_sasl_plain(bad, user, pass));
      CHECK(user == "unchanged");
      CHECK(pass == "unchanged");
    }
  }

  TEST_CASE("AMQPLAIN") {
    std::string user, pass;
    CHECK(parse_amqplain(amqplain("guest", "guest"), user, pass));
    CHECK(user == "guest");
    CHECK(pass == "guest");
    // Any order; other string entries are ignored; binary-safe values.
    auto r = long_string_entry("PASSWORD", "p\0w"s)
             + long_string_entry("EXTRA", "x")
             + long_string_entry("LOGIN", "bob");
    CHECK(parse_amqplain(r, user, pass));
    CHECK(user == "bob");
    CHECK(pass == "p\0w"s);
    CHECK(parse_amqplain(amqplain("bob", ""), user, pass));
    CHECK(pass.empty());
  }

  TEST_CASE("AMQPLAIN rejects malformed responses") {
    auto t = [](const std::string& response) {
      std::string user = "unchanged", pass = "unchanged";
      bool ok = parse_amqplain(response, user, pass);
      CHECK(user == "unchanged");
      CHECK(pass == "unchanged");
      return ok;
    };
    CHECK_FALSE(t(""));
    CHECK_FALSE(t(long_string_entry("LOGIN", "bob")));       // No PASSWORD.
    CHECK_FALSE(t(long_string_entry("PASSWORD", "secret"))); // No LOGIN.
    CHECK_FALSE(t(amqplain("", "secret")));                  // Empty LOGIN.
    CHECK_FALSE(t(amqplain("a", "b") + long_string_entry("LOGIN", "c")));
    CHECK_FALSE(t(amqplain("a", "b") + long_string_entry("PASSWORD", "c")));
    // Another type in the table.
    auto with_int = amqplain("a", "b")
                    + "\x03"
                      "AGEI"
                      "\0\0\0\x05"s;
    CHECK_FALSE(t(with_int));
    auto login_as_short = "\x05LOGINs\x03"
                          "bob"s
                          + long_string_entry("PASSWORD", "x");
    CHECK_FALSE(t(login_as_short));
    // With the table's own 4-byte length in front (not AMQPLAIN's form).
    auto body = amqplain("a", "b");
    auto n = static_cast<uint32_t>(body.size());
    std::string prefixed{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                         static_cast<char>(n >> 8), static_cast<char>(n)};
    CHECK_FALSE(t(prefixed + body));
    // A length far beyond the input must not allocate or read past the end.
    auto huge = "\x05LOGINS\xff\xff\xff\xff"
                "bob"s;
    CHECK_FALSE(t(huge + long_string_entry("PASSWORD", "x")));
    // Trailing garbage.
    CHECK_FALSE(t(amqplain("a", "b") + "\x01"));
  }

  TEST_CASE("AMQPLAIN: every truncation of a valid response fails") {
    auto valid = long_string_entry("LOGIN", "guest")
                 + long_string_entry("EXTRA", "")
                 + long_string_entry("PASSWORD", "guest");
    std::string user, pass;
    REQUIRE(parse_amqplain(valid, user, pass));
    for (size_t n = 0; n < valid.size(); ++n) {
      user = pass = "unchanged";
      CHECK_FALSE_MESSAGE(parse_amqplain(valid.substr(0, n), user, pass),
                          "prefix of " << n << " bytes");
      CHECK(user == "unchanged");
    }
  }

  TEST_CASE("AMQPLAIN and PLAIN survive random mutations") {
    std::mt19937 rng(42); // Fixed seed: reproducible.
    auto valid = amqplain("guest", "guest");
    auto plain = "\0guest\0guest"s;
    std::string user, pass;
    for (int i = 0; i < 20000; ++i) {
      auto a = valid;
      auto b = plain;
      auto edits = 1 + rng() % 4;
      for (unsigned k = 0; k < edits; ++k) {
        a[rng() % a.size()] = static_cast<char>(rng());
        b[rng() % b.size()] = static_cast<char>(rng());
      }
      a.resize(rng() % (a.size() + 1));
      // Results vary; the point is no crash and no read past the end (ASan).
      (void)parse_amqplain(a, user, pass);
      (void)parse_sasl_plain(b, user, pass);
    }
  }

} // TEST_SUITE
