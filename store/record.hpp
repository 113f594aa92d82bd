#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flotilla::store {

// The journal's on-disk encoding: the segment file header and the records
// after it. Plain functions over bytes, no I/O, no allocation except where an
// `std::string& out` is appended to. Full description: docs/store-format.md.
//
// Record (little-endian):
//   length:u32 | crc:u32 | type:u8 | body:length bytes
// `length` counts the body only; `crc` is CRC-32C over the journal's salt
// (4 bytes, from the segment header) followed by type and body. The type
// byte's low 6 bits are the record_type, bit 6 marks the first and bit 7 the
// last record of a sync batch (both for a batch of one record).

/// What a record says. Values are on disk: never renumber.
enum class record_type : uint8_t {
  meta_put = 1,   ///< key_len:u16 | key | payload: sets key to payload.
  meta_del = 2,   ///< key (the whole body): removes key.
  publish = 3,    ///< queue_id:u32 | msg_id:u64 | payload.
  ack = 4,        ///< queue_id:u32 | msg_id:u64: the message left the queue.
  drop_queue = 5, ///< queue_id:u32: every message of the queue left it.
};

/// Returns the lowercase name of `t`, or "unknown".
const char* to_string(record_type t);

/// Mask of the type byte's record_type bits.
constexpr uint8_t record_type_mask = 0x3F;

/// Type-byte flag: first record of a sync batch.
constexpr uint8_t batch_first_flag = 0x40;

/// Type-byte flag: last record of a sync batch.
constexpr uint8_t batch_last_flag = 0x80;

/// Bytes before the body: length, crc, type.
constexpr size_t record_header_size = 9;

/// Largest payload of a publish or meta_put record (128 MiB, RabbitMQ's
/// default max_message_size).
constexpr size_t max_payload_size = size_t{128} << 20;

/// Largest metadata key.
constexpr size_t max_key_size = 65535;

/// Largest body the decoder accepts; anything longer is damage, which keeps a
/// corrupted length field from asking for gigabytes.
constexpr uint32_t max_body_size = max_payload_size + 2 + max_key_size;

/// One decoded record. Views point into the decoder's input.
struct record {
  record_type type = record_type::ack;
  uint8_t flags = 0;        ///< batch_first_flag | batch_last_flag bits.
  uint32_t queue_id = 0;    ///< publish, ack, drop_queue.
  uint64_t msg_id = 0;      ///< publish, ack.
  std::string_view key;     ///< meta_put, meta_del.
  std::string_view payload; ///< publish, meta_put.
  size_t size = 0;          ///< Bytes the record occupies: header + body.
};

/// Outcome of decode_record(), in the order the checks run.
enum class decode_status : uint8_t {
  ok,
  incomplete,   ///< Fewer bytes than the header or the body needs.
  bad_length,   ///< length > max_body_size.
  bad_checksum, ///< The crc does not match.
  bad_type,     ///< Checksum fine, but the type is unknown (0 or > 5).
  bad_body,     ///< Checksum fine, but the body does not fit the type.
};

/// Returns the lowercase name of `s`.
const char* to_string(decode_status s);

/// Returns the crc seed of a journal whose salt is `salt`: CRC-32C of the
/// salt's 4 little-endian bytes. Record crcs continue from it.
uint32_t crc_seed(uint32_t salt);

/// Decodes the record at the start of `in`. Returns ok and fills `out` (whose
/// views borrow from `in`), or the first failed check. Never reads past `in`,
/// never allocates. With `verify_crc` false the checksum is not computed (for
/// records this process wrote itself and still holds in memory).
decode_status decode_record(std::string_view in, uint32_t seed, record& out,
                            bool verify_crc = true);

/// Appends a meta_put record. Precondition: key.size() <= max_key_size,
/// payload.size() <= max_payload_size.
void encode_meta_put(std::string& out, uint32_t seed, std::string_view key,
                     std::string_view payload);

/// Appends a meta_del record. Precondition: key.size() <= max_key_size.
void encode_meta_del(std::string& out, uint32_t seed, std::string_view key);

/// Appends a publish record. Precondition: payload.size() <= max_payload_size.
void encode_publish(std::string& out, uint32_t seed, uint32_t queue_id,
                    uint64_t msg_id, std::string_view payload);

/// Appends an ack record.
void encode_ack(std::string& out, uint32_t seed, uint32_t queue_id,
                uint64_t msg_id);

/// Appends a drop_queue record.
void encode_drop_queue(std::string& out, uint32_t seed, uint32_t queue_id);

/// Replaces the batch flags of the encoded record at `rec` (its first byte)
/// with `flags` and recomputes its crc. Precondition: `rec` holds a whole
/// record encoded with `seed`.
void set_batch_flags(char* rec, uint8_t flags, uint32_t seed);

// -- segment file header ------------------------------------------------------

/// "FLTJ" as the first 4 bytes of every segment.
constexpr std::string_view segment_magic{"FLTJ", 4};

/// The format version this code writes and reads.
constexpr uint16_t segment_version = 1;

/// Size of the segment header of version 1.
constexpr size_t segment_header_size = 32;

/// The fixed header at the start of each segment file:
///   magic[4] | version:u16 | header_size:u16 | salt:u32 | first_seq:u64 |
///   next_msg_id:u64 | crc:u32 (CRC-32C of the 28 bytes before it)
struct segment_header {
  uint32_t salt = 0;        ///< Random per journal, equal in all segments.
  uint64_t first_seq = 0;   ///< Sequence number of the segment's 1st record.
  uint64_t next_msg_id = 0; ///< Every msg_id used before creation is below.
};

/// Outcome of decode_segment_header().
enum class header_status : uint8_t {
  ok,
  incomplete,          ///< Fewer than segment_header_size bytes.
  bad_magic,           ///< Not "FLTJ".
  bad_checksum,        ///< Header crc mismatch.
  unsupported_version, ///< Valid header of another version or size.
};

/// Returns the lowercase name of `s`.
const char* to_string(header_status s);

/// Appends the encoded header.
void encode_segment_header(std::string& out, const segment_header& h);

/// Decodes the header at the start of `in`.
header_status decode_segment_header(std::string_view in, segment_header& out);

} // namespace flotilla::store
