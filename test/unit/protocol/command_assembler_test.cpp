#include <doctest/doctest.h>

#include "protocol/command_assembler.hpp"
#include "test_util.hpp"

using namespace flotilla;
using namespace flotilla::protocol;
using namespace flotilla::protocol::test;

namespace {

/// Decodes `wire` with a frame_decoder feeding a command_assembler; collects
/// the commands and the first error.
struct pipeline {
  frame_decoder dec{131072};
  command_assembler asm_;
  std::vector<command> commands;

  explicit pipeline(uint64_t max_body = 128ull << 20) : asm_(max_body) {}
  pipeline(bool stream) {
    dec.stream_bodies(stream);
  }

  errc feed(std::string_view wire) {
    return dec.feed(wire.data(), wire.size(), [&](const frame_view& f) {
      return asm_.on_frame(f, [&](command&& c) {
        commands.push_back(std::move(c));
        return errc::none;
      });
    });
  }
};

std::string publish(uint16_t channel, std::string_view body,
                    uint32_t frame_max = 4096) {
  std::string s;
  append_method_frame(s, channel, basic_publish{0, "ex", "rk", false, false});
  basic_properties p;
  p.message_id = "m" + std::to_string(channel);
  append_header_frame(s, channel, body.size(), p);
  append_body_frames(s, channel, body, frame_max);
  return s;
}

std::string header_payload(uint64_t body_size) {
  std::string s;
  append_header_payload(s, body_size, basic_properties{});
  return s;
}

std::string method_frame(uint16_t channel, const method& m) {
  std::string s;
  append_method_frame(s, channel, m);
  return s;
}

} // namespace

