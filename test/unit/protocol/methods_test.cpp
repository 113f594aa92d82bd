#include <doctest/doctest.h>

#include <cstring>

#include "protocol/methods.hpp"
#include "test_util.hpp"

using namespace flotilla;
using namespace flotilla::protocol;
using namespace flotilla::protocol::test;

namespace {

// Counts the bit fields of a method.
struct bit_counter {
  int bits = 0;
  template<class T>
  void u8(const char*, T&) {}
  template<class T>
  void u16(const char*, T&) {}
  template<class T>
  void u32(const char*, T&) {}
  template<class T>
  void u64(const char*, T&) {}
  template<class T>
  void bit(const char*, T&) {
    ++bits;
  }
  template<class T>
  void shortstr(const char*, T&) {}
  template<class T>
  void longstr(const char*, T&) {}
  template<class T>
  void table(const char*, T&) {}
};

// Fills every field with a value derived from `seed`; bit i gets bit i of
// `bit_mask`.
struct filler {
  unsigned seed;
  unsigned bit_mask;
  int bit_index = 0;
  void u8(const char*, uint8_t& x) {
    x = static_cast<uint8_t>(seed++ * 37 + 1);
  }
  void u16(const char*, uint16_t& x) {
    x = static_cast<uint16_t>(seed++ * 40503u + 7);
  }
  void u32(const char*, uint32_t& x) {
    x = seed++ * 2654435761u;
  }
  void u64(const char*, uint64_t& x) {
    x = (uint64_t{seed++} << 40) | 0x8123456789ull;
  }
  void bit(const char*, bool& x) {
    x = ((bit_mask >> bit_index++) & 1u) != 0;
  }
  void shortstr(const char*, std::string& x) {
    x = "short-" + std::to_string(seed++);
  }
  void longstr(const char*, std::string& x) {
    x = std::string("long\0", 5) + std::string(300, 'L')
        + std::to_string(seed++);
  }
  void table(const char*, field_table& t) {
    t = field_table{{"seed", int64_t{seed}},
                    {"name", "n" + std::to_string(seed)},
                    {"nested", field_table{{"flag", true}}},
                    {"list", field_array{1, "two"}}};
    ++seed;
  }
};

// Encodes `m` as a frame on `channel`, runs it through a frame_decoder and
// decode_method, and returns the result (non-template, so the checks below
// are compiled once rather than per method type).
method round_trip(const method& m, uint16_t channel) {
  std::string wire;
  append_method_frame(wire, channel, m);
  auto r = decode_whole(wire);
  REQUIRE(r.error == errc::none);
  REQUIRE(r.frames.size() == 1);
  CHECK(r.frames[0].type == frame_type::method);
  CHECK(r.frames[0].channel == channel);
  method out;
  REQUIRE(decode_method(r.frames[0].payload, out) == errc::none);
  return out;
}

struct method_facts {
  uint16_t class_id;
  uint16_t method_id;
  const char* name;
  bool has_content;
};

void check_method(const method& m, const method_facts& facts,
                  const std::string& template_wire) {
  CAPTURE(facts.name);
  auto back = round_trip(m, 42);
  CHECK(back == m);
  CHECK_FALSE(back != m);
  // The variant overload writes the same bytes as the template.
  std::string wire;
  append_method_frame(wire, 42, m);
  CHECK(wire == template_wire);
  CHECK(class_id_of(m) == facts.class_id);
  CHECK(method_id_of(m) == facts.method_id);
  CHECK(std::strcmp(name_of(m), facts.name) == 0);
  CHECK(has_content(m) == facts.has_content);
  CHECK(is_known_method(facts.class_id, facts.method_id));
}

void check_truncations(const std::string& payload) {
  method out;
  REQUIRE(decode_method(payload, out) == errc::none);
  for (size_t n = 0; n < payload.size(); ++n) {
    CAPTURE(n);
    CHECK(decode_method(std::string_view(payload).substr(0, n), out)
          == errc::frame_error);
  }
  CHECK(decode_method(payload + "x", out) == errc::frame_error);
}

std::string payload_of(const method& m) {
  std::string s;
  std::visit(
    [&](const auto& x) {
      append_method_payload(s, x);
    },
    m);
  return s;
}

} // namespace

