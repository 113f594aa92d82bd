#include <doctest/doctest.h>

#include "protocol/frame.hpp"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"
#include "test_util.hpp"

using namespace flotilla;
using namespace flotilla::protocol;
using namespace flotilla::protocol::test;

namespace {

// A realistic client stream: handshake methods, a publish with content, a
// heartbeat, an ack.
std::string sample_stream() {
  std::string s;
  append_method_frame(
    s, 0,
    connection_start_ok{
      {{"product", "test"}}, "PLAIN", std::string("\0u\0p", 4), "en_US"});
  append_method_frame(s, 0, connection_tune_ok{2047, 131072, 60});
  append_method_frame(s, 0, connection_open{"/", "", false});
  append_method_frame(s, 1, channel_open{});
  append_method_frame(s, 1, basic_publish{0, "ex", "rk", true, false});
  basic_properties p;
  p.content_type = "text/plain";
  p.delivery_mode = 2;
  append_header_frame(s, 1, 10, p);
  append_body_frames(s, 1, "0123456789", 4096);
  append_heartbeat_frame(s);
  append_method_frame(s, 1, basic_ack{1, false});
  return s;
}

} // namespace

TEST_SUITE("protocol") {

  TEST_CASE("protocol header") {
    CHECK(protocol_header() == std::string_view("AMQP\x00\x00\x09\x01", 8));
    CHECK(check_protocol_header("") == header_check::need_more);
    CHECK(check_protocol_header("AM") == header_check::need_more);
    CHECK(check_protocol_header(std::string_view("AMQP\x00\x00\x09", 7))
          == header_check::need_more);
    CHECK(check_protocol_header(protocol_header()) == header_check::ok);
    CHECK(check_protocol_header(std::string(protocol_header()) + "more")
          == header_check::ok);
    CHECK(check_protocol_header("AMQX") == header_check::mismatch);
    CHECK(check_protocol_header("GET / HTTP/1.1") == header_check::mismatch);
    // 0-9 legacy header, 0-8 and AMQP 1.0 headers.
    CHECK(check_protocol_header(std::string_view("AMQP\x01\x01\x00\x09", 8))
          == header_check::mismatch);
    CHECK(check_protocol_header(std::string_view("AMQP\x01", 5))
          == header_check::mismatch);
    CHECK(check_protocol_header(std::string_view("AMQP\x01\x01\x08\x00", 8))
          == header_check::mismatch);
    CHECK(check_protocol_header(std::string_view("AMQP\x03\x01\x00\x00", 8))
          == header_check::mismatch);
    CHECK(check_protocol_header(std::string_view("AMQP\x00\x01\x00\x00", 8))
          == header_check::mismatch);
    CHECK(check_protocol_header(std::string_view("AMQP\x00\x00\x09\x00", 8))
          == header_check::mismatch);
  }

  TEST_CASE("frame decoder: whole frames are not copied") {
    std::string s;
    append_method_frame(s, 7, channel_open{});
    append_heartbeat_frame(s);
    frame_decoder dec{frame_min_size};
    std::vector<frame_view> seen;
    REQUIRE(dec.feed(s.data(), s.size(), [&](const frame_view& f) {
      seen.push_back(f);
      return errc::none;
    }) == errc::none);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].type == frame_type::method);
    CHECK(seen[0].channel == 7);
    CHECK(seen[0].payload.data() == s.data() + frame_header_size);
    CHECK(seen[0].payload == bytes({0, 20, 0, 10, 0}));
    CHECK(seen[1].type == frame_type::heartbeat);
    CHECK(seen[1].channel == 0);
    CHECK(seen[1].payload.empty());
    CHECK(dec.buffered() == 0);
    CHECK_FALSE(dec.failed());
  }

  TEST_CASE("frame encoding: known bytes") {
    std::string s;
    append_heartbeat_frame(s);
    CHECK(s == bytes({8, 0, 0, 0, 0, 0, 0, 0xCE}));
    s.clear();
    append_method_frame(s, 0x0102, channel_close_ok{});
    CHECK(s == bytes({1, 1, 2, 0, 0, 0, 4, 0, 20, 0, 41, 0xCE}));
  }

  TEST_CASE("frame decoder: every split gives the same frames") {
    auto s = sample_stream();
    auto whole = decode_whole(s);
    REQUIRE(whole.error == errc::none);
    REQUIRE(whole.frames.size() == 9);
    CHECK(whole.frames[5].type == frame_type::header);
    CHECK(whole.frames[6].payload == "0123456789");
    CHECK(whole.frames[7].type == frame_type::heartbeat);
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      CAPTURE(cut);
      CHECK(decode_split(s, {cut}) == whole);
    }
    std::vector<size_t> every_byte;
    for (size_t i = 1; i < s.size(); ++i)
      every_byte.push_back(i);
    CHECK(decode_split(s, every_byte) == whole);
    // Three pieces, a sample of cut pairs.
    for (size_t a = 0; a <= s.size(); a += 7)
      for (size_t b = a; b <= s.size(); b += 13)
        CHECK(decode_split(s, {a, b}) == whole);
  }

  TEST_CASE("frame decoder: frame_max counts payload plus 8") {
    std::string ok_frame;
    append_frame(ok_frame, frame_type::body, 1, std::string(4096 - 8, 'x'));
    auto r = decode_whole(ok_frame, 4096);
    CHECK(r.error == errc::none);
    CHECK(r.frames.size() == 1);

    std::string big;
    append_frame(big, frame_type::body, 1, std::string(4096 - 7, 'x'));
    CHECK(decode_whole(big, 4096).error == errc::frame_error);
    // Detected from the header alone, before the payload arrives.
    frame_decoder dec{4096};
    int frames = 0;
    auto count = [&](const frame_view&) {
      ++frames;
    };
    CHECK(dec.feed(big.data(), 7, count) == errc::frame_error);
    CHECK(dec.failed());
    CHECK(dec.error() == errc::frame_error);
    CHECK(dec.buffered() == 0);
    // Split inside the header.
    frame_decoder dec2{4096};
    CHECK(dec2.feed(big.data(), 3, count) == errc::none);
    CHECK(dec2.buffered() == 3);
    CHECK(dec2.feed(big.data() + 3, 4, count) == errc::frame_error);
    CHECK(frames == 0);

    // A 4 GiB announcement is refused without allocating.
    auto huge = bytes({3, 0, 1, 0xff, 0xff, 0xff, 0xff});
    CHECK(decode_whole(huge, 131072).error == errc::frame_error);

    // frame_max 0: no limit.
    CHECK(decode_whole(big, 0).error == errc::none);
  }

  TEST_CASE("frame decoder: set_frame_max applies to the next frame") {
    std::string s;
    append_frame(s, frame_type::body, 1, std::string(5000, 'a'));
    append_frame(s, frame_type::body, 1, std::string(5000, 'b'));
    frame_decoder dec{frame_min_size};
    auto e = dec.feed(s.data(), s.size(), [&](const frame_view&) {
      return errc::none;
    });
    CHECK(e == errc::frame_error);

    frame_decoder dec2{131072};
    int n = 0;
    e = dec2.feed(s.data(), s.size(), [&](const frame_view&) {
      ++n;
      dec2.set_frame_max(frame_min_size); // e.g. after tune-ok
      return errc::none;
    });
    CHECK(n == 1);
    CHECK(e == errc::frame_error);
    CHECK(dec2.frame_max() == frame_min_size);
  }

  TEST_CASE("frame decoder: bad frame end") {
    std::string s;
    append_method_frame(s, 1, channel_open{});
    auto good = s;
    s.back() = 0;
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      auto r = decode_split(s, {cut});
      CHECK(r.error == errc::frame_error);
      CHECK(r.frames.empty());
    }
    // The frame before the broken one is still delivered.
    auto two = good + s;
    auto r = decode_whole(two);
    CHECK(r.error == errc::frame_error);
    CHECK(r.frames.size() == 1);
  }

  TEST_CASE("frame decoder: unknown frame type") {
    for (int t : {0, 4, 7, 9, 65, 255}) {
      CAPTURE(t);
      auto s = bytes({t, 0, 0, 0, 0, 0, 0, 0xCE});
      CHECK(decode_whole(s).error == errc::frame_error);
    }
    // "AMQP..." sent again mid-stream reads as type 'A'.
    CHECK(decode_whole(std::string(protocol_header())).error
          == errc::frame_error);
  }

  TEST_CASE("frame decoder: failure is terminal") {
    auto s = bytes({9, 0, 0, 0, 0, 0, 0, 0xCE});
    frame_decoder dec{frame_min_size};
    auto none = [](const frame_view&) {
      return errc::none;
    };
    CHECK(dec.feed(s.data(), s.size(), none) == errc::frame_error);
    std::string good;
    append_heartbeat_frame(good);
    int n = 0;
    CHECK(dec.feed(good.data(), good.size(), [&](const frame_view&) {
      ++n;
      return errc::none;
    }) == errc::frame_error);
    CHECK(n == 0);
  }

  TEST_CASE("frame decoder: callback errors stop decoding") {
    std::string s;
    append_heartbeat_frame(s);
    append_heartbeat_frame(s);
    append_heartbeat_frame(s);
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      frame_decoder dec{frame_min_size};
      int n = 0;
      auto cb = [&](const frame_view&) {
        return ++n == 2 ? errc::unexpected_frame : errc::none;
      };
      auto e = dec.feed(s.data(), cut, cb);
      if (e == errc::none)
        e = dec.feed(s.data() + cut, s.size() - cut, cb);
      CHECK(e == errc::unexpected_frame);
      CHECK(n == 2);
      CHECK(dec.failed());
    }
  }

  TEST_CASE("frame decoder: partial frames are buffered") {
    std::string s;
    append_frame(s, frame_type::body, 3, "payload");
    frame_decoder dec{frame_min_size};
    std::string got;
    auto cb = [&](const frame_view& f) {
      got = std::string(f.payload);
    };
    CHECK(dec.feed(s.data(), 10, cb) == errc::none);
    CHECK(dec.buffered() == 10);
    CHECK(got.empty());
    CHECK(dec.feed(s.data() + 10, s.size() - 10, cb) == errc::none);
    CHECK(dec.buffered() == 0);
    CHECK(got == "payload");
    // An empty feed is fine.
    CHECK(dec.feed(s.data(), 0, cb) == errc::none);
  }

  TEST_CASE("frame decoder: split body frames stream in pieces") {
    auto s = sample_stream();
    std::string big(20000, 'b');
    append_body_frames(s, 2, big, 131072);
    append_heartbeat_frame(s);
    auto whole = decode_whole(s);
    REQUIRE(whole.error == errc::none);
    for (size_t cut = 0; cut <= s.size(); cut += (cut < 400 ? 1 : 997)) {
      CAPTURE(cut);
      frame_decoder dec{131072};
      dec.stream_bodies(true);
      decode_result r;
      std::string piece_acc;
      bool copied = false;
      auto on_frame = [&](const frame_view& f) {
        if (f.type == frame_type::body) {
          if (!f.payload.empty()
              && (f.payload.data() < s.data()
                  || f.payload.data() >= s.data() + s.size()))
            copied = true; // A body piece must point into the input.
          piece_acc.append(f.payload);
          if (f.more)
            return;
          r.frames.push_back({f.type, f.channel, piece_acc});
          piece_acc.clear();
          return;
        }
        CHECK_FALSE(f.more);
        r.frames.push_back({f.type, f.channel, std::string{f.payload}});
      };
      r.error = dec.feed(s.data(), cut, on_frame);
      if (r.error == errc::none)
        r.error = dec.feed(s.data() + cut, s.size() - cut, on_frame);
      CHECK(r == whole);
      CHECK_FALSE(copied);
      CHECK(piece_acc.empty());
    }
  }

  TEST_CASE("frame decoder: a streamed body frame still needs its end octet") {
    std::string s;
    append_frame(s, frame_type::body, 1, std::string(100, 'x'));
    s.back() = 'X';
    frame_decoder dec{frame_min_size};
    dec.stream_bodies(true);
    size_t pieces = 0;
    bool ended = false;
    auto cb = [&](const frame_view& f) {
      ++pieces;
      ended = ended || !f.more;
    };
    CHECK(dec.feed(s.data(), 50, cb) == errc::none);
    CHECK(dec.buffered() == 0);
    CHECK(dec.feed(s.data() + 50, s.size() - 50, cb) == errc::frame_error);
    CHECK(pieces == 2);
    CHECK_FALSE(ended);
  }

} // TEST_SUITE
