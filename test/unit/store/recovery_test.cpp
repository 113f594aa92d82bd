#include <doctest/doctest.h>

#include <cstring>

#include "store/crc32c.hpp"
#include "test_util.hpp"

using namespace flotilla::store;
using namespace flotilla::store::test;

namespace {

// Writes batches of publishes (queue 1, ids 1..) into `dir`; returns the
// file offset where each batch starts, plus the end as the last element.
std::vector<uint64_t> write_batches(const std::string& dir,
                                    const std::vector<int>& batch_sizes,
                                    size_t payload_size = 20) {
  std::vector<uint64_t> offsets;
  std::string err;
  auto opts = options(dir);
  opts.sync = false;
  auto o = open_journal(opts);
  REQUIRE(o->j);
  auto seg = segment_files(dir).back();
  uint64_t id = 1;
  for (int n : batch_sizes) {
    offsets.push_back(file_size(seg));
    for (int i = 0; i < n; ++i, ++id)
      REQUIRE(o->j->append_publish(
        1, id, std::string(payload_size, static_cast<char>('a' + id % 26))));
    REQUIRE(o->j->sync(err));
  }
  offsets.push_back(file_size(seg));
  return offsets;
}

std::vector<msg> first_messages(uint64_t n, size_t payload_size = 20) {
  std::vector<msg> out;
  for (uint64_t id = 1; id <= n; ++id)
    out.push_back(
      {1, id, std::string(payload_size, static_cast<char>('a' + id % 26))});
  return out;
}

journal_options quick(const std::string& dir) {
  auto o = options(dir);
  o.sync = false; // same logic, no fsync: these tests reopen many times
  return o;
}

} // namespace

