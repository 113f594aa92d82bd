// Fuzz target: the input is the bytes of one journal segment file.
//
// 1. Record decoder (in memory): walk the records after the header; each
//    decoded record re-encodes to the same bytes, every shorter prefix of it
//    is `incomplete`, and decoding without the checksum gives the same
//    fields.
// 2. Recovery (in a scratch directory on tmpfs): journal::open() either
//    succeeds or fails with an error and leaves the file untouched. After a
//    success the file is a prefix of the input (or a fresh header), a second
//    open() finds nothing to cut and recovers the same state, and appending
//    works. With repair, open() succeeds unless the version is unsupported.
//    If the header is valid, the same runs again with the input as a
//    segment that is not the last one.
// Any violated property aborts.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "store/journal.hpp"
#include "store/record.hpp"

using namespace flotilla::store;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                   #cond);                                                     \
      std::abort();                                                            \
    }                                                                          \
  } while (false)

namespace {

namespace fs = std::filesystem;

// A scratch directory on tmpfs, made once per process, removed at exit.
struct scratch {
  std::string path;
  scratch() {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    path = base + "/flotilla-journal-fuzz-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr)
      std::abort();
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const std::string& scratch_root() {
  static scratch s;
  return s.path;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Everything a recovery hands out, flattened for comparison.
struct flat_visitor : recovery_visitor {
  std::string state;
  void on_meta(std::string_view key, std::string_view payload) override {
    state += "M" + std::to_string(key.size()) + ":";
    state += key;
    state += std::to_string(payload.size()) + ":";
    state += payload;
  }
  void on_message(uint32_t q, uint64_t m, std::string_view payload) override {
    state += "Q" + std::to_string(q) + "/" + std::to_string(m) + ":"
             + std::to_string(payload.size()) + ":";
    state += payload;
  }
};

void check_decoder(std::string_view in, uint32_t seed) {
  size_t p = 0;
  record r;
  while (p < in.size()) {
    auto rest = in.substr(p);
    if (decode_record(rest, seed, r) != decode_status::ok)
      break;
    FUZZ_CHECK(r.size >= record_header_size && r.size <= rest.size());
    auto whole = rest.substr(0, r.size);
    for (size_t k : {size_t{0}, record_header_size - 1, r.size / 2, r.size - 1})
      if (k < r.size)
        FUZZ_CHECK(decode_record(whole.substr(0, k), seed, r)
                   == decode_status::incomplete);
    FUZZ_CHECK(decode_record(whole, seed, r) == decode_status::ok);
    record u;
    FUZZ_CHECK(decode_record(whole, 0, u, false) == decode_status::ok);
    FUZZ_CHECK(u.type == r.type && u.queue_id == r.queue_id
               && u.msg_id == r.msg_id && u.key == r.key
               && u.payload == r.payload && u.size == r.size
               && u.flags == r.flags);
    std::string again;
    switch (r.type) {
      case record_type::meta_put:
        encode_meta_put(again, seed, r.key, r.payload);
        break;
      case record_type::meta_del:
        encode_meta_del(again, seed, r.key);
        break;
      case record_type::publish:
        encode_publish(again, seed, r.queue_id, r.msg_id, r.payload);
        break;
      case record_type::ack:
        encode_ack(again, seed, r.queue_id, r.msg_id);
        break;
      case record_type::drop_queue:
        encode_drop_queue(again, seed, r.queue_id);
        break;
    }
    set_batch_flags(again.data(), r.flags, seed);
    FUZZ_CHECK(again == whole);
    p += r.size;
  }
}

journal_options fuzz_options(const std::string& dir, bool repair) {
  journal_options o;
  o.dir = dir;
  o.sync = false; // tmpfs anyway; keeps the fuzzer fast
  o.repair = repair;
  return o;
}

// Lays out the directory: the input as segment 0, optionally followed by an
// empty, valid segment (so the input is not the last one).
void prepare(const std::string& dir, std::string_view input,
             const segment_header* follow) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file(dir + "/journal-00000000000000000000.seg", input);
  if (follow != nullptr) {
    std::string h;
    encode_segment_header(h, *follow);
    char name[64];
    std::snprintf(name, sizeof name, "/journal-%020llu.seg",
                  static_cast<unsigned long long>(follow->first_seq));
    write_file(dir + name, h);
  }
}

void check_recovery(std::string_view input, const segment_header* follow) {
  auto dir = scratch_root() + "/j";
  auto seg0 = dir + "/journal-00000000000000000000.seg";
  // Without repair.
  prepare(dir, input, follow);
  std::string first_state;
  bool plain_ok = false;
  {
    flat_visitor v;
    recovery_report rep;
    std::string error;
    auto j = journal::open(fuzz_options(dir, false), v, rep, error);
    if (!j) {
      FUZZ_CHECK(!error.empty());
      FUZZ_CHECK(read_file(seg0) == input); // failure changes nothing
    } else {
      FUZZ_CHECK(rep.damaged.empty());
      auto now = read_file(seg0);
      FUZZ_CHECK(now.size() <= input.size() || now.size() == 32);
      if (rep.truncated_offset > 0 || rep.truncated_file.empty())
        FUZZ_CHECK(input.substr(0, now.size()) == now);
      first_state = v.state;
      plain_ok = true;
      auto st = j->stats();
      FUZZ_CHECK(st.live_messages == rep.live_messages);
      j.reset();
      flat_visitor v2;
      recovery_report rep2;
      j = journal::open(fuzz_options(dir, false), v2, rep2, error);
      FUZZ_CHECK(j != nullptr);
      FUZZ_CHECK(rep2.truncated_bytes == 0 && rep2.truncated_file.empty());
      FUZZ_CHECK(v2.state == first_state);
      // The recovered journal takes appends.
      auto id = j->next_msg_id();
      FUZZ_CHECK(j->append_publish(7, id, "fuzz"));
      std::string e;
      FUZZ_CHECK(j->sync(e));
      std::string p;
      FUZZ_CHECK(j->read_payload(7, id, p) && p == "fuzz");
    }
  }
  // With repair.
  prepare(dir, input, follow);
  {
    flat_visitor v;
    recovery_report rep;
    std::string error;
    auto j = journal::open(fuzz_options(dir, true), v, rep, error);
    if (!j) {
      FUZZ_CHECK(error.find("unsupported") != std::string::npos);
      return;
    }
    if (plain_ok) // nothing to repair: the same result as without
      FUZZ_CHECK(rep.damaged.empty() && v.state == first_state);
    auto state = v.state;
    j.reset();
    flat_visitor v2;
    recovery_report rep2;
    j = journal::open(fuzz_options(dir, false), v2, rep2, error);
    FUZZ_CHECK(j != nullptr);
    FUZZ_CHECK(rep2.truncated_bytes == 0 && rep2.damaged.empty());
    FUZZ_CHECK(v2.state == state);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  segment_header h;
  bool header_ok = decode_segment_header(input, h) == header_status::ok;
  uint32_t seed = crc_seed(header_ok ? h.salt : 0);
  check_decoder(input.substr(std::min(size, segment_header_size)), seed);
  check_decoder(input, seed);
  check_recovery(input, nullptr);
  if (header_ok && h.first_seq == 0) {
    segment_header follow{h.salt, uint64_t{1} << 40, h.next_msg_id};
    check_recovery(input, &follow);
  }
  return 0;
}
