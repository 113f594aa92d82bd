#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "protocol/errc.hpp"
#include "protocol/wire.hpp"

namespace flotilla::protocol {

// AMQP 0-9-1 general frame format:
//   type:u8 | channel:u16 | size:u32 | payload:size bytes | 0xCE

enum class frame_type : uint8_t {
  method = 1,
  header = 2,
  body = 3,
  heartbeat = 8,
};

/// One decoded frame. `payload` borrows from the decoder's input or its
/// internal buffer and is valid only during the on_frame callback.
///
/// With frame_decoder::stream_bodies(true), a body frame split across feed()
/// calls arrives in pieces instead: every piece but the last has `more` set;
/// the last (often empty) comes once the frame-end octet is checked.
struct frame_view {
  frame_type type;
  uint16_t channel;
  std::string_view payload;
  bool more = false;
};

/// The frame-end octet.
constexpr uint8_t frame_end = 0xCE;

/// Bytes before the payload: type, channel, size.
constexpr size_t frame_header_size = 7;

/// Header plus frame-end: what a frame costs beyond its payload.
constexpr size_t frame_overhead = frame_header_size + 1;

/// The smallest frame_max a peer may negotiate; also the frame_max in force
/// until connection.tune-ok.
constexpr uint32_t frame_min_size = 4096;

/// Result of checking the protocol header a client sends first.
enum class header_check {
  need_more, ///< A prefix of the expected header; read more bytes.
  ok,        ///< The 8 bytes are "AMQP" 0 0 9 1.
  mismatch,  ///< Anything else: reply with protocol_header() and close.
};

/// Returns the AMQP 0-9-1 protocol header "AMQP\x00\x00\x09\x01".
std::string_view protocol_header();

/// Checks the first bytes a client sent. Returns mismatch as soon as one of
/// them differs from protocol_header() (this includes the legacy
/// "AMQP\x01\x01\x00\x09" of 0-9 and AMQP 1.0's headers), need_more while
/// `bytes` is a proper prefix of it, ok once all 8 match (extra bytes after
/// them are ignored: they are the first frame).
header_check check_protocol_header(std::string_view bytes);

/// Returns true for the frame types of AMQP 0-9-1 (1, 2, 3, 8).
constexpr bool is_known_frame_type(uint8_t t) {
  return t == 1 || t == 2 || t == 3 || t == 8;
}

/// Splits a byte stream into frames. One per connection, owned by the socket
/// side; not thread-safe.
///
/// State machine (per frame):
///   idle --(7 header bytes)--> checked --(size+1 more bytes)--> idle, emits
///      \--(bad type/size)--> failed      \--(bad end octet)--> failed
/// A callback error also moves to failed. `failed` is terminal: every later
/// feed() returns the first error without reading input.
///
/// Memory: a frame that arrives whole inside one feed() is handed out without
/// copying. Only a frame split across feed() calls is copied into an internal
/// buffer, which never grows beyond that frame's size (<= frame_max).
class frame_decoder {
public:
  /// `frame_max` is the negotiated maximum frame size including the 8 bytes
  /// of overhead; 0 means "no limit" as in connection.tune (don't, for peers
  /// you don't trust).
  explicit frame_decoder(uint32_t frame_max) : frame_max_(frame_max) {}

  /// Changes the limit for frames whose header has not been read yet. Safe to
  /// call from inside an on_frame callback (e.g. on connection.tune-ok).
  void set_frame_max(uint32_t frame_max) {
    frame_max_ = frame_max;
  }

  uint32_t frame_max() const {
    return frame_max_;
  }

  /// Hands body frames split across feed() calls out in pieces (see
  /// frame_view) instead of buffering them: a large body is then copied
  /// once, from the read buffer to where the consumer of the pieces keeps it.
  void stream_bodies(bool on) {
    stream_bodies_ = on;
  }

  /// Consumes all of `data` (any split of the stream is fine) and calls
  /// `on_frame(const frame_view&)` for every complete frame, in order.
  /// `on_frame` returns errc (or void); a non-none result stops decoding,
  /// fails the decoder and is returned. Returns errc::none, or:
  /// - errc::frame_error when payload size + 8 exceeds frame_max, the type is
  ///   not 1, 2, 3 or 8, or the frame-end octet is not 0xCE.
  /// Must not be called re-entrantly from `on_frame`.
  template<class F>
  errc feed(const char* data, size_t size, F&& on_frame);

  /// Returns true once feed() returned an error.
  bool failed() const {
    return error_ != errc::none;
  }

  /// Returns the error feed() failed with, errc::none if it has not.
  errc error() const {
    return error_;
  }

  /// Returns true inside a body frame handed out in pieces.
  bool streaming() const {
    return streaming_;
  }

  /// Returns how many bytes of an incomplete frame are held.
  size_t buffered() const {
    return buf_.size();
  }

private:
  struct header {
    frame_type type;
    uint16_t channel;
    uint32_t size;
  };

  /// Parses and validates 7 header bytes.
  errc parse_header(const char* p, header& h) const {
    auto type = static_cast<uint8_t>(p[0]);
    h.channel = wire::load_u16(p + 1);
    h.size = wire::load_u32(p + 3);
    if (!is_known_frame_type(type))
      return errc::frame_error;
    h.type = static_cast<frame_type>(type);
    if (frame_max_ != 0 && uint64_t{h.size} + frame_overhead > frame_max_)
      return errc::frame_error;
    return errc::none;
  }

