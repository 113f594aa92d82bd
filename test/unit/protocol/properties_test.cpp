#include <doctest/doctest.h>

#include "protocol/properties.hpp"
#include "test_util.hpp"

using namespace flotilla;
using namespace flotilla::protocol;
using namespace flotilla::protocol::test;

namespace {

basic_properties all_properties() {
  basic_properties p;
  p.content_type = "application/json";
  p.content_encoding = "gzip";
  p.headers = field_table{{"x-delay", 1000}, {"trace", field_array{"a"}}};
  p.delivery_mode = 2;
  p.priority = 9;
  p.correlation_id = "corr";
  p.reply_to = "amq.rabbitmq.reply-to";
  p.expiration = "60000";
  p.message_id = "msg-1";
  p.timestamp = 1700000000;
  p.type = "order.created";
  p.user_id = "guest";
  p.app_id = "shop";
  p.cluster_id = "";
  return p;
}

std::string header_payload(uint64_t body_size, const basic_properties& p) {
  std::string s;
  append_header_payload(s, body_size, p);
  return s;
}

} // namespace

TEST_SUITE("protocol") {

  TEST_CASE("content header: all and no properties round-trip") {
    for (auto& p : {basic_properties{}, all_properties()}) {
      std::string wire;
      append_header_frame(wire, 5, 123456789012ull, p);
      auto r = decode_whole(wire);
      REQUIRE(r.error == errc::none);
      REQUIRE(r.frames.size() == 1);
      CHECK(r.frames[0].type == frame_type::header);
      CHECK(r.frames[0].channel == 5);
      content_header h;
      REQUIRE(decode_content_header(r.frames[0].payload, h) == errc::none);
      CHECK(h.class_id == 60);
      CHECK(h.body_size == 123456789012ull);
      CHECK(h.properties == p);
      // The raw variant frames the same payload identically.
      std::string raw;
      append_raw_header_frame(raw, 5, r.frames[0].payload);
      CHECK(raw == wire);
    }
  }

  TEST_CASE("content header: each property alone") {
    auto all = all_properties();
    basic_properties ps[14];
    ps[0].content_type = all.content_type;
    ps[1].content_encoding = all.content_encoding;
    ps[2].headers = field_table{}; // present but empty
    ps[3].delivery_mode = all.delivery_mode;
    ps[4].priority = all.priority;
    ps[5].correlation_id = all.correlation_id;
    ps[6].reply_to = all.reply_to;
    ps[7].expiration = all.expiration;
    ps[8].message_id = all.message_id;
    ps[9].timestamp = all.timestamp;
    ps[10].type = all.type;
    ps[11].user_id = all.user_id;
    ps[12].app_id = all.app_id;
    ps[13].cluster_id = all.cluster_id;
    for (int i = 0; i < 14; ++i) {
      CAPTURE(i);
      auto payload = header_payload(1, ps[i]);
      auto flags = static_cast<uint8_t>(payload[12]) << 8
                   | static_cast<uint8_t>(payload[13]);
      CHECK(flags == 1 << (15 - i));
      content_header h;
      REQUIRE(decode_content_header(payload, h) == errc::none);
      CHECK(h.properties == ps[i]);
    }
  }

  TEST_CASE("content header: known bytes") {
    basic_properties p;
    p.content_type = "text/plain";
    p.delivery_mode = 2;
    CHECK(header_payload(5, p)
          == bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x90, 0x00, 10})
               + "text/plain" + bytes({2}));
  }

  TEST_CASE("content header: malformed is a frame error") {
    content_header h;
    auto good = header_payload(3, all_properties());
    for (size_t n = 0; n < good.size(); ++n) {
      CAPTURE(n);
      CHECK(decode_content_header(good.substr(0, n), h) == errc::frame_error);
    }
    CHECK(decode_content_header(good + "x", h) == errc::frame_error);
    // Bit 1 names no property of basic.
    CHECK(decode_content_header(
            bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02}), h)
          == errc::frame_error);
    // An empty continuation word is fine, one with flags is not.
    CHECK(decode_content_header(
            bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 0}), h)
          == errc::none);
    CHECK(
      decode_content_header(
        bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0, 1, 0, 0}), h)
      == errc::none);
    CHECK(
      decode_content_header(
        bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x80, 0}), h)
      == errc::frame_error);
    CHECK(decode_content_header(
            bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01}), h)
          == errc::frame_error);
    // Other classes have no content in 0-9-1.
    CHECK(decode_content_header(
            bytes({0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), h)
          == errc::frame_error);
    // Headers table with a bad length.
    CHECK(
      decode_content_header(
        bytes({0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 9}), h)
      == errc::frame_error);
  }

  TEST_CASE("body frames are split at frame_max - 8") {
    std::string body(10000, 'b');
    for (size_t i = 0; i < body.size(); ++i)
      body[i] = static_cast<char>('a' + i % 26);
    std::string wire;
    append_body_frames(wire, 9, body, 4096);
    auto r = decode_whole(wire, 4096);
    REQUIRE(r.error == errc::none);
    REQUIRE(r.frames.size() == 3);
    CHECK(r.frames[0].payload.size() == 4088);
    CHECK(r.frames[1].payload.size() == 4088);
    CHECK(r.frames[2].payload.size() == 10000 - 2 * 4088);
    std::string joined;
    for (auto& f : r.frames) {
      CHECK(f.type == frame_type::body);
      CHECK(f.channel == 9);
      joined += f.payload;
    }
    CHECK(joined == body);

    wire.clear();
    append_body_frames(wire, 9, std::string(4088, 'x'), 4096);
    CHECK(decode_whole(wire, 4096).frames.size() == 1);

    wire.clear();
    append_body_frames(wire, 9, "", 4096);
    CHECK(wire.empty());

    wire.clear();
    append_body_frames(wire, 9, body, 0); // no limit: one frame
    CHECK(decode_whole(wire, 0).frames.size() == 1);

    wire.clear();
    append_body_frames(wire, 9, body, 100); // below the minimum: 4096
    CHECK(decode_whole(wire, 4096).frames.size() == 3);
  }

} // TEST_SUITE
