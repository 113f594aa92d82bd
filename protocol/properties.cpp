#include "protocol/properties.hpp"

#include "protocol/wire.hpp"

namespace flotilla::protocol {

bool operator==(const basic_properties& a, const basic_properties& b) {
  return a.content_type == b.content_type
         && a.content_encoding == b.content_encoding && a.headers == b.headers
         && a.delivery_mode == b.delivery_mode && a.priority == b.priority
         && a.correlation_id == b.correlation_id && a.reply_to == b.reply_to
         && a.expiration == b.expiration && a.message_id == b.message_id
         && a.timestamp == b.timestamp && a.type == b.type
         && a.user_id == b.user_id && a.app_id == b.app_id
         && a.cluster_id == b.cluster_id;
}

bool operator!=(const basic_properties& a, const basic_properties& b) {
  return !(a == b);
}

bool operator==(const content_header& a, const content_header& b) {
  return a.class_id == b.class_id && a.body_size == b.body_size
         && a.properties == b.properties;
}

bool operator!=(const content_header& a, const content_header& b) {
  return !(a == b);
}

namespace {

constexpr uint16_t basic_class_id = 60;

// Flag bits of class basic's properties.
enum : uint16_t {
  flag_content_type = 1u << 15,
  flag_content_encoding = 1u << 14,
  flag_headers = 1u << 13,
  flag_delivery_mode = 1u << 12,
  flag_priority = 1u << 11,
  flag_correlation_id = 1u << 10,
  flag_reply_to = 1u << 9,
  flag_expiration = 1u << 8,
  flag_message_id = 1u << 7,
  flag_timestamp = 1u << 6,
  flag_type = 1u << 5,
  flag_user_id = 1u << 4,
  flag_app_id = 1u << 3,
  flag_cluster_id = 1u << 2,
  flag_unknown = 1u << 1,
  flag_continuation = 1u << 0,
};

bool read_shortstr(wire::reader& r, uint16_t flags, uint16_t bit,
                   std::optional<std::string>& out) {
  if ((flags & bit) == 0) {
    out.reset();
    return true;
  }
  return r.shortstr(out.emplace());
}

bool read_octet(wire::reader& r, uint16_t flags, uint16_t bit,
                std::optional<uint8_t>& out) {
  if ((flags & bit) == 0) {
    out.reset();
    return true;
  }
  return r.u8(out.emplace());
}

void write_shortstr(std::string& out, const std::optional<std::string>& s) {
  if (s)
    wire::put_shortstr(out, *s);
}

} // namespace

errc decode_basic_properties(std::string_view in, basic_properties& p) {
  wire::reader r{in};
  uint16_t flags;
  if (!r.u16(flags) || (flags & flag_unknown) != 0)
    return errc::frame_error;
  // Continuation words may follow; basic has no properties there, so they
  // must be empty apart from their own continuation bit.
  for (uint16_t more = flags; (more & flag_continuation) != 0;)
    if (!r.u16(more) || (more & ~uint16_t{flag_continuation}) != 0)
      return errc::frame_error;
  bool ok
    = read_shortstr(r, flags, flag_content_type, p.content_type)
      && read_shortstr(r, flags, flag_content_encoding, p.content_encoding);
  if (!ok)
    return errc::frame_error;
  if ((flags & flag_headers) != 0) {
    auto rest = r.rest();
    if (decode_field_table(rest, p.headers.emplace()) != errc::none)
      return errc::frame_error;
    r.reset(rest);
  } else {
    p.headers.reset();
  }
  ok = read_octet(r, flags, flag_delivery_mode, p.delivery_mode)
       && read_octet(r, flags, flag_priority, p.priority)
       && read_shortstr(r, flags, flag_correlation_id, p.correlation_id)
       && read_shortstr(r, flags, flag_reply_to, p.reply_to)
       && read_shortstr(r, flags, flag_expiration, p.expiration)
       && read_shortstr(r, flags, flag_message_id, p.message_id);
  if (!ok)
    return errc::frame_error;
  if ((flags & flag_timestamp) != 0) {
    if (!r.u64(p.timestamp.emplace()))
      return errc::frame_error;
  } else {
    p.timestamp.reset();
  }
  ok = read_shortstr(r, flags, flag_type, p.type)
       && read_shortstr(r, flags, flag_user_id, p.user_id)
       && read_shortstr(r, flags, flag_app_id, p.app_id)
       && read_shortstr(r, flags, flag_cluster_id, p.cluster_id);
  if (!ok || !r.empty())
    return errc::frame_error;
  return errc::none;
}

errc decode_content_header(std::string_view payload, content_header& out) {
  wire::reader r{payload};
  uint16_t weight;
  if (!r.u16(out.class_id) || !r.u16(weight) || !r.u64(out.body_size))
    return errc::frame_error;
  if (out.class_id != basic_class_id)
    return errc::frame_error;
  return decode_basic_properties(r.rest(), out.properties);
}

void encode_basic_properties(std::string& out, const basic_properties& p) {
  uint16_t flags = 0;
  auto flag = [&flags](bool present, uint16_t bit) {
    if (present)
      flags = static_cast<uint16_t>(flags | bit);
  };
  flag(p.content_type.has_value(), flag_content_type);
  flag(p.content_encoding.has_value(), flag_content_encoding);
  flag(p.headers.has_value(), flag_headers);
  flag(p.delivery_mode.has_value(), flag_delivery_mode);
  flag(p.priority.has_value(), flag_priority);
  flag(p.correlation_id.has_value(), flag_correlation_id);
  flag(p.reply_to.has_value(), flag_reply_to);
  flag(p.expiration.has_value(), flag_expiration);
  flag(p.message_id.has_value(), flag_message_id);
  flag(p.timestamp.has_value(), flag_timestamp);
  flag(p.type.has_value(), flag_type);
  flag(p.user_id.has_value(), flag_user_id);
  flag(p.app_id.has_value(), flag_app_id);
  flag(p.cluster_id.has_value(), flag_cluster_id);
  wire::put_u16(out, flags);
  write_shortstr(out, p.content_type);
  write_shortstr(out, p.content_encoding);
  if (p.headers)
    encode_field_table(out, *p.headers);
  if (p.delivery_mode)
    wire::put_u8(out, *p.delivery_mode);
  if (p.priority)
    wire::put_u8(out, *p.priority);
  write_shortstr(out, p.correlation_id);
  write_shortstr(out, p.reply_to);
  write_shortstr(out, p.expiration);
  write_shortstr(out, p.message_id);
  if (p.timestamp)
    wire::put_u64(out, *p.timestamp);
  write_shortstr(out, p.type);
  write_shortstr(out, p.user_id);
  write_shortstr(out, p.app_id);
  write_shortstr(out, p.cluster_id);
}

void append_header_payload(std::string& out, uint64_t body_size,
                           const basic_properties& p) {
  wire::put_u16(out, basic_class_id);
  wire::put_u16(out, 0); // weight
  wire::put_u64(out, body_size);
  encode_basic_properties(out, p);
}

void append_header_frame(std::string& out, uint16_t channel, uint64_t body_size,
                         const basic_properties& p) {
  auto start = out.size();
  append_frame_header(out, frame_type::header, channel, 0);
  append_header_payload(out, body_size, p);
  wire::store_u32(&out[start + 3], static_cast<uint32_t>(out.size() - start
                                                         - frame_header_size));
  out.push_back(static_cast<char>(frame_end));
}

void append_raw_header_frame(std::string& out, uint16_t channel,
                             std::string_view header_payload) {
  append_frame(out, frame_type::header, channel, header_payload);
}

size_t body_frame_payload(uint32_t frame_max, size_t body_size) {
  size_t chunk = body_size;
  if (frame_max != 0) {
    auto limit = frame_max < frame_min_size ? frame_min_size : frame_max;
    chunk = size_t{limit} - frame_overhead;
  }
  // One frame can carry at most 2^32 - 1 bytes whatever frame_max says.
  if (chunk > UINT32_MAX)
    chunk = UINT32_MAX;
  return chunk;
}

void append_body_frames(std::string& out, uint16_t channel,
                        std::string_view body, uint32_t frame_max) {
  if (body.empty())
    return;
  auto chunk = body_frame_payload(frame_max, body.size());
  auto frames = (body.size() + chunk - 1) / chunk;
  out.reserve(out.size() + body.size() + frames * frame_overhead);
  while (!body.empty()) {
    auto n = body.size() < chunk ? body.size() : chunk;
    append_frame_header(out, frame_type::body, channel,
                        static_cast<uint32_t>(n));
    out.append(body.data(), n);
    out.push_back(static_cast<char>(frame_end));
    body.remove_prefix(n);
  }
}

} // namespace flotilla::protocol