  errc fail(errc e) {
    error_ = e;
    buf_.clear();
    want_ = 0;
    streaming_ = false;
    return e;
  }

  /// Starts handing out the payload of body frame `h` in pieces.
  void start_stream(const header& h) {
    hdr_ = h;
    streaming_ = true;
    stream_left_ = h.size;
  }

  template<class F>
  static errc deliver(F& on_frame, const frame_view& f) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const frame_view&>>) {
      on_frame(f);
      return errc::none;
    } else {
      return static_cast<errc>(on_frame(f));
    }
  }

  /// Appends to buf_, growing capacity at most to want_ (the frame size).
  void buffer(const char* data, size_t n);

  uint32_t frame_max_;
  errc error_ = errc::none;
  std::string buf_; ///< Bytes of the current incomplete frame.
  size_t want_ = 0; ///< Size of the buffered frame, 0 until its header is in.
  header hdr_{};    ///< Header of the buffered or streamed frame.
  bool stream_bodies_ = false;
  bool streaming_ = false;   ///< Inside a body frame handed out in pieces.
  uint32_t stream_left_ = 0; ///< Its payload bytes still to come.
};

template<class F>
errc frame_decoder::feed(const char* data, size_t size, F&& on_frame) {
  if (error_ != errc::none)
    return error_;
  while (size > 0) {
    if (streaming_) {
      frame_view f{frame_type::body, hdr_.channel, {}, true};
      if (stream_left_ > 0) {
        auto n = std::min<size_t>(size, stream_left_);
        f.payload = std::string_view{data, n};
        data += n;
        size -= n;
        stream_left_ -= static_cast<uint32_t>(n);
      } else {
        if (static_cast<uint8_t>(*data) != frame_end)
          return fail(errc::frame_error);
        ++data;
        --size;
        streaming_ = false;
        f.more = false;
      }
      if (auto e = deliver(on_frame, f); e != errc::none)
        return fail(e);
      continue;
    }
    if (buf_.empty()) {
      // Fast path: frames that lie entirely in the input are not copied.
      if (size < frame_header_size) {
        buffer(data, size);
        return errc::none;
      }
      header h;
      if (auto e = parse_header(data, h); e != errc::none)
        return fail(e);
      size_t total = size_t{h.size} + frame_overhead;
      if (size < total && stream_bodies_ && h.type == frame_type::body) {
        start_stream(h);
        data += frame_header_size;
        size -= frame_header_size;
        continue;
      }
      if (size < total) {
        hdr_ = h;
        want_ = total;
        buffer(data, size);
        return errc::none;
      }
      if (static_cast<uint8_t>(data[total - 1]) != frame_end)
        return fail(errc::frame_error);
      frame_view f{h.type, h.channel,
                   std::string_view{data + frame_header_size, h.size}};
      data += total;
      size -= total;
      if (auto e = deliver(on_frame, f); e != errc::none)
        return fail(e);
      continue;
    }
    // Slow path: complete the buffered frame.
    if (want_ == 0) {
      auto n = std::min(frame_header_size - buf_.size(), size);
      buffer(data, n);
      data += n;
      size -= n;
      if (buf_.size() < frame_header_size)
        return errc::none;
      if (auto e = parse_header(buf_.data(), hdr_); e != errc::none)
        return fail(e);
      if (stream_bodies_ && hdr_.type == frame_type::body) {
        buf_.clear();
        start_stream(hdr_);
        continue;
      }
      want_ = size_t{hdr_.size} + frame_overhead;
    }
    auto n = std::min(want_ - buf_.size(), size);
    buffer(data, n);
    data += n;
    size -= n;
    if (buf_.size() < want_)
      return errc::none;
    if (static_cast<uint8_t>(buf_.back()) != frame_end)
      return fail(errc::frame_error);
    frame_view f{hdr_.type, hdr_.channel,
                 std::string_view{buf_.data() + frame_header_size, hdr_.size}};
    auto e = deliver(on_frame, f);
    buf_.clear();
    want_ = 0;
    if (e != errc::none)
      return fail(e);
  }
  return errc::none;
}

/// Appends a frame header (type, channel, size) for a payload of `size`
/// bytes; the caller appends the payload and then frame_end.
inline void append_frame_header(std::string& out, frame_type type,
                                uint16_t channel, uint32_t size) {
  char b[frame_header_size];
  b[0] = static_cast<char>(type);
  wire::store_u16(b + 1, channel);
  wire::store_u32(b + 3, size);
  out.append(b, frame_header_size);
}

/// Appends a whole frame around `payload`.
inline void append_frame(std::string& out, frame_type type, uint16_t channel,
                         std::string_view payload) {
  out.reserve(out.size() + payload.size() + frame_overhead);
  append_frame_header(out, type, channel,
                      static_cast<uint32_t>(payload.size()));
  out.append(payload.data(), payload.size());
  out.push_back(static_cast<char>(frame_end));
}

/// Appends a heartbeat frame (type 8, channel 0, empty payload).
inline void append_heartbeat_frame(std::string& out) {
  append_frame(out, frame_type::heartbeat, 0, {});
}

} // namespace flotilla::protocol
