#include <doctest/doctest.h>

#include "config/users.hpp"

#include <set>

#include "test/unit/config/test_util.hpp"

using namespace flotilla::config;
using flotilla::config::test::temp_dir;

namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A valid hash computed once: PBKDF2 is deliberately slow.
const std::string& secret_hash() {
  static const std::string h = hash_password("secret");
  return h;
}

} // namespace

TEST_SUITE("config") {

  TEST_CASE("password hash round trip") {
    auto h = hash_password("s3cr3t pass");
    REQUIRE_FALSE(h.empty());
    CHECK(starts_with(h, "pbkdf2-sha256$10000$"));
    CHECK(h.find(':') == std::string::npos); // Fits the users file.
    user u{"bob", h, {}, {}};
    auto db = user_db::with_default_guest();
    CHECK(db.check_password(u, "s3cr3t pass"));
    CHECK_FALSE(db.check_password(u, "s3cr3t pasS"));
    CHECK_FALSE(db.check_password(u, "s3cr3t pas"));
    CHECK_FALSE(db.check_password(u, ""));
  }

  TEST_CASE("a remembered password is checked like any other") {
    // The second and later checks of a right password hit the remembered
    // HMAC; wrong passwords, other users and changed hashes must not.
    auto db = user_db::with_default_guest();
    user u{"bob", secret_hash(), {}, {}};
    for (int i = 0; i < 3; ++i) {
      CHECK(db.check_password(u, "secret"));
      CHECK_FALSE(db.check_password(u, "secreT"));
      CHECK_FALSE(db.check_password(u, ""));
    }
    user other{"eve", hash_password("other"), {}, {}};
    CHECK_FALSE(db.check_password(other, "secret"));
    CHECK(db.check_password(other, "other"));
    CHECK(db.check_password(u, "secret"));
    // The password changed: the new hash knows nothing of the old one.
    user changed{"bob", hash_password("new one"), {}, {}};
    CHECK_FALSE(db.check_password(changed, "secret"));
    CHECK(db.check_password(changed, "new one"));
    // A copy of the database (as handed to the actors) agrees.
    auto copy = db;
    CHECK(copy.check_password(u, "secret"));
    CHECK_FALSE(copy.check_password(u, "wrong"));
  }

  TEST_CASE("hashes are salted") {
    std::set<std::string> seen;
    for (int i = 0; i < 3; ++i)
      seen.insert(hash_password("same"));
    CHECK(seen.size() == 3);
  }

  TEST_CASE("empty and binary passwords hash too") {
    auto db = user_db::with_default_guest();
    user u{"e", hash_password(""), {}, {}};
    CHECK(db.check_password(u, ""));
    CHECK_FALSE(db.check_password(u, "x"));
    std::string bin("a\0b\xff", 4);
    user v{"b", hash_password(bin), {}, {}};
    CHECK(db.check_password(v, bin));
    CHECK_FALSE(db.check_password(v, "a"));
  }

  TEST_CASE("malformed stored hashes never match") {
    auto db = user_db::with_default_guest();
    auto good = secret_hash();
    auto digest_at = good.rfind('$');
    for (std::string bad :
         {std::string(""), std::string("secret"),
          "sha256$" + good.substr(good.find('$') + 1),
          good.substr(0, digest_at), // No digest.
          good + "$", good.substr(0, good.size() - 4),
          std::string("pbkdf2-sha256$0$c2FsdA==$") + good.substr(digest_at + 1),
          std::string("pbkdf2-sha256$x$c2FsdA==$") + good.substr(digest_at + 1),
          std::string("pbkdf2-sha256$99999999$c2FsdA==$")
            + good.substr(digest_at + 1),
          std::string("pbkdf2-sha256$10000$c2Fsd!==$")
            + good.substr(digest_at + 1)}) {
      user u{"x", bad, {}, {}};
      CHECK_FALSE_MESSAGE(db.check_password(u, "secret"), bad);
    }
  }

  TEST_CASE("the default guest") {
    auto db = user_db::with_default_guest();
    REQUIRE(db.users().size() == 1);
    auto g = db.find("guest");
    REQUIRE(g != nullptr);
    CHECK(g->name == "guest");
    CHECK(g->is_administrator());
    CHECK(g->may_access("/"));
    CHECK(g->may_access("anything"));
    CHECK(db.check_password(*g, "guest"));
    CHECK_FALSE(db.check_password(*g, "Guest"));
    CHECK(db.loopback_only("guest"));
    CHECK_FALSE(db.loopback_only("bob"));
    CHECK(db.find("bob") == nullptr);
    CHECK(db.find("") == nullptr);
    CHECK(db.authenticate("guest", "guest") == g);
    CHECK(db.authenticate("guest", "nope") == nullptr);
    CHECK(db.authenticate("nobody", "guest") == nullptr);
  }

  TEST_CASE("user tags and vhosts") {
    user u{"u", "", {"monitoring", "administrator"}, {}};
    CHECK(u.is_administrator());
    CHECK(u.may_access("/"));
    u.tags = {"monitoring"};
    CHECK_FALSE(u.is_administrator());
    u.vhosts = {"/", "orders"};
    CHECK(u.may_access("/"));
    CHECK(u.may_access("orders"));
    CHECK_FALSE(u.may_access("billing"));
    CHECK_FALSE(u.may_access(""));
    u.vhosts = {"orders", "*"};
    CHECK(u.may_access("billing"));
  }

  TEST_CASE("load a users file") {
    temp_dir dir;
    auto h = secret_hash();
    auto path = dir.write("users", "# Flotilla users\n"
                                   "\n"
                                   "admin:"
                                     + h
                                     + ":administrator\n"
                                       "  bob : "
                                     + h
                                     + " : monitoring , ops : orders, /  \n"
                                       "carol:"
                                     + h
                                     + "::*\n"
                                       "dave:"
                                     + h
                                     + "\r\n"
                                       "guest:"
                                     + h + ":administrator:\n");
    std::string error;
    auto db = user_db::load(path, error);
    REQUIRE_MESSAGE(db.has_value(), error);
    CHECK(error.empty());
    REQUIRE(db->users().size() == 5);
    CHECK(db->users()[0].name == "admin");
    CHECK(db->users()[4].name == "guest");

    auto admin = db->find("admin");
    REQUIRE(admin);
    CHECK(admin->is_administrator());
    CHECK(admin->vhosts.empty());
    CHECK(admin->may_access("any"));
    CHECK(db->check_password(*admin, "secret"));
    CHECK_FALSE(db->check_password(*admin, "wrong"));

    auto bob = db->find("bob");
    REQUIRE(bob);
    CHECK(bob->password_hash == h);
    CHECK(bob->tags == std::vector<std::string>{"monitoring", "ops"});
    CHECK(bob->vhosts == std::vector<std::string>{"orders", "/"});
    CHECK_FALSE(bob->is_administrator());
    CHECK(bob->may_access("orders"));
    CHECK(bob->may_access("/"));
    CHECK_FALSE(bob->may_access("billing"));
    CHECK(db->authenticate("bob", "secret") == bob);

    auto carol = db->find("carol");
    REQUIRE(carol);
    CHECK(carol->tags.empty());
    CHECK(carol->may_access("billing"));

    auto dave = db->find("dave");
    REQUIRE(dave);
    CHECK(dave->password_hash == h);
    CHECK(dave->tags.empty());
    CHECK(dave->may_access("x"));

    // A guest from a file is an ordinary user.
    CHECK_FALSE(db->loopback_only("guest"));
  }

  TEST_CASE("users file errors name the file and line") {
    temp_dir dir;
    auto h = secret_hash();
    auto check_error = [&](const std::string& text, const std::string& want) {
      auto path = dir.write("users", text);
      std::string error;
      auto db = user_db::load(path, error);
      CHECK_FALSE(db.has_value());
      CHECK(error == path + want);
    };
    check_error("# c\nbob\n",
                ":2: expected 'name:password_hash[:tags[:vhosts]]'");
    check_error("bob:" + h + ":a:b:c\n",
                ":1: expected 'name:password_hash[:tags[:vhosts]]'");
    check_error("\n\nbob:plaintext\n",
                ":3: invalid password hash for user 'bob': expected "
                "pbkdf2-sha256$ITERATIONS$SALT$HASH (see 'flotilla passwd')");
    check_error(":" + h + "\n", ":1: invalid user name '': expected 1-255 "
                                "bytes without spaces");
    check_error("b b:" + h + "\n", ":1: invalid user name 'b b': expected "
                                   "1-255 bytes without spaces");
    check_error("bob:" + h + "\n# x\nann:" + h + "\nbob:" + h + "\n",
                ":4: duplicate user 'bob' (first on line 1)");
    check_error("", ": no users defined");
    check_error("# only comments\n\n", ": no users defined");

    std::string error;
    CHECK_FALSE(user_db::load("/nonexistent/users", error).has_value());
    CHECK(error
          == "cannot open users file '/nonexistent/users': No such file or "
             "directory");
  }

  TEST_CASE("parse users from text") {
    std::string error;
    auto db = user_db::parse("x:" + secret_hash() + ":administrator:/\n",
                             "inline", error);
    REQUIRE_MESSAGE(db.has_value(), error);
    CHECK(db->find("x")->may_access("/"));
    CHECK_FALSE(db->find("x")->may_access("other"));
    CHECK_FALSE(user_db::parse("x", "inline", error).has_value());
    CHECK(error == "inline:1: expected 'name:password_hash[:tags[:vhosts]]'");
  }

} // TEST_SUITE
