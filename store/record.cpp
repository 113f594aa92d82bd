#include "store/record.hpp"

#include <cstring>

#include "store/crc32c.hpp"

namespace flotilla::store {

namespace {

void put_u16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v);
  p[1] = static_cast<char>(v >> 8);
}

void put_u32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

void put_u64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

uint16_t get_u16(const char* p) {
  auto u = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}

uint32_t get_u32(const char* p) {
  auto u = reinterpret_cast<const uint8_t*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16)
         | (uint32_t{u[3]} << 24);
}

uint64_t get_u64(const char* p) {
  return uint64_t{get_u32(p)} | (uint64_t{get_u32(p + 4)} << 32);
}

// Grows `out` by a record of `body_size` body bytes, writes length and type,
// and returns a pointer to the body. The crc is written by finish().
char* start(std::string& out, record_type t, size_t body_size) {
  auto at = out.size();
  out.resize(at + record_header_size + body_size);
  char* p = out.data() + at;
  put_u32(p, static_cast<uint32_t>(body_size));
  p[8] = static_cast<char>(t);
  return p + record_header_size;
}

void finish(char* body, size_t body_size, uint32_t seed) {
  char* rec = body - record_header_size;
  put_u32(rec + 4, crc32c_extend(seed, rec + 8, 1 + body_size));
}

constexpr size_t id_body_size = 12; // queue_id:u32 | msg_id:u64

} // namespace

const char* to_string(record_type t) {
  switch (t) {
    case record_type::meta_put:
      return "meta_put";
    case record_type::meta_del:
      return "meta_del";
    case record_type::publish:
      return "publish";
    case record_type::ack:
      return "ack";
    case record_type::drop_queue:
      return "drop_queue";
  }
  return "unknown";
}

const char* to_string(decode_status s) {
  switch (s) {
    case decode_status::ok:
      return "ok";
    case decode_status::incomplete:
      return "incomplete record";
    case decode_status::bad_length:
      return "record length out of range";
    case decode_status::bad_checksum:
      return "checksum mismatch";
    case decode_status::bad_type:
      return "unknown record type";
    case decode_status::bad_body:
      return "malformed record body";
  }
  return "unknown";
}

const char* to_string(header_status s) {
  switch (s) {
    case header_status::ok:
      return "ok";
    case header_status::incomplete:
      return "incomplete segment header";
    case header_status::bad_magic:
      return "bad segment magic";
    case header_status::bad_checksum:
      return "segment header checksum mismatch";
    case header_status::unsupported_version:
      return "unsupported segment version";
  }
  return "unknown";
}

uint32_t crc_seed(uint32_t salt) {
  char b[4];
  put_u32(b, salt);
  return crc32c(b, 4);
}

decode_status decode_record(std::string_view in, uint32_t seed, record& out,
                            bool verify_crc) {
  if (in.size() < record_header_size)
    return decode_status::incomplete;
  const char* p = in.data();
  uint32_t length = get_u32(p);
  if (length > max_body_size)
    return decode_status::bad_length;
  if (in.size() - record_header_size < length)
    return decode_status::incomplete;
  if (verify_crc && get_u32(p + 4) != crc32c_extend(seed, p + 8, 1 + length))
    return decode_status::bad_checksum;
  auto type_byte = static_cast<uint8_t>(p[8]);
  const char* body = p + record_header_size;
  out.flags = type_byte & (batch_first_flag | batch_last_flag);
  out.size = record_header_size + length;
  out.queue_id = 0;
  out.msg_id = 0;
  out.key = {};
  out.payload = {};
  switch (type_byte & record_type_mask) {
    case static_cast<uint8_t>(record_type::meta_put): {
      if (length < 2)
        return decode_status::bad_body;
      size_t key_len = get_u16(body);
      if (key_len > length - 2)
        return decode_status::bad_body;
      out.type = record_type::meta_put;
      out.key = std::string_view{body + 2, key_len};
      out.payload = std::string_view{body + 2 + key_len, length - 2 - key_len};
      if (out.payload.size() > max_payload_size)
        return decode_status::bad_body;
      return decode_status::ok;
    }
    case static_cast<uint8_t>(record_type::meta_del):
      if (length > max_key_size)
        return decode_status::bad_body;
      out.type = record_type::meta_del;
      out.key = std::string_view{body, length};
      return decode_status::ok;
    case static_cast<uint8_t>(record_type::publish):
      if (length < id_body_size || length - id_body_size > max_payload_size)
        return decode_status::bad_body;
      out.type = record_type::publish;
      out.queue_id = get_u32(body);
      out.msg_id = get_u64(body + 4);
      out.payload
        = std::string_view{body + id_body_size, length - id_body_size};
      return decode_status::ok;
    case static_cast<uint8_t>(record_type::ack):
      if (length != id_body_size)
        return decode_status::bad_body;
      out.type = record_type::ack;
      out.queue_id = get_u32(body);
      out.msg_id = get_u64(body + 4);
      return decode_status::ok;
    case static_cast<uint8_t>(record_type::drop_queue):
      if (length != 4)
        return decode_status::bad_body;
      out.type = record_type::drop_queue;
      out.queue_id = get_u32(body);
      return decode_status::ok;
    default:
      return decode_status::bad_type;
  }
}

