// Feeds arbitrary bytes through frame_decoder -> command_assembler (which runs
// decode_method and decode_content_header) and checks that the whole input,
// the input split at data[0] % size, split at data[size-1] % size, and fed one
// byte at a time all produce the same trace of frames, commands and errors.
// With body streaming on (split body frames handed out in pieces), the same
// splits must produce the same commands (errors may come earlier: a piece is
// checked before its frame is complete).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "protocol/command_assembler.hpp"
#include "protocol/frame.hpp"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"

using namespace flotilla;
using namespace flotilla::protocol;

namespace {

constexpr uint32_t fuzz_frame_max = 4096;
constexpr uint64_t fuzz_max_body = 16384;

void append_number(std::string& out, uint64_t x) {
  out += std::to_string(x);
  out.push_back(' ');
}

// Checks that a decoded command re-encodes to something that decodes to the
// same bytes again.
void check_reencode(const command& c) {
  std::string a;
  append_method_frame(a, c.channel, c.m);
  std::string b;
  frame_decoder dec{0};
  int frames = 0;
  auto e = dec.feed(a.data(), a.size(), [&](const frame_view& f) {
    ++frames;
    method m;
    FUZZ_CHECK(decode_method(f.payload, m) == errc::none);
    append_method_frame(b, f.channel, m);
    return errc::none;
  });
  FUZZ_CHECK(e == errc::none && frames == 1);
  FUZZ_CHECK(a == b);
  if (c.header) {
    std::string h1;
    append_header_payload(h1, c.header->body_size, c.header->properties);
    content_header again;
    FUZZ_CHECK(decode_content_header(h1, again) == errc::none);
    std::string h2;
    append_header_payload(h2, again.body_size, again.properties);
    FUZZ_CHECK(h1 == h2);
    FUZZ_CHECK(c.body.size() == c.header->body_size);
  }
}

struct pipeline {
  explicit pipeline(bool stream = false) {
    dec.stream_bodies(stream);
  }

  frame_decoder dec{fuzz_frame_max};
  command_assembler assembler{fuzz_max_body};
  std::string trace;
  std::string commands; ///< The "C" lines of the trace.
  errc final = errc::none;

  void feed(const uint8_t* data, size_t size) {
    if (final != errc::none)
      return;
    auto e = dec.feed(reinterpret_cast<const char*>(data), size,
                      [this](const frame_view& f) {
                        return on_frame(f);
                      });
    final = e;
    FUZZ_CHECK(dec.failed() == (e != errc::none));
    FUZZ_CHECK(dec.buffered() < fuzz_frame_max);
  }

  errc on_frame(const frame_view& f) {
    FUZZ_CHECK(f.payload.size() + frame_overhead <= fuzz_frame_max);
    trace += "F ";
    append_number(trace, static_cast<uint64_t>(f.type));
    append_number(trace, f.channel);
    trace.append(f.payload.data(), f.payload.size());
    trace.push_back('\n');
    auto e = assembler.on_frame(f, [this](command&& c) {
      auto start = trace.size();
      trace += "C ";
      append_number(trace, c.channel);
      trace += describe(c.m);
      trace.push_back(' ');
      trace += c.raw_header;
      trace.push_back(' ');
      trace += c.body;
      trace.push_back('\n');
      commands.append(trace, start, std::string::npos);
      FUZZ_CHECK(has_content(c.m) == c.header.has_value());
      check_reencode(c);
      return errc::none;
    });
    if (e == errc::none)
      return e;
    trace += "E ";
    append_number(trace, reply_code(e));
    append_number(trace, assembler.last_error_channel());
    trace.push_back('\n');
    FUZZ_CHECK(!assembler.in_progress(assembler.last_error_channel()));
    // Channel-level errors leave the connection up: keep going, as a
    // connection would after sending channel.close.
    return is_connection_error(e) ? e : errc::none;
  }

  std::string result() const {
    return trace + "R " + std::to_string(reply_code(final));
  }
};

pipeline run_split(const uint8_t* data, size_t size, size_t cut,
                   bool stream = false) {
  pipeline p{stream};
  p.feed(data, cut);
  p.feed(data + cut, size - cut);
  return p;
}

bool is_prefix(const std::string& a, const std::string& b) {
  return a.size() <= b.size() && b.compare(0, a.size(), a) == 0;
}

/// Streaming gives the same commands; after an error on either side, one
/// list is a prefix of the other.
void check_streamed(const pipeline& plain, const pipeline& streamed) {
  if (plain.final == errc::none && streamed.final == errc::none)
    FUZZ_CHECK(plain.commands == streamed.commands);
  else
    FUZZ_CHECK(is_prefix(plain.commands, streamed.commands)
               || is_prefix(streamed.commands, plain.commands));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  auto whole = run_split(data, size, size);
  auto result = whole.result();
  for (size_t cut : {size_t{data[0] % size}, size_t{data[size - 1] % size}}) {
    FUZZ_CHECK(run_split(data, size, cut).result() == result);
    check_streamed(whole, run_split(data, size, cut, true));
  }
  pipeline bytewise;
  pipeline bytewise_streamed{true};
  for (size_t i = 0; i < size; ++i) {
    bytewise.feed(data + i, 1);
    bytewise_streamed.feed(data + i, 1);
  }
  FUZZ_CHECK(bytewise.result() == result);
  check_streamed(whole, bytewise_streamed);
  return 0;
}
