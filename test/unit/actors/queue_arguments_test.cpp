#include "actors/queue_arguments.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace flotilla;
using protocol::field_table;
using protocol::field_value;

namespace {

using overflow_policy = queue_config::overflow_policy;

/// Parses `args` for queue 'q' in vhost '/'; returns the error text ("" on
/// success) and fills `cfg`.
std::string parse(const field_table& args, queue_config& cfg) {
  std::string text;
  auto e = parse_queue_arguments(args, cfg, text, "q", "/");
  if (e == errc::none)
    return "";
  CHECK(e == errc::precondition_failed);
  CHECK_FALSE(text.empty());
  return text;
}

std::string parse(const field_table& args) {
  queue_config cfg;
  return parse(args, cfg);
}

std::string invalid(const char* arg, const char* why) {
  return std::string{"invalid arg '"} + arg
         + "' for queue 'q' in vhost '/': " + why;
}

} // namespace

TEST_SUITE("queue") {

  TEST_CASE("no arguments give the defaults") {
    queue_config cfg;
    cfg.max_priority = 7; // Overwritten.
    CHECK(parse(field_table{}, cfg) == "");
    CHECK_FALSE(cfg.message_ttl);
    CHECK_FALSE(cfg.expires);
    CHECK_FALSE(cfg.max_length);
    CHECK_FALSE(cfg.max_length_bytes);
    CHECK(cfg.overflow == overflow_policy::drop_head);
    CHECK_FALSE(cfg.dead_letter_exchange);
    CHECK_FALSE(cfg.dead_letter_routing_key);
    CHECK(cfg.max_priority == 0);
    CHECK_FALSE(cfg.single_active_consumer);
  }

  TEST_CASE("all arguments parse") {
    field_table args{
      {"x-message-ttl", int32_t{60000}},
      {"x-expires", int64_t{1800000}},
      {"x-max-length", uint16_t{10}},
      {"x-max-length-bytes", int64_t{1} << 40},
      {"x-overflow", "reject-publish-dlx"},
      {"x-dead-letter-exchange", ""},
      {"x-dead-letter-routing-key", "dead"},
      {"x-max-priority", uint8_t{10}},
      {"x-single-active-consumer", true},
      {"x-queue-type", "classic"}, // Ignored.
      {"x-queue-mode", "lazy"},    // Ignored.
      {"x-unknown-thing", 3.5},    // Ignored.
    };
    queue_config cfg;
    CHECK(parse(args, cfg) == "");
    CHECK(cfg.message_ttl == int64_t{60000});
    CHECK(cfg.expires == int64_t{1800000});
    CHECK(cfg.max_length == int64_t{10});
    CHECK(cfg.max_length_bytes == int64_t{1} << 40);
    CHECK(cfg.overflow == overflow_policy::reject_publish_dlx);
    CHECK(cfg.dead_letter_exchange == std::string{});
    CHECK(cfg.dead_letter_routing_key == std::string{"dead"});
    CHECK(cfg.max_priority == 10);
    CHECK(cfg.single_active_consumer);
  }

  TEST_CASE("x-overflow values") {
    queue_config cfg;
    CHECK(parse({{"x-overflow", "drop-head"}}, cfg) == "");
    CHECK(cfg.overflow == overflow_policy::drop_head);
    CHECK(parse({{"x-overflow", "reject-publish"}}, cfg) == "");
    CHECK(cfg.overflow == overflow_policy::reject_publish);
    CHECK(parse({{"x-overflow", "reject-publish-dlx"}}, cfg) == "");
    CHECK(cfg.overflow == overflow_policy::reject_publish_dlx);
    CHECK(std::string{to_string(overflow_policy::reject_publish)}
          == "reject-publish");
    CHECK(parse({{"x-overflow", "drop-tail"}})
          == invalid("x-overflow", "{invalid_overflow,<<\"drop-tail\">>}"));
    CHECK(parse({{"x-overflow", int32_t{1}}})
          == invalid("x-overflow", "{unacceptable_type,signedint}"));
  }

  TEST_CASE("x-message-ttl validation") {
    queue_config cfg;
    CHECK(parse({{"x-message-ttl", int8_t{0}}}, cfg) == "");
    CHECK(cfg.message_ttl == int64_t{0});
    CHECK(parse({{"x-message-ttl", int64_t{4294967295}}}) == "");
    CHECK(parse({{"x-message-ttl", int32_t{-1}}})
          == invalid("x-message-ttl", "{value_negative,-1}"));
    CHECK(parse({{"x-message-ttl", int64_t{4294967296}}})
          == invalid("x-message-ttl", "{value_too_large,4294967296}"));
    CHECK(parse({{"x-message-ttl", "1000"}})
          == invalid("x-message-ttl", "{unacceptable_type,longstr}"));
    CHECK(parse({{"x-message-ttl", 1.5}})
          == invalid("x-message-ttl", "{unacceptable_type,double}"));
    CHECK(parse({{"x-message-ttl", true}})
          == invalid("x-message-ttl", "{unacceptable_type,bool}"));
    CHECK(parse({{"x-message-ttl", protocol::timestamp_value{5}}})
          == invalid("x-message-ttl", "{unacceptable_type,timestamp}"));
  }

  TEST_CASE("x-expires validation") {
    queue_config cfg;
    CHECK(parse({{"x-expires", uint32_t{1}}}, cfg) == "");
    CHECK(cfg.expires == int64_t{1});
    CHECK(parse({{"x-expires", int32_t{0}}})
          == invalid("x-expires", "{value_zero,0}"));
    CHECK(parse({{"x-expires", int16_t{-5}}})
          == invalid("x-expires", "{value_negative,-5}"));
    CHECK(parse({{"x-expires", int64_t{4294967296}}})
          == invalid("x-expires", "{value_too_large,4294967296}"));
    CHECK(parse({{"x-expires", field_value{}}})
          == invalid("x-expires", "{unacceptable_type,void}"));
  }

  TEST_CASE("x-max-length and x-max-length-bytes validation") {
    queue_config cfg;
    CHECK(
      parse({{"x-max-length", int32_t{0}}, {"x-max-length-bytes", int32_t{0}}},
            cfg)
      == "");
    CHECK(cfg.max_length == int64_t{0});
    CHECK(cfg.max_length_bytes == int64_t{0});
    CHECK(parse({{"x-max-length", int32_t{-1}}})
          == invalid("x-max-length", "{value_negative,-1}"));
    CHECK(parse({{"x-max-length-bytes", int64_t{-100}}})
          == invalid("x-max-length-bytes", "{value_negative,-100}"));
    CHECK(parse({{"x-max-length", "10"}})
          == invalid("x-max-length", "{unacceptable_type,longstr}"));
    CHECK(parse({{"x-max-length-bytes", float{1}}})
          == invalid("x-max-length-bytes", "{unacceptable_type,float}"));
  }

  TEST_CASE("x-max-priority validation") {
    queue_config cfg;
    CHECK(parse({{"x-max-priority", int32_t{255}}}, cfg) == "");
    CHECK(cfg.max_priority == 255);
    CHECK(parse({{"x-max-priority", int32_t{0}}}, cfg) == "");
    CHECK(cfg.max_priority == 0);
    CHECK(parse({{"x-max-priority", int32_t{256}}})
          == invalid("x-max-priority", "{max_value_exceeded,256}"));
    CHECK(parse({{"x-max-priority", int32_t{-1}}})
          == invalid("x-max-priority", "{value_negative,-1}"));
    CHECK(parse({{"x-max-priority", "high"}})
          == invalid("x-max-priority", "{unacceptable_type,longstr}"));
  }

  TEST_CASE("dead-letter arguments validation") {
    queue_config cfg;
    CHECK(parse({{"x-dead-letter-exchange", "dlx"}}, cfg) == "");
    CHECK(cfg.dead_letter_exchange == std::string{"dlx"});
    CHECK_FALSE(cfg.dead_letter_routing_key);
    CHECK(parse({{"x-dead-letter-routing-key", "rk"}})
          == invalid("x-dead-letter-routing-key",
                     "routing_key_but_no_dlx_defined"));
    CHECK(
      parse({{"x-dead-letter-exchange", int32_t{1}}})
      == invalid("x-dead-letter-exchange", "{unacceptable_type,signedint}"));
    CHECK(parse({{"x-dead-letter-exchange", protocol::byte_array{"dlx"}}})
          == invalid("x-dead-letter-exchange", "{unacceptable_type,binary}"));
    CHECK(parse({{"x-dead-letter-exchange", "dlx"},
                 {"x-dead-letter-routing-key", field_table{}}})
          == invalid("x-dead-letter-routing-key", "{unacceptable_type,table}"));
  }

  TEST_CASE("x-single-active-consumer validation") {
    queue_config cfg;
    CHECK(parse({{"x-single-active-consumer", false}}, cfg) == "");
    CHECK_FALSE(cfg.single_active_consumer);
    CHECK(
      parse({{"x-single-active-consumer", "true"}})
      == invalid("x-single-active-consumer", "{unacceptable_type,longstr}"));
    CHECK(
      parse({{"x-single-active-consumer", int32_t{1}}})
      == invalid("x-single-active-consumer", "{unacceptable_type,signedint}"));
  }

  TEST_CASE("error text without a queue name") {
    queue_config cfg;
    std::string text;
    CHECK(parse_queue_arguments({{"x-max-length", int32_t{-2}}}, cfg, text)
          == errc::precondition_failed);
    CHECK(text == "invalid arg 'x-max-length': {value_negative,-2}");
  }

  TEST_CASE("equivalence of redeclared arguments") {
    queue_config a;
    queue_config b;
    CHECK(parse({{"x-max-length", int32_t{10}}, {"x-overflow", "drop-head"}}, a)
          == "");
    CHECK(parse({{"x-max-length", int64_t{10}}}, b) == "");
    CHECK(equivalent(a, b));
    CHECK(first_inequivalent_arg(a, b) == nullptr);
    auto differs = [&](const char* arg, auto change) {
      queue_config c = a;
      change(c);
      CHECK_FALSE(equivalent(a, c));
      REQUIRE(first_inequivalent_arg(a, c) != nullptr);
      CHECK(std::string{first_inequivalent_arg(a, c)} == arg);
    };
    differs("x-message-ttl", [](queue_config& c) {
      c.message_ttl = 1;
    });
    differs("x-expires", [](queue_config& c) {
      c.expires = 1;
    });
    differs("x-max-length", [](queue_config& c) {
      c.max_length = 11;
    });
    differs("x-max-length", [](queue_config& c) {
      c.max_length.reset();
    });
    differs("x-max-length-bytes", [](queue_config& c) {
      c.max_length_bytes = 1;
    });
    differs("x-overflow", [](queue_config& c) {
      c.overflow = overflow_policy::reject_publish;
    });
    differs("x-dead-letter-exchange", [](queue_config& c) {
      c.dead_letter_exchange = "";
    });
    differs("x-dead-letter-routing-key", [](queue_config& c) {
      c.dead_letter_routing_key = "k";
    });
    differs("x-max-priority", [](queue_config& c) {
      c.max_priority = 1;
    });
    differs("x-single-active-consumer", [](queue_config& c) {
      c.single_active_consumer = true;
    });
  }

  TEST_CASE("per-message expiration parsing") {
    auto ttl_of = [](const char* text) {
      std::optional<int64_t> ttl = int64_t{-7};
      std::string error;
      auto e = parse_expiration(std::string{text}, ttl, &error);
      CHECK(e == errc::none);
      CHECK(error.empty());
      return ttl;
    };
    auto error_of = [](const char* text) {
      std::optional<int64_t> ttl;
      std::string error;
      CHECK(parse_expiration(std::string{text}, ttl, &error)
            == errc::precondition_failed);
      CHECK_FALSE(ttl);
      CHECK_FALSE(parse_expiration(std::string{text}));
      return error;
    };
    std::optional<int64_t> ttl = int64_t{5};
    CHECK(parse_expiration(std::nullopt, ttl) == errc::none);
    CHECK_FALSE(ttl);
    CHECK_FALSE(parse_expiration(std::nullopt));
    CHECK(ttl_of("0") == int64_t{0});
    CHECK(ttl_of("60000") == int64_t{60000});
    CHECK(ttl_of("+5") == int64_t{5});
    CHECK(ttl_of("-0") == int64_t{0});
    CHECK(ttl_of("4294967295") == int64_t{4294967295});
    CHECK(parse_expiration(std::string{"250"}) == int64_t{250});
    CHECK(error_of("-1") == "invalid expiration '-1': {value_negative,-1}");
    CHECK(error_of("4294967296")
          == "invalid expiration '4294967296': {value_too_large,4294967296}");
    CHECK(error_of("99999999999999999999999")
          == "invalid expiration '99999999999999999999999': "
             "{value_too_large,99999999999999999999999}");
    CHECK(error_of("") == "invalid expiration '': no_integer");
    CHECK(error_of("abc") == "invalid expiration 'abc': no_integer");
    CHECK(error_of(" 10") == "invalid expiration ' 10': no_integer");
    CHECK(error_of("10s")
          == "invalid expiration '10s': {leftover_string,\"s\"}");
    CHECK(error_of("1.5")
          == "invalid expiration '1.5': {leftover_string,\".5\"}");
  }

} // TEST_SUITE
