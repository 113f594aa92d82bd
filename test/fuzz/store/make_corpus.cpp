// Writes the seed corpus of journal_fuzz: small valid segments written by
// the journal itself, and damaged variants of them. Usage:
//   make_journal_corpus <output-dir>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

#include "store/journal.hpp"
#include "store/record.hpp"

using namespace flotilla::store;
namespace fs = std::filesystem;

namespace {

struct null_visitor : recovery_visitor {
  void on_meta(std::string_view, std::string_view) override {}
  void on_message(uint32_t, uint64_t, std::string_view) override {}
};

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs `fill` on a fresh journal and returns its only segment's bytes.
template<class F>
std::string make_segment(F fill) {
  char tmpl[] = "/tmp/flotilla-make-corpus-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  {
    journal_options o;
    o.dir = dir;
    o.sync = false;
    null_visitor v;
    recovery_report rep;
    std::string err;
    auto j = journal::open(o, v, rep, err);
    if (!j) {
      std::fprintf(stderr, "open: %s\n", err.c_str());
      std::exit(1);
    }
    fill(*j);
  }
  auto bytes = read_file(dir + "/journal-00000000000000000000.seg");
  fs::remove_all(dir);
  return bytes;
}

void sync_or_die(journal& j) {
  std::string err;
  if (!j.sync(err)) {
    std::fprintf(stderr, "sync: %s\n", err.c_str());
    std::exit(1);
  }
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-dir>\n", argv[0]);
    return 2;
  }
  fs::path out{argv[1]};
  fs::create_directories(out);
  auto empty = make_segment([](journal&) {});
  auto mixed = make_segment([](journal& j) {
    (void)j.append_meta_put("e/v/amq.direct", "direct,durable");
    (void)j.append_meta_put("q/v/orders", "durable");
    (void)j.append_publish(1, 1, "first");
    (void)j.append_publish(1, 2, "second");
    sync_or_die(j);
    j.append_ack(1, 1);
    (void)j.append_publish(2, 2, "fan-out copy");
    (void)j.append_meta_del("e/v/amq.direct");
    sync_or_die(j);
    j.append_drop_queue(2);
    (void)j.append_publish(1, 3, "third");
    sync_or_die(j);
  });
  auto single = make_segment([](journal& j) {
    (void)j.append_publish(9, 42, std::string(300, 'b'));
    sync_or_die(j);
  });
  auto acks = make_segment([](journal& j) {
    for (uint64_t id = 1; id <= 6; ++id)
      (void)j.append_publish(3, id, "m");
    sync_or_die(j);
    for (uint64_t id = 1; id <= 6; id += 2)
      j.append_ack(3, id);
    sync_or_die(j);
  });
  write_file(out / "valid-empty", empty);
  write_file(out / "valid-mixed", mixed);
  write_file(out / "valid-single", single);
  write_file(out / "valid-acks", acks);
  // Torn tails: cut inside the last record, zeros after a cut.
  write_file(out / "torn-mid-record", mixed.substr(0, mixed.size() - 7));
  write_file(out / "torn-mid-header", mixed.substr(0, mixed.size() - 30));
  auto zeros = mixed.substr(0, mixed.size() - 20) + std::string(20, '\0');
  write_file(out / "torn-zero-fill", zeros);
  auto hole = acks;
  std::memset(hole.data() + hole.size() - 40, 0, 21); // 2nd-last ack gone
  write_file(out / "torn-hole-last-batch", hole);
  // Damage that is not a torn tail.
  auto flipped = mixed;
  flipped[segment_header_size + 12] ^= 0x20; // first batch
  write_file(out / "damaged-first-batch", flipped);
  auto bad_magic = mixed;
  bad_magic[1] = 'X';
  write_file(out / "damaged-magic", bad_magic);
  auto bad_header_crc = mixed;
  bad_header_crc[20] ^= 1;
  write_file(out / "damaged-header-crc", bad_header_crc);
  auto huge_length = single;
  huge_length[segment_header_size + 3] = '\x7f';
  write_file(out / "damaged-huge-length", huge_length);
  auto future = single;
  segment_header h;
  decode_segment_header(future, h);
  future[segment_header_size + 8] = static_cast<char>(0x1F);
  set_batch_flags(future.data() + segment_header_size,
                  batch_first_flag | batch_last_flag, crc_seed(h.salt));
  write_file(out / "future-record-type", future);
  write_file(out / "header-only-partial", empty.substr(0, 20));
  write_file(out / "all-zero", std::string(64, '\0'));
  std::printf("wrote 15 inputs to %s\n", out.c_str());
  return 0;
}