TEST_SUITE("protocol") {

  TEST_CASE("assembler: publish with content") {
    std::string body(10000, 'z');
    pipeline p;
    REQUIRE(p.feed(publish(3, body)) == errc::none);
    REQUIRE(p.commands.size() == 1);
    auto& c = p.commands[0];
    CHECK(c.channel == 3);
    CHECK(std::get<basic_publish>(c.m).routing_key == "rk");
    REQUIRE(c.header.has_value());
    CHECK(c.header->body_size == 10000);
    CHECK(c.header->properties.message_id == "m3");
    CHECK(c.body == body);
    content_header again;
    REQUIRE(decode_content_header(c.raw_header, again) == errc::none);
    CHECK(again == *c.header);
    CHECK_FALSE(p.asm_.in_progress(3));
  }

  TEST_CASE("assembler: streamed body pieces make the same command") {
    std::string body;
    for (int i = 0; i < 300000; ++i)
      body.push_back(static_cast<char>('a' + i % 26));
    auto wire = publish(2, body, 131072) + method_frame(2, basic_ack{5, false});
    for (size_t step : {size_t{1000}, size_t{65536}, size_t{99991}}) {
      CAPTURE(step);
      pipeline p{true};
      for (size_t pos = 0; pos < wire.size(); pos += step)
        REQUIRE(p.feed(std::string_view{wire}.substr(pos, step)) == errc::none);
      REQUIRE(p.commands.size() == 2);
      CHECK(p.commands[0].body == body);
      CHECK(p.commands[0].header->body_size == body.size());
      CHECK(std::holds_alternative<basic_ack>(p.commands[1].m));
    }
    // More body bytes than the header announced: frame_error, as unstreamed.
    std::string hdr;
    append_header_frame(hdr, 2, 10, basic_properties{});
    auto over = method_frame(2, basic_publish{}) + hdr;
    append_frame(over, frame_type::body, 2, std::string(20, 'x'));
    pipeline p{true};
    CHECK(p.feed(std::string_view{over}.substr(0, over.size() - 5))
          == errc::frame_error);
    CHECK(p.commands.empty());
  }

  TEST_CASE("assembler: empty body completes at the header") {
    pipeline p;
    std::string s;
    append_method_frame(s, 1, basic_publish{});
    append_header_frame(s, 1, 0, basic_properties{});
    REQUIRE(p.feed(s) == errc::none);
    REQUIRE(p.commands.size() == 1);
    CHECK(p.commands[0].body.empty());
    CHECK(p.commands[0].header->body_size == 0);
  }

  TEST_CASE("assembler: plain methods pass straight through") {
    pipeline p;
    REQUIRE(p.feed(method_frame(0, connection_tune_ok{10, 4096, 0})
                   + method_frame(2,
                                  [] {
                                    queue_declare q;
                                    q.queue = "q";
                                    return q;
                                  }()))
            == errc::none);
    REQUIRE(p.commands.size() == 2);
    CHECK(p.commands[0].channel == 0);
    CHECK(std::holds_alternative<connection_tune_ok>(p.commands[0].m));
    CHECK_FALSE(p.commands[0].header);
    CHECK(std::get<queue_declare>(p.commands[1].m).queue == "q");
    // Heartbeats produce nothing.
    std::string hb;
    append_heartbeat_frame(hb);
    CHECK(p.feed(hb) == errc::none);
    CHECK(p.commands.size() == 2);
  }

  TEST_CASE("assembler: channels interleave") {
    auto a = publish(1, std::string(9000, 'a'));
    auto b = publish(2, std::string(5000, 'b'));
    auto fa = decode_whole(a).frames;
    auto fb = decode_whole(b).frames;
    REQUIRE(fa.size() == 5);
    REQUIRE(fb.size() == 4);
    std::string mixed;
    for (size_t i = 0; i < 5; ++i) {
      append_frame(mixed, fa[i].type, fa[i].channel, fa[i].payload);
      if (i < fb.size())
        append_frame(mixed, fb[i].type, fb[i].channel, fb[i].payload);
    }
    pipeline p;
    REQUIRE(p.feed(mixed) == errc::none);
    REQUIRE(p.commands.size() == 2);
    CHECK(p.commands[0].channel == 2); // finished first
    CHECK(p.commands[0].body == std::string(5000, 'b'));
    CHECK(p.commands[1].channel == 1);
    CHECK(p.commands[1].body == std::string(9000, 'a'));
  }

  TEST_CASE("assembler: every split of a stream gives the same commands") {
    std::string s = method_frame(1, channel_open{}) + publish(1, "hello")
                    + publish(2, std::string(5000, 'x'))
                    + method_frame(1, basic_ack{1, false});
    auto run = [&](size_t cut) {
      pipeline p;
      auto e = p.feed(std::string_view(s).substr(0, cut));
      if (e == errc::none)
        e = p.feed(std::string_view(s).substr(cut));
      REQUIRE(e == errc::none);
      std::vector<std::string> out;
      for (auto& c : p.commands)
        out.push_back(describe(c.m) + "|" + c.raw_header + "|" + c.body);
      return out;
    };
    auto whole = run(s.size());
    REQUIRE(whole.size() == 4);
    for (size_t cut = 0; cut < s.size(); ++cut)
      CHECK(run(cut) == whole);
  }

  TEST_CASE("assembler: unexpected frames") {
    command_assembler a;
    auto sink = [](command&&) {
      return errc::none;
    };
    auto hp = header_payload(4);
    auto publish_payload = [] {
      std::string s;
      append_method_payload(s, basic_publish{});
      return s;
    }();

    SUBCASE("header without a method") {
      CHECK(a.on_frame({frame_type::header, 1, hp}, sink)
            == errc::unexpected_frame);
      CHECK(a.last_error_channel() == 1);
    }
    SUBCASE("body without a header") {
      CHECK(a.on_frame({frame_type::body, 1, "abcd"}, sink)
            == errc::unexpected_frame);
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      CHECK(a.in_progress(1));
      CHECK(a.on_frame({frame_type::body, 1, "abcd"}, sink)
            == errc::unexpected_frame);
      CHECK_FALSE(a.in_progress(1));
    }
    SUBCASE("method while content is incomplete") {
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      CHECK(a.on_frame({frame_type::method, 1, publish_payload}, sink)
            == errc::unexpected_frame);
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      REQUIRE(a.on_frame({frame_type::header, 1, hp}, sink) == errc::none);
      REQUIRE(a.on_frame({frame_type::body, 1, "ab"}, sink) == errc::none);
      std::string ack;
      append_method_payload(ack, basic_ack{});
      CHECK(a.on_frame({frame_type::method, 1, ack}, sink)
            == errc::unexpected_frame);
    }
    SUBCASE("another channel is unaffected") {
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      std::string ack;
      append_method_payload(ack, basic_ack{});
      CHECK(a.on_frame({frame_type::method, 2, ack}, sink) == errc::none);
    }
    SUBCASE("header of another class") {
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      auto other = hp;
      other[1] = 50;
      CHECK(a.on_frame({frame_type::header, 1, other}, sink)
            == errc::unexpected_frame);
    }
    SUBCASE("header with weight") {
      REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
              == errc::none);
      auto weighted = hp;
      weighted[3] = 1;
      CHECK(a.on_frame({frame_type::header, 1, weighted}, sink)
            == errc::unexpected_frame);
    }
    SUBCASE("content frames on channel 0") {
      CHECK(a.on_frame({frame_type::header, 0, hp}, sink)
            == errc::unexpected_frame);
      CHECK(a.on_frame({frame_type::body, 0, "x"}, sink)
            == errc::unexpected_frame);
      CHECK(a.last_error_channel() == 0);
    }
    SUBCASE("content method on channel 0") {
      CHECK(a.on_frame({frame_type::method, 0, publish_payload}, sink)
            == errc::channel_error);
      CHECK_FALSE(a.in_progress(0));
    }
  }

  TEST_CASE("assembler: frame errors") {
    command_assembler a;
    int n = 0;
    auto sink = [&](command&&) {
      ++n;
      return errc::none;
    };
    std::string publish_payload;
    append_method_payload(publish_payload, basic_publish{});

    SUBCASE("body beyond the announced size") {
      REQUIRE(a.on_frame({frame_type::method, 4, publish_payload}, sink)
              == errc::none);
      REQUIRE(a.on_frame({frame_type::header, 4, header_payload(4)}, sink)
              == errc::none);
      REQUIRE(a.on_frame({frame_type::body, 4, "abc"}, sink) == errc::none);
      CHECK(a.on_frame({frame_type::body, 4, "de"}, sink) == errc::frame_error);
      CHECK(a.last_error_channel() == 4);
      CHECK(n == 0);
    }
    SUBCASE("heartbeat on a channel") {
      CHECK(a.on_frame({frame_type::heartbeat, 1, ""}, sink)
            == errc::frame_error);
      CHECK(a.last_error_channel() == 1);
    }
    SUBCASE("heartbeat with payload") {
      CHECK(a.on_frame({frame_type::heartbeat, 0, "x"}, sink)
            == errc::frame_error);
    }
    SUBCASE("short header") {
      REQUIRE(a.on_frame({frame_type::method, 4, publish_payload}, sink)
              == errc::none);
      CHECK(a.on_frame({frame_type::header, 4, header_payload(4).substr(0, 11)},
                       sink)
            == errc::frame_error);
    }
    SUBCASE("malformed properties") {
      REQUIRE(a.on_frame({frame_type::method, 4, publish_payload}, sink)
              == errc::none);
      CHECK(a.on_frame({frame_type::header, 4, header_payload(4) + "x"}, sink)
            == errc::frame_error);
    }
    SUBCASE("bad method payload") {
      CHECK(a.on_frame({frame_type::method, 4, bytes({0, 60})}, sink)
            == errc::frame_error);
      CHECK(a.on_frame({frame_type::method, 4, bytes({0, 61, 0, 1})}, sink)
            == errc::command_invalid);
    }
  }

  TEST_CASE("assembler: body size limit is a channel error") {
    command_assembler a{1000};
    std::vector<command> got;
    auto sink = [&](command&& c) {
      got.push_back(std::move(c));
    };
    std::string publish_payload;
    append_method_payload(publish_payload, basic_publish{});
    REQUIRE(a.on_frame({frame_type::method, 7, publish_payload}, sink)
            == errc::none);
    auto e = a.on_frame({frame_type::header, 7, header_payload(1001)}, sink);
    CHECK(e == errc::precondition_failed);
    CHECK_FALSE(is_connection_error(e));
    CHECK(a.last_error_channel() == 7);
    CHECK_FALSE(a.in_progress(7));
    // The channel can carry new content afterwards.
    REQUIRE(a.on_frame({frame_type::method, 7, publish_payload}, sink)
            == errc::none);
    REQUIRE(a.on_frame({frame_type::header, 7, header_payload(1000)}, sink)
            == errc::none);
    REQUIRE(a.on_frame({frame_type::body, 7, std::string(1000, 'x')}, sink)
            == errc::none);
    REQUIRE(got.size() == 1);
    CHECK(got[0].body.size() == 1000);
    a.set_max_body_size(10);
    CHECK(a.max_body_size() == 10);
  }

  TEST_CASE("assembler: a lying header does not allocate its size") {
    command_assembler a{1ull << 40};
    std::string publish_payload;
    append_method_payload(publish_payload, basic_publish{});
    auto sink = [](command&&) {};
    REQUIRE(a.on_frame({frame_type::method, 1, publish_payload}, sink)
            == errc::none);
    REQUIRE(
      a.on_frame({frame_type::header, 1, header_payload(1ull << 39)}, sink)
      == errc::none);
    CHECK(a.in_progress(1));
    REQUIRE(a.on_frame({frame_type::body, 1, "x"}, sink) == errc::none);
    a.reset_channel(1);
    CHECK_FALSE(a.in_progress(1));
    CHECK(a.on_frame({frame_type::body, 1, "x"}, sink)
          == errc::unexpected_frame);
  }

  TEST_CASE("assembler: callback errors are returned") {
    command_assembler a;
    std::string ack;
    append_method_payload(ack, basic_ack{});
    auto e = a.on_frame({frame_type::method, 9, ack}, [](command&&) {
      return errc::not_found;
    });
    CHECK(e == errc::not_found);
    CHECK(a.last_error_channel() == 9);
  }

} // TEST_SUITE
