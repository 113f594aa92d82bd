#include "config/connectors.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <unistd.h>

#include "config/broker_options.hpp"

using namespace flotilla::config;

namespace {

/// Writes `text` to a temporary file removed with the object.
struct temp_conf {
  std::string path;
  explicit temp_conf(const std::string& text) {
    char tmpl[] = "/tmp/flotilla-connector-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd >= 0)
      ::close(fd);
    path = tmpl;
    std::ofstream(path, std::ios::binary) << text;
  }
  ~temp_conf() {
    std::remove(path.c_str());
  }
};

} // namespace

TEST_SUITE("federation") {
  TEST_CASE("key patterns: AMQP topic words and ActiveMQ's >") {
    CHECK(key_pattern_match("a.b", "a.b"));
    CHECK_FALSE(key_pattern_match("a.b", "a.c"));
    CHECK(key_pattern_match("*.orders", "eu.orders"));
    CHECK_FALSE(key_pattern_match("*.orders", "eu.x.orders"));
    CHECK_FALSE(key_pattern_match("*.orders", "orders"));
    CHECK(key_pattern_match("mcollective.#", "mcollective"));
    CHECK(key_pattern_match("mcollective.#", "mcollective.a.b"));
    CHECK(key_pattern_match("mcollective.>", "mcollective.a"));
    CHECK(key_pattern_match("mcollective.>", "mcollective.a.b.c"));
    CHECK_FALSE(key_pattern_match("mcollective.>", "mcollective"));
    CHECK_FALSE(key_pattern_match("mcollective.>", "other.a"));
    CHECK(key_pattern_match(">", "x"));
    CHECK_FALSE(key_pattern_match(">", ""));
    CHECK(key_pattern_match("#", ""));
    CHECK(key_pattern_match("#.orders", "a.b.orders"));
    // Binding keys are literal: their wildcards match only wildcards or
    // wildcard-free words of the pattern... by being single words.
    CHECK(key_pattern_match("a.*", "a.*"));
    CHECK(key_pattern_match("a.>", "a.#"));
    CHECK_FALSE(key_pattern_match("a.b", "a.*"));
  }

  TEST_CASE("key patterns are checked") {
    CHECK(check_key_pattern("a.>").empty());
    CHECK(check_key_pattern("#").empty());
    CHECK_FALSE(check_key_pattern("").empty());
    CHECK_FALSE(check_key_pattern("a.>.b").empty());
    CHECK_FALSE(check_key_pattern("a b").empty());
  }

  TEST_CASE("a key filter includes then excludes") {
    key_filter f;
    CHECK(f.empty());
    CHECK(f.allows("anything"));
    f.include = {"mcollective.>", "*.orders"};
    f.exclude = {"secret.orders", "mcollective.private.#"};
    CHECK(f.allows("mcollective.x"));
    CHECK(f.allows("eu.orders"));
    CHECK_FALSE(f.allows("secret.orders"));
    CHECK_FALSE(f.allows("mcollective.private"));
    CHECK_FALSE(f.allows("mcollective.private.a"));
    CHECK_FALSE(f.allows("news"));
    key_filter only_exclude;
    only_exclude.exclude = {"#.tmp"};
    CHECK(only_exclude.allows("a"));
    CHECK_FALSE(only_exclude.allows("a.tmp"));
  }

  TEST_CASE("a connector line parses into its fields") {
    connector_spec c;
    auto err = parse_connector(
      "name=to-a address=fed/s3cret@127.0.0.1:7001 exchange=amq.direct,x "
      "exchange=amq.topic static=amq.topic/alerts.critical "
      "include=mcollective.>,*.orders,alerts.# exclude=secret.orders "
      "duplex=yes max-hops=4 credit=50 vhost=v1 remote-name=10.0.0.2:5672",
      c);
    REQUIRE_MESSAGE(err.empty(), err);
    CHECK(c.name == "to-a");
    CHECK(c.user == "fed");
    CHECK(c.password == "s3cret");
    CHECK(c.host == "127.0.0.1");
    CHECK(c.port == 7001);
    CHECK(c.vhost == "v1");
    CHECK(c.exchanges
          == std::vector<std::string>{"amq.direct", "x", "amq.topic"});
    REQUIRE(c.statics.size() == 1);
    CHECK(c.statics[0].exchange == "amq.topic");
    CHECK(c.statics[0].key == "alerts.critical");
    CHECK(c.filter.include.size() == 3);
    CHECK(c.filter.exclude == std::vector<std::string>{"secret.orders"});
    CHECK(c.duplex);
    CHECK(c.max_hops == 4);
    CHECK(c.credit == 50);
    CHECK(c.remote_name == "10.0.0.2:5672");
  }

  TEST_CASE("connector defaults") {
    connector_spec c;
    REQUIRE(parse_connector("name=n address=[::1]:1 exchange=x", c).empty());
    CHECK(c.host == "::1");
    CHECK(c.port == 1);
    CHECK(c.user == "guest");
    CHECK(c.password == "guest");
    CHECK(c.vhost == "/");
    CHECK_FALSE(c.duplex);
    CHECK(c.max_hops == 16);
    CHECK(c.credit == 100);
  }

  TEST_CASE("bad connector lines say why") {
    auto why = [](const char* text) {
      connector_spec c;
      return parse_connector(text, c);
    };
    CHECK(why("") == "a connector needs name=NAME");
    CHECK(why("name=a exchange=x").find("needs address=") != std::string::npos);
    CHECK(why("name=a address=h:1").find("no routes") != std::string::npos);
    CHECK(why("name=a address=h exchange=x").find("host:port")
          != std::string::npos);
    CHECK(why("name=a address=h:0 exchange=x").find("port 1-65535")
          != std::string::npos);
    CHECK(why("name=a address=h:70000 exchange=x").find("port 1-65535")
          != std::string::npos);
    CHECK(why("name=a address=fed@h:1 exchange=x").find("user/password")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x colour=red")
            .find("unknown connector field 'colour'")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x nonsense").find("key=value")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x include=a.>.b").find("last word")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x duplex=maybe").find("yes or no")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x max-hops=0").find("1-255")
          != std::string::npos);
    CHECK(why("name=a address=h:1 static=x").find("EXCHANGE/KEY")
          != std::string::npos);
    CHECK(why("name=a address=h:1 static=x/b include=a.>")
            .find("static key 'b' is not allowed")
          != std::string::npos);
    CHECK(why("name=a address=h:1 exchange=x,,y").find("separated")
          != std::string::npos);
  }

  TEST_CASE("connector lines in flotillad.conf: errors name file and line") {
    temp_conf good{"# two connectors\n"
                   "connector = name=a address=127.0.0.1:7001 exchange=x\n"
                   "connector = name=b address=127.0.0.1:7002 exchange=y\n"};
    broker_options o;
    auto r = parse_config_file(good.path, o);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(o.connectors.size() == 2);
    CHECK(describe(o).find("connector = name=b") != std::string::npos);

    temp_conf bad{"port = 5673\n"
                  "\n"
                  "connector = name=a address=127.0.0.1 exchange=x\n"};
    broker_options o2;
    r = parse_config_file(bad.path, o2);
    CHECK_FALSE(r.ok);
    CHECK(r.error.rfind(bad.path + ":3: ", 0) == 0);
    CHECK(r.error.find("host:port") != std::string::npos);

    temp_conf twice{"connector = name=a address=127.0.0.1:1 exchange=x\n"
                    "connector = name=a address=127.0.0.1:2 exchange=x\n"};
    broker_options o3;
    r = parse_config_file(twice.path, o3);
    CHECK_FALSE(r.ok);
    CHECK(r.error.rfind(twice.path + ":2: ", 0) == 0);
    CHECK(r.error.find("exists already") != std::string::npos);
  }
} // TEST_SUITE
