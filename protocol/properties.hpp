#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/errc.hpp"
#include "protocol/field_table.hpp"
#include "protocol/frame.hpp"

namespace flotilla::protocol {

/// The properties of class basic (the only content class of 0-9-1), in wire
/// order. An engaged optional is present on the wire, even if empty.
struct basic_properties {
  std::optional<std::string> content_type;     ///< shortstr, flag bit 15
  std::optional<std::string> content_encoding; ///< shortstr, bit 14
  std::optional<field_table> headers;          ///< table, bit 13
  std::optional<uint8_t> delivery_mode;      ///< octet, bit 12 (2 = persistent)
  std::optional<uint8_t> priority;           ///< octet, bit 11
  std::optional<std::string> correlation_id; ///< shortstr, bit 10
  std::optional<std::string> reply_to;       ///< shortstr, bit 9
  std::optional<std::string> expiration;     ///< shortstr, bit 8 (ms, text)
  std::optional<std::string> message_id;     ///< shortstr, bit 7
  std::optional<uint64_t> timestamp;         ///< timestamp, bit 6
  std::optional<std::string> type;           ///< shortstr, bit 5
  std::optional<std::string> user_id;        ///< shortstr, bit 4
  std::optional<std::string> app_id;         ///< shortstr, bit 3
  std::optional<std::string> cluster_id;     ///< shortstr, bit 2
};

bool operator==(const basic_properties& a, const basic_properties& b);
bool operator!=(const basic_properties& a, const basic_properties& b);

/// A decoded content header frame payload. The weight field is always 0 in
/// 0-9-1 and is not kept.
struct content_header {
  uint16_t class_id = 60;
  uint64_t body_size = 0;
  basic_properties properties;
};

bool operator==(const content_header& a, const content_header& b);
bool operator!=(const content_header& a, const content_header& b);

/// Size of the fixed part of a header payload: class, weight, body size.
constexpr size_t content_header_fixed_size = 12;

/// Decodes a header frame payload: class id, weight (ignored here; the
/// assembler checks it), body size, property flags (with the continuation
/// bit), then the flagged properties. Returns errc::none, or
/// errc::frame_error when the payload is truncated, has trailing bytes, its
/// class is not 60, a flag names a property basic does not have (bit 1, or
/// any bit of a continuation word), or the headers table is malformed. After
/// an error `out` is unspecified.
errc decode_content_header(std::string_view payload, content_header& out);

/// Decodes property flags and properties of class basic (the part of a header
/// payload after the first 12 bytes); errors as decode_content_header.
errc decode_basic_properties(std::string_view in, basic_properties& out);

/// Appends property flags and properties (no continuation word is needed:
/// basic has 14 properties).
void encode_basic_properties(std::string& out, const basic_properties& p);

/// Appends a header frame payload for class basic.
void append_header_payload(std::string& out, uint64_t body_size,
                           const basic_properties& p);

/// Appends a whole header frame for class basic.
void append_header_frame(std::string& out, uint16_t channel, uint64_t body_size,
                         const basic_properties& p);

/// Appends a header frame around a payload encoded earlier (e.g. the
/// raw_header of a received command), so deliveries skip re-encoding.
void append_raw_header_frame(std::string& out, uint16_t channel,
                             std::string_view header_payload);

/// Appends `body` as body frames of at most frame_max - 8 payload bytes each;
/// nothing for an empty body. frame_max 0 means no limit (one frame); values
/// below frame_min_size are treated as frame_min_size.
void append_body_frames(std::string& out, uint16_t channel,
                        std::string_view body, uint32_t frame_max);

/// Returns the payload size of each body frame (the last may be shorter)
/// for `frame_max`, as append_body_frames splits bodies.
size_t body_frame_payload(uint32_t frame_max, size_t body_size);

/// Splits `body` as append_body_frames does, but appends only each frame's
/// header and frame_end: `on_payload(at, piece)` is called with the offset in
/// `out` where the piece belongs (scatter/gather writes of shared bodies).
template<class F>
void append_body_frame_envelopes(std::string& out, uint16_t channel,
                                 std::string_view body, uint32_t frame_max,
                                 F&& on_payload) {
  auto chunk = body_frame_payload(frame_max, body.size());
  while (!body.empty()) {
    auto n = body.size() < chunk ? body.size() : chunk;
    append_frame_header(out, frame_type::body, channel,
                        static_cast<uint32_t>(n));
    on_payload(out.size(), body.substr(0, n));
    out.push_back(static_cast<char>(frame_end));
    body.remove_prefix(n);
  }
}

// append_heartbeat_frame(std::string&) is declared in frame.hpp.

} // namespace flotilla::protocol