TEST_SUITE("store") {

  TEST_CASE("torn tail: cut at every byte of the last record") {
    temp_dir src;
    auto offs = write_batches(src.path, {3, 2, 1});
    auto seg_name
      = std::filesystem::path(segment_files(src.path)[0]).filename();
    auto original = read_file(segment_files(src.path)[0]);
    uint64_t start = offs[2];
    uint64_t end = offs[3];
    REQUIRE(end - start == publish_size(20));
    for (uint64_t len = start; len < end; ++len) {
      CAPTURE(len);
      for (bool zero_fill : {false, true}) {
        CAPTURE(zero_fill);
        temp_dir d;
        auto bytes = original.substr(0, len);
        if (zero_fill) // the file grew, the data never made it: zeros
          bytes.append(end - len, '\0');
        write_file(d / seg_name.string(), bytes);
        auto o = open_journal(quick(d.path));
        REQUIRE_MESSAGE(o->j, o->error);
        CHECK(o->rec.messages == first_messages(5));
        uint64_t cut = bytes.size() - start;
        CHECK(o->report.truncated_bytes == cut);
        if (cut > 0) {
          CHECK(o->report.truncated_file == d / seg_name.string());
          CHECK(o->report.truncated_offset == start);
        }
        CHECK(file_size(d / seg_name.string()) == start);
        // The journal goes on from there and a reopen finds nothing to cut.
        std::string err;
        REQUIRE(o->j->append_publish(1, 100, "after"));
        REQUIRE(o->j->sync(err));
        o->j.reset();
        auto again = open_journal(quick(d.path));
        REQUIRE(again->j);
        CHECK(again->report.truncated_bytes == 0);
        auto expected = first_messages(5);
        expected.push_back({1, 100, "after"});
        CHECK(again->rec.messages == expected);
      }
    }
  }

  TEST_CASE("torn tail: cut anywhere in a multi-record last batch") {
    temp_dir src;
    auto offs = write_batches(src.path, {2, 4}, 5);
    auto seg = segment_files(src.path)[0];
    auto name = std::filesystem::path(seg).filename().string();
    auto original = read_file(seg);
    for (uint64_t len = offs[1]; len <= offs[2]; ++len) {
      CAPTURE(len);
      temp_dir d;
      write_file(d / name, original.substr(0, len));
      auto o = open_journal(quick(d.path));
      REQUIRE_MESSAGE(o->j, o->error);
      // Whole records survive, the batch is not atomic.
      uint64_t whole = (len - offs[1]) / publish_size(5);
      CHECK(o->rec.messages == first_messages(2 + whole, 5));
      CHECK(o->report.truncated_bytes == (len - offs[1]) % publish_size(5));
    }
  }

  TEST_CASE(
    "torn tail: a hole in the last batch (pages persisted out of order)") {
    temp_dir d;
    auto offs = write_batches(d.path, {2, 3}, 100);
    auto seg = segment_files(d.path)[0];
    auto bytes = read_file(seg);
    // The middle record of the last batch never reached the disk.
    uint64_t hole = offs[1] + publish_size(100);
    std::memset(bytes.data() + hole, 0, publish_size(100));
    write_file(seg, bytes);
    auto o = open_journal(quick(d.path));
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == first_messages(3, 100));
    CHECK(o->report.truncated_offset == hole);
    CHECK(o->report.truncated_bytes == 2 * publish_size(100));
    CHECK(o->report.torn_records_dropped == 1);
  }

  TEST_CASE("damage followed by a later batch fails naming file and offset") {
    temp_dir d;
    auto offs = write_batches(d.path, {2, 2, 2}, 30);
    auto seg = segment_files(d.path)[0];
    auto bytes = read_file(seg);
    uint64_t victim = offs[1] + publish_size(30); // 2nd record of batch 2
    bytes[victim + 20] ^= 0x55;                   // inside its payload
    write_file(seg, bytes);
    auto o = open_journal(quick(d.path));
    CHECK_FALSE(o->j);
    INFO(o->error);
    CHECK(o->error.find(seg) != std::string::npos);
    CHECK(o->error.find("offset " + std::to_string(victim))
          != std::string::npos);
    CHECK(o->error.find("checksum mismatch") != std::string::npos);
    CHECK(o->error.find("2 intact records") != std::string::npos);
    CHECK(o->error.find("3 records before it are intact") != std::string::npos);
    CHECK(o->error.find("repair") != std::string::npos);
    CHECK(read_file(seg) == bytes); // nothing touched
  }

  TEST_CASE("a damaged last record of a segment that is not the last fails") {
    temp_dir d;
    auto opts = quick(d.path);
    opts.segment_bytes = 100;
    std::string err;
    {
      auto o = open_journal(opts);
      REQUIRE(o->j);
      for (uint64_t id = 1; id <= 6; ++id) {
        REQUIRE(o->j->append_publish(1, id, std::string(50, 'z')));
        REQUIRE(o->j->sync(err));
      }
    }
    auto files = segment_files(d.path);
    REQUIRE(files.size() > 2);
    auto bytes = read_file(files[0]);
    bytes.resize(bytes.size() - 3); // as if torn
    write_file(files[0], bytes);
    auto o = open_journal(opts);
    CHECK_FALSE(o->j);
    CHECK(o->error.find(files[0]) != std::string::npos);
    CHECK(o->error.find("not in the last segment") != std::string::npos);
  }

  TEST_CASE("repair quarantines the segment and lists lost messages") {
    temp_dir d;
    std::string err;
    auto opts = quick(d.path);
    uint64_t damaged_at = 0;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      REQUIRE(j.append_meta_put("q/v/a", "A1"));
      REQUIRE(j.append_publish(1, 1, "one"));
      REQUIRE(j.append_publish(1, 2, "two"));
      REQUIRE(j.sync(err));
      damaged_at = file_size(segment_files(d.path)[0]);
      REQUIRE(j.append_publish(1, 3, "three")); // will be unreadable
      REQUIRE(j.sync(err));
      REQUIRE(j.append_publish(1, 4, "four"));   // intact, after the damage
      REQUIRE(j.append_publish(2, 5, "five"));   // acked later: not lost
      j.append_ack(1, 1);                        // dropped: 1 comes back
      REQUIRE(j.append_meta_put("q/v/a", "A2")); // dropped: A1 comes back
      REQUIRE(j.sync(err));
      j.append_ack(2, 5);
      REQUIRE(j.sync(err));
    }
    auto seg = segment_files(d.path)[0];
    auto original = read_file(seg);
    auto bytes = original;
    bytes[damaged_at + 12] ^= 1; // a body byte of publish 3
    write_file(seg, bytes);
    // Without repair: refused.
    REQUIRE_FALSE(open_journal(opts)->j);
    opts.repair = true;
    auto o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    MESSAGE(o->report.to_string());
    CHECK(o->rec.messages == std::vector<msg>{{1, 1, "one"}, {1, 2, "two"}});
    CHECK(o->rec.meta.at("q/v/a") == "A1");
    REQUIRE(o->report.damaged.size() == 1);
    auto& dmg = o->report.damaged[0];
    CHECK(dmg.file == seg);
    CHECK(dmg.offset == damaged_at);
    CHECK(dmg.kept_records == 3);
    CHECK(dmg.dropped_records == 5); // 4, 5, ack 1, meta, ack 5
    CHECK(dmg.unreadable_bytes == publish_size(5));
    CHECK(dmg.dropped_bytes == bytes.size() - damaged_at);
    CHECK_FALSE(dmg.removed);
    CHECK(o->report.lost_messages == std::vector<message_ref>{{1, 4}});
    CHECK(o->report.resurrected_messages == std::vector<message_ref>{{1, 1}});
    CHECK(o->report.affected_meta_keys == std::vector<std::string>{"q/v/a"});
    // The original bytes are in quarantine, the segment is cut back.
    CHECK(dmg.quarantined_as
          == d / "quarantine/journal-00000000000000000000.seg.1");
    CHECK(read_file(dmg.quarantined_as) == bytes);
    CHECK(file_size(seg) == damaged_at);
    // Later ids stay above everything seen, even in dropped records.
    CHECK(o->j->next_msg_id() == 6);
    o->j.reset();
    opts.repair = false;
    auto again = open_journal(opts);
    REQUIRE_MESSAGE(again->j, again->error);
    CHECK(again->rec.messages
          == std::vector<msg>{{1, 1, "one"}, {1, 2, "two"}});
    CHECK(again->report.damaged.empty());
  }

  TEST_CASE("repair of a segment in the middle keeps the later segments") {
    temp_dir d;
    std::string err;
    auto opts = quick(d.path);
    opts.segment_bytes = 150;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      for (uint64_t id = 1; id <= 8; ++id) {
        REQUIRE(j.append_publish(1, id, std::string(40, 'p')));
        REQUIRE(j.sync(err));
      }
      j.append_ack(1, 2);
      REQUIRE(j.sync(err));
    }
    auto files = segment_files(d.path);
    REQUIRE(files.size() >= 3);
    // Segment 1 holds publishes 3 and 4; smash the header of segment 1.
    auto bytes = read_file(files[1]);
    bytes[0] = 'X';
    write_file(files[1], bytes);
    auto o = open_journal(opts);
    REQUIRE_FALSE(o->j);
    CHECK(o->error.find("bad segment magic") != std::string::npos);
    opts.repair = true;
    o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    REQUIRE(o->report.damaged.size() == 1);
    CHECK(o->report.damaged[0].removed);
    CHECK(o->report.lost_messages == std::vector<message_ref>{{1, 3}, {1, 4}});
    std::vector<uint64_t> ids;
    for (auto& m : o->rec.messages)
      ids.push_back(m.msg_id);
    CHECK(ids == std::vector<uint64_t>{1, 5, 6, 7, 8});
    CHECK(segment_files(d.path).size() == files.size() - 1);
  }

  TEST_CASE("a record type from the future is not taken for a torn tail") {
    temp_dir d;
    auto offs = write_batches(d.path, {1, 1}, 10);
    auto seg = segment_files(d.path)[0];
    auto bytes = read_file(seg);
    // Make the last record type 17 with a valid checksum.
    segment_header h;
    REQUIRE(decode_segment_header(bytes, h) == header_status::ok);
    bytes[offs[1] + 8]
      = static_cast<char>(17 | batch_first_flag | batch_last_flag);
    set_batch_flags(bytes.data() + offs[1], batch_first_flag | batch_last_flag,
                    crc_seed(h.salt));
    write_file(seg, bytes);
    auto o = open_journal(quick(d.path));
    REQUIRE_FALSE(o->j);
    CHECK(o->error.find("unknown record type") != std::string::npos);
    CHECK(o->error.find("newer") != std::string::npos);
  }

  TEST_CASE("an unsupported segment version is refused even with repair") {
    temp_dir d;
    write_batches(d.path, {1}, 10);
    auto seg = segment_files(d.path)[0];
    auto bytes = read_file(seg);
    bytes[4] = 7;
    uint32_t crc = crc32c(bytes.data(), 28);
    std::memcpy(bytes.data() + 28, &crc, 4);
    write_file(seg, bytes);
    auto opts = quick(d.path);
    opts.repair = true;
    auto o = open_journal(opts);
    REQUIRE_FALSE(o->j);
    CHECK(o->error.find("unsupported format version") != std::string::npos);
  }

  TEST_CASE("an all-zero last segment gets a new header and leftovers go") {
    temp_dir d;
    write_batches(d.path, {2}, 10);
    write_file(d / "journal-00000000000000000002.seg", std::string(100, '\0'));
    write_file(d / "journal-00000000000000000009.seg.tmp", "half a header");
    auto o = open_journal(quick(d.path));
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == first_messages(2, 10));
    CHECK(o->report.truncated_file == d / "journal-00000000000000000002.seg");
    CHECK(
      o->report.removed_files
      == std::vector<std::string>{d / "journal-00000000000000000009.seg.tmp"});
    CHECK(file_size(d / "journal-00000000000000000002.seg")
          == segment_header_size);
    std::string err;
    REQUIRE(o->j->append_publish(1, 3, "x"));
    REQUIRE(o->j->sync(err));
    o->j.reset();
    auto again = open_journal(quick(d.path));
    REQUIRE(again->j);
    CHECK(again->rec.messages.size() == 3);
  }

  TEST_CASE("a segment of another journal is damage and not data") {
    temp_dir a;
    temp_dir b;
    auto opts_a = quick(a.path);
    opts_a.segment_bytes = 50;
    write_batches(a.path, {1}, 10);
    write_batches(b.path, {1, 1}, 10);
    // b's segment 0 placed after a's: different salt.
    std::filesystem::copy_file(segment_files(b.path)[0],
                               a / "journal-00000000000000000005.seg");
    auto o = open_journal(quick(a.path));
    REQUIRE_FALSE(o->j);
    CHECK(o->error.find("salt") != std::string::npos);
  }

} // TEST_SUITE