void encode_meta_put(std::string& out, uint32_t seed, std::string_view key,
                     std::string_view payload) {
  size_t n = 2 + key.size() + payload.size();
  char* body = start(out, record_type::meta_put, n);
  put_u16(body, static_cast<uint16_t>(key.size()));
  if (!key.empty())
    std::memcpy(body + 2, key.data(), key.size());
  if (!payload.empty())
    std::memcpy(body + 2 + key.size(), payload.data(), payload.size());
  finish(body, n, seed);
}

void encode_meta_del(std::string& out, uint32_t seed, std::string_view key) {
  char* body = start(out, record_type::meta_del, key.size());
  if (!key.empty())
    std::memcpy(body, key.data(), key.size());
  finish(body, key.size(), seed);
}

void encode_publish(std::string& out, uint32_t seed, uint32_t queue_id,
                    uint64_t msg_id, std::string_view payload) {
  size_t n = id_body_size + payload.size();
  char* body = start(out, record_type::publish, n);
  put_u32(body, queue_id);
  put_u64(body + 4, msg_id);
  if (!payload.empty())
    std::memcpy(body + id_body_size, payload.data(), payload.size());
  finish(body, n, seed);
}

void encode_ack(std::string& out, uint32_t seed, uint32_t queue_id,
                uint64_t msg_id) {
  char* body = start(out, record_type::ack, id_body_size);
  put_u32(body, queue_id);
  put_u64(body + 4, msg_id);
  finish(body, id_body_size, seed);
}

void encode_drop_queue(std::string& out, uint32_t seed, uint32_t queue_id) {
  char* body = start(out, record_type::drop_queue, 4);
  put_u32(body, queue_id);
  finish(body, 4, seed);
}

void set_batch_flags(char* rec, uint8_t flags, uint32_t seed) {
  auto t = static_cast<uint8_t>(rec[8]);
  t = static_cast<uint8_t>((t & record_type_mask)
                           | (flags & (batch_first_flag | batch_last_flag)));
  rec[8] = static_cast<char>(t);
  uint32_t length = get_u32(rec);
  put_u32(rec + 4, crc32c_extend(seed, rec + 8, 1 + length));
}

void encode_segment_header(std::string& out, const segment_header& h) {
  auto at = out.size();
  out.resize(at + segment_header_size);
  char* p = out.data() + at;
  std::memcpy(p, segment_magic.data(), 4);
  put_u16(p + 4, segment_version);
  put_u16(p + 6, static_cast<uint16_t>(segment_header_size));
  put_u32(p + 8, h.salt);
  put_u64(p + 12, h.first_seq);
  put_u64(p + 20, h.next_msg_id);
  put_u32(p + 28, crc32c(p, 28));
}

header_status decode_segment_header(std::string_view in, segment_header& out) {
  if (in.size() < segment_header_size)
    return header_status::incomplete;
  const char* p = in.data();
  if (std::memcmp(p, segment_magic.data(), 4) != 0)
    return header_status::bad_magic;
  if (get_u32(p + 28) != crc32c(p, 28))
    return header_status::bad_checksum;
  if (get_u16(p + 4) != segment_version
      || get_u16(p + 6) != segment_header_size)
    return header_status::unsupported_version;
  out.salt = get_u32(p + 8);
  out.first_seq = get_u64(p + 12);
  out.next_msg_id = get_u64(p + 20);
  return header_status::ok;
}

} // namespace flotilla::store