TEST_SUITE("protocol") {

  TEST_CASE("methods: every method round-trips with every bit combination") {
    int types = 0;
    int cases = 0;
    for_each_method_type([&](auto proto) {
      using M = decltype(proto);
      ++types;
      method_facts facts{M::class_id, M::method_id, M::name, M::has_content};
      bit_counter bc;
      M::fields(bc, proto);
      REQUIRE(bc.bits <= 8);
      for (unsigned mask = 0; mask < (1u << bc.bits); ++mask) {
        M m;
        filler f{static_cast<unsigned>(types) * 100, mask};
        M::fields(f, m);
        std::string wire;
        append_method_frame(wire, 42, m);
        check_method(m, facts, wire);
        ++cases;
      }
      // Defaults round-trip too.
      std::string wire;
      append_method_frame(wire, 42, M{});
      check_method(M{}, facts, wire);
    });
    CHECK(types == 66);
    CHECK(cases > 66);
  }

  TEST_CASE("methods: the content-bearing ones") {
    int n = 0;
    for_each_method_type([&](auto proto) {
      using M = decltype(proto);
      if (M::has_content) {
        ++n;
        CHECK(M::class_id == 60);
        CHECK((M::method_id == 40 || M::method_id == 50 || M::method_id == 60
               || M::method_id == 71));
      }
    });
    CHECK(n == 4);
  }

  TEST_CASE("methods: identifiers and names") {
    CHECK(queue_declare::class_id == 50);
    CHECK(queue_declare::method_id == 10);
    CHECK(std::strcmp(queue_declare::name, "queue.declare") == 0);
    CHECK(std::strcmp(connection_start_ok::name, "connection.start-ok") == 0);
    CHECK(exchange_unbind_ok::method_id == 51);
    CHECK(basic_nack::method_id == 120);
    CHECK(confirm_select::class_id == 85);
    CHECK(tx_rollback_ok::method_id == 31);
    CHECK(connection_update_secret::method_id == 70);
    CHECK(connection_blocked::method_id == 60);
    CHECK(basic_recover_async::method_id == 100);
    CHECK_FALSE(is_known_method(60, 999));
    CHECK_FALSE(is_known_method(99, 10));
  }

  TEST_CASE("methods: bits share octets") {
    queue_declare q;
    q.queue = "q";
    q.durable = true;
    q.auto_delete = true;
    CHECK(payload_of(q)
          == bytes({0, 50, 0, 10, 0, 0, 1, 'q', 0x0A, 0, 0, 0, 0}));
    q.passive = q.exclusive = q.no_wait = true;
    q.durable = q.auto_delete = false;
    CHECK(payload_of(q)
          == bytes({0, 50, 0, 10, 0, 0, 1, 'q', 0x15, 0, 0, 0, 0}));
    // Bits separated by other fields take separate octets.
    basic_deliver d{"ctag", 5, true, "ex", "rk"};
    CHECK(payload_of(d)
          == bytes({0, 60, 0, 60, 4, 'c', 't', 'a', 'g', 0, 0,   0,
                    0, 0,  0, 0,  5, 1,   2,   'e', 'x', 2, 'r', 'k'}));
    basic_nack n{7, true, true};
    CHECK(payload_of(n)
          == bytes({0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 7, 0x03}));
    // Undefined high bits are ignored on decode.
    method m;
    REQUIRE(
      decode_method(bytes({0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 7, 0xFE}), m)
      == errc::none);
    CHECK(std::get<basic_nack>(m) == basic_nack{7, false, true});
  }

  TEST_CASE("methods: spec examples decode") {
    // connection.start as a broker sends it.
    std::string table_body
      = bytes({7, 'p', 'r', 'o', 'd', 'u', 'c', 't', 'S', 0, 0, 0, 8})
        + "RabbitMQ"
        + bytes({12, 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's',
                 'F', 0, 0, 0, 21, 18})
        + "publisher_confirms" + bytes({'t', 1});
    std::string payload = bytes({0, 10, 0, 10, 0, 9, 0, 0, 0,
                                 static_cast<int>(table_body.size())})
                          + table_body + bytes({0, 0, 0, 14}) + "AMQPLAIN PLAIN"
                          + bytes({0, 0, 0, 5}) + "en_US";
    method m;
    REQUIRE(decode_method(payload, m) == errc::none);
    auto& start = std::get<connection_start>(m);
    CHECK(start.version_major == 0);
    CHECK(start.version_minor == 9);
    CHECK(*start.server_properties.find("product")->as_string() == "RabbitMQ");
    CHECK(start.server_properties.find("capabilities")
            ->as_table()
            ->find("publisher_confirms")
            ->as_bool()
          == true);
    CHECK(start.mechanisms == "AMQPLAIN PLAIN");
    CHECK(start.locales == "en_US");
    CHECK(payload_of(m) == payload);

    // connection.tune: channel_max 2047, frame_max 131072, heartbeat 60.
    REQUIRE(
      decode_method(bytes({0, 10, 0, 30, 0x07, 0xFF, 0, 2, 0, 0, 0, 60}), m)
      == errc::none);
    CHECK(std::get<connection_tune>(m) == connection_tune{2047, 131072, 60});

    // connection.close 320 "CONNECTION_FORCED" from class 0 method 0.
    auto close = bytes({0, 10, 0, 50, 0x01, 0x40, 17}) + "CONNECTION_FORCED"
                 + bytes({0, 0, 0, 0});
    REQUIRE(decode_method(close, m) == errc::none);
    auto& c = std::get<connection_close>(m);
    CHECK(c.reply_code == 320);
    CHECK(c.reply_text == "CONNECTION_FORCED");
    CHECK(c.failing_class_id == 0);
    CHECK(c.failing_method_id == 0);

    // basic.publish to "" with routing key "hello", mandatory.
    REQUIRE(decode_method(
              bytes({0, 60, 0, 40, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 1}), m)
            == errc::none);
    CHECK(std::get<basic_publish>(m)
          == basic_publish{0, "", "hello", true, false});
  }

  TEST_CASE("methods: truncated payloads are frame errors") {
    for_each_method_type([&](auto proto) {
      using M = decltype(proto);
      M m;
      filler f{3, 0xFF};
      M::fields(f, m);
      std::string payload;
      append_method_payload(payload, m);
      CAPTURE(M::name);
      check_truncations(payload);
    });
  }

  TEST_CASE("methods: unknown ids and bad tables") {
    method m;
    CHECK(decode_method(bytes({0, 99, 0, 10}), m) == errc::command_invalid);
    CHECK(decode_method(bytes({0, 60, 0, 99}), m) == errc::command_invalid);
    CHECK(decode_method(bytes({0, 10, 0, 52}), m) == errc::command_invalid);
    CHECK(decode_method(bytes({0, 60}), m) == errc::frame_error);
    CHECK(decode_method("", m) == errc::frame_error);
    // queue.declare whose arguments table claims more bytes than the payload.
    CHECK(
      decode_method(bytes({0, 50, 0, 10, 0, 0, 1, 'q', 0, 0, 0, 0, 9, 1}), m)
      == errc::frame_error);
    // ... or holds an unknown tag.
    CHECK(decode_method(
            bytes({0, 50, 0, 10, 0, 0, 1, 'q', 0, 0, 0, 0, 3, 1, 'a', 'Z'}), m)
          == errc::frame_error);
    // A short string longer than the rest of the payload.
    CHECK(decode_method(bytes({0, 20, 0, 10, 5, 'a'}), m) == errc::frame_error);
  }

  TEST_CASE("methods: decoding reuses the held alternative") {
    method m = basic_publish{0, "old-exchange", "old-key", true, true};
    std::string payload;
    append_method_payload(payload, basic_publish{0, "e", "k", false, true});
    REQUIRE(decode_method(payload, m) == errc::none);
    CHECK(std::get<basic_publish>(m)
          == basic_publish{0, "e", "k", false, true});
    append_method_payload(payload = {}, basic_ack{9, true});
    REQUIRE(decode_method(payload, m) == errc::none);
    CHECK(std::get<basic_ack>(m) == basic_ack{9, true});
  }

  TEST_CASE("methods: long short strings are truncated on encode") {
    queue_declare_ok q{std::string(300, 'q'), 1, 2};
    std::string payload;
    append_method_payload(payload, q);
    method m;
    REQUIRE(decode_method(payload, m) == errc::none);
    CHECK(std::get<queue_declare_ok>(m).queue == std::string(255, 'q'));
  }

  TEST_CASE("methods: describe") {
    CHECK(
      describe(method{queue_declare_ok{"q1", 3, 0}})
      == R"(queue.declare-ok(queue="q1", message-count=3, consumer-count=0))");
    CHECK(describe(method{connection_start_ok{{}, "PLAIN", "secret", "en_US"}})
          == R"(connection.start-ok(client-properties={}, mechanism="PLAIN", )"
             R"(response=<6 bytes>, locale="en_US"))");
    CHECK(describe(method{tx_select{}}) == "tx.select()");
  }

  TEST_CASE("methods: equality") {
    CHECK(basic_ack{1, true} == basic_ack{1, true});
    CHECK(basic_ack{1, true} != basic_ack{1, false});
    CHECK(method{basic_ack{1, true}} == method{basic_ack{1, true}});
    CHECK(method{basic_ack{1, true}} != method{basic_nack{1, true, true}});
    queue_declare a;
    auto b = a;
    b.arguments.set("x-queue-type", "quorum");
    CHECK(a != b);
  }

} // TEST_SUITE
