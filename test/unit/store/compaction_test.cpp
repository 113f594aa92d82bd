#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace flotilla::store;
using namespace flotilla::store::test;

namespace {

std::string payload_of(uint64_t id) {
  return std::string(100, static_cast<char>('a' + id % 26));
}

// Three 100-byte publishes per segment: 32 + 3 * 121 = 395 >= 300 rolls.
journal_options small_segments(const std::string& dir) {
  auto o = options(dir);
  o.segment_bytes = 300;
  return o;
}

// Publishes ids 1..n on queue 1, one batch each, then acks every id not in
// `keep` in one batch. Returns the live messages.
std::vector<msg> fill(journal& j, uint64_t n, std::vector<uint64_t> keep) {
  std::string err;
  for (uint64_t id = 1; id <= n; ++id) {
    REQUIRE(j.append_publish(1, id, payload_of(id)));
    REQUIRE(j.sync(err));
  }
  std::vector<msg> live;
  for (uint64_t id = 1; id <= n; ++id) {
    if (std::find(keep.begin(), keep.end(), id) == keep.end())
      j.append_ack(1, id);
    else
      live.push_back({1, id, payload_of(id)});
  }
  REQUIRE(j.sync(err));
  return live;
}

} // namespace

TEST_SUITE("store") {

  TEST_CASE("compaction deletes a dead prefix") {
    temp_dir d;
    std::string err;
    auto opts = small_segments(d.path);
    std::vector<msg> live;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      live = fill(j, 10, {10});
      REQUIRE(j.stats().segments == 4);
      auto before = j.stats();
      REQUIRE(j.compact(err));
      auto after = j.stats();
      CHECK(after.segments == 1);
      CHECK(after.compactions == 1);
      CHECK(after.compacted_segments == 3);
      CHECK(after.compacted_copy_bytes == 0);
      CHECK(after.live_bytes == before.live_bytes);
      CHECK(after.disk_bytes < before.disk_bytes);
      std::string p;
      CHECK(j.read_payload(1, 10, p));
      CHECK(p == payload_of(10));
    }
    CHECK(segment_files(d.path).size() == 1);
    auto o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == live);
  }

  TEST_CASE("compaction copies the few live records of old segments forward") {
    temp_dir d;
    std::string err;
    auto opts = small_segments(d.path);
    std::vector<msg> live;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      REQUIRE(j.append_meta_put("q/v/one", "def"));
      REQUIRE(j.sync(err));
      live = fill(j, 10, {2, 10});
      auto before = j.stats();
      REQUIRE(j.compact(err));
      auto after = j.stats();
      CHECK(after.segments < before.segments);
      CHECK(after.compacted_copy_bytes == publish_size(100) + 9 + 2 + 7 + 3);
      CHECK(after.live_messages == 2);
      CHECK(after.meta_entries == 1);
      std::string p;
      CHECK(j.read_payload(1, 2, p));
      CHECK(p == payload_of(2));
      // Acking the copied message kills it for good.
      j.append_ack(1, 2);
      REQUIRE(j.sync(err));
    }
    auto o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == std::vector<msg>{{1, 10, payload_of(10)}});
    CHECK(o->rec.meta.at("q/v/one") == "def");
  }

  TEST_CASE("compaction leaves mostly live segments alone") {
    temp_dir d;
    std::string err;
    auto o = open_journal(small_segments(d.path));
    auto& j = *o->j;
    fill(j, 10, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    auto before = j.stats();
    REQUIRE(j.compact(err));
    CHECK(j.stats().segments == before.segments);
    CHECK(j.stats().compactions == 0);
  }

  TEST_CASE("compaction refuses unsynced appends") {
    temp_dir d;
    std::string err;
    auto o = open_journal(d.path);
    REQUIRE(o->j->append_publish(1, 1, "x"));
    CHECK_FALSE(o->j->compact(err));
    CHECK(err.find("sync") != std::string::npos);
  }

  TEST_CASE("metadata survives compaction with its latest value") {
    temp_dir d;
    std::string err;
    auto opts = small_segments(d.path);
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      REQUIRE(j.append_meta_put("k/a", "a1"));
      REQUIRE(j.append_meta_put("k/b", "b1"));
      REQUIRE(j.append_meta_put("k/c", "c1"));
      REQUIRE(j.sync(err));
      fill(j, 6, {});
      REQUIRE(j.append_meta_put("k/a", "a2"));
      REQUIRE(j.append_meta_del("k/b"));
      REQUIRE(j.sync(err));
      fill(j, 0, {});
      REQUIRE(j.append_publish(1, 100, "x")); // roll, so the above is old
      REQUIRE(j.sync(err));
      REQUIRE(j.compact(err));
      CHECK(j.stats().compactions == 1);
    }
    auto o = open_journal(opts);
    REQUIRE(o->j);
    CHECK(o->rec.meta
          == std::map<std::string, std::string>{{"k/a", "a2"}, {"k/c", "c1"}});
  }

  TEST_CASE("ids stay unique after compaction deleted every old record") {
    temp_dir d;
    std::string err;
    auto opts = small_segments(d.path);
    uint64_t last = 0;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      for (int i = 0; i < 9; ++i) {
        last = j.next_msg_id();
        REQUIRE(j.append_publish(1, last, payload_of(last)));
        REQUIRE(j.sync(err));
      }
      for (int twice = 0; twice < 2; ++twice) // enough bytes to fill a segment
        for (uint64_t id = 1; id <= last; ++id)
          j.append_ack(1, id);
      REQUIRE(j.sync(err));
      REQUIRE(j.append_meta_put("k", "v")); // rolls: the head holds no id
      REQUIRE(j.sync(err));
      REQUIRE(j.compact(err));
      REQUIRE(j.stats().segments == 1);
    }
    auto o = open_journal(opts);
    REQUIRE(o->j);
    CHECK(o->j->next_msg_id() > last);
  }

  TEST_CASE("a crash at any compaction step loses and resurrects nothing") {
    temp_dir setup;
    std::string err;
    auto opts = small_segments(setup.path);
    std::vector<msg> live;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      // Segment 0: publishes 1..3; segment 1: 4..6; ... acks in the head.
      live = fill(j, 10, {2, 5, 10});
    }
    for (const char* point :
         {"journal.compact_after_copy", "journal.compact_before_delete",
          "journal.compact_mid_delete"}) {
      CAPTURE(point);
      temp_dir d;
      copy_files(setup.path, d.path);
      auto o2 = small_segments(d.path);
      int status = run_child(point, [&] {
        recorder rec;
        recovery_report rep;
        std::string e;
        auto j = journal::open(o2, rec, rep, e);
        if (!j)
          ::_exit(3);
        j->compact(e);
        ::_exit(4); // the crash point was not reached
      });
      REQUIRE(status == 99);
      {
        auto o = open_journal(o2);
        REQUIRE_MESSAGE(o->j, o->error);
        CHECK(o->rec.messages == live);
        CHECK(o->report.truncated_bytes == 0);
        // Ack a copied message, then finish the compaction.
        o->j->append_ack(1, 2);
        REQUIRE(o->j->sync(err));
        REQUIRE(o->j->compact(err));
      }
      auto o = open_journal(o2);
      REQUIRE_MESSAGE(o->j, o->error);
      CHECK(
        o->rec.messages
        == std::vector<msg>{{1, 5, payload_of(5)}, {1, 10, payload_of(10)}});
      CHECK(o->j->stats().segments == 1);
    }
  }

  TEST_CASE("power loss before the copy was synced is a torn tail") {
    temp_dir d;
    auto opts = small_segments(d.path);
    std::vector<msg> live;
    {
      auto o = open_journal(opts);
      live = fill(*o->j, 10, {2, 5, 10});
    }
    auto segments_before = segment_files(d.path).size();
    int status = run_child("journal.compact_after_copy", [&] {
      recorder rec;
      recovery_report rep;
      std::string e;
      auto j = journal::open(opts, rec, rep, e);
      if (j)
        j->compact(e);
      ::_exit(4);
    });
    REQUIRE(status == 99);
    // The copies went to a new head (the old one was full); only part of the
    // batch reached the disk.
    REQUIRE(segment_files(d.path).size() == segments_before + 1);
    auto head = segment_files(d.path).back();
    auto bytes = read_file(head);
    REQUIRE(bytes.size() == segment_header_size + 2 * publish_size(100));
    bytes.resize(segment_header_size + publish_size(100) + 40);
    write_file(head, bytes);
    auto o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == live);
    CHECK(o->report.truncated_bytes == 40);
  }

} // TEST_SUITE

TEST_SUITE("store") {

  TEST_CASE("compaction reaches past a mostly live oldest segment") {
    temp_dir d;
    std::string err;
    auto opts = small_segments(d.path);
    auto o = open_journal(opts);
    auto& j = *o->j;
    // Segment 0: ids 1..3, kept; segments 1..4: ids 4..15, acked.
    std::vector<uint64_t> keep{1, 2, 3};
    auto live = fill(j, 15, keep);
    auto before = j.stats();
    REQUIRE(before.segments == 6);
    REQUIRE(j.compact(err));
    auto after = j.stats();
    CHECK(after.compacted_segments == 5);
    CHECK(after.compacted_copy_bytes == 3 * publish_size(100));
    CHECK(after.segments == 1); // the copies went into the head
    o->j.reset();
    auto again = open_journal(opts);
    REQUIRE(again->j);
    CHECK(again->rec.messages == live);
  }

  TEST_CASE("random operations match a model across reopen and compaction") {
    temp_dir d;
    std::string err;
    auto opts = options(d.path);
    opts.sync = false;
    opts.segment_bytes = 1024;
    std::map<std::pair<uint32_t, uint64_t>, std::string> model;
    std::map<std::string, std::string> meta;
    auto o = open_journal(opts);
    uint64_t compactions = 0;
    uint64_t state = 42;
    auto rnd = [&](uint64_t n) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return (state >> 33) % n;
    };
    auto check_recovered = [&](const opened& op) {
      std::vector<msg> expected;
      for (auto& kv : model)
        expected.push_back({kv.first.first, kv.first.second, kv.second});
      CHECK(op.rec.messages == expected);
      CHECK(op.rec.meta == meta);
    };
    for (int step = 0; step < 3000; ++step) {
      auto& j = *o->j;
      auto op = rnd(100);
      if (op < 40) {
        auto q = static_cast<uint32_t>(rnd(4));
        auto id = j.next_msg_id();
        auto payload = std::string(rnd(80), static_cast<char>('a' + rnd(26)));
        REQUIRE(j.append_publish(q, id, payload));
        model[{q, id}] = payload;
      } else if (op < 70 && !model.empty()) {
        auto it = model.begin();
        std::advance(it, static_cast<long>(rnd(model.size())));
        j.append_ack(it->first.first, it->first.second);
        model.erase(it);
      } else if (op < 75) {
        auto key = "k" + std::to_string(rnd(10));
        auto value = "v" + std::to_string(step);
        REQUIRE(j.append_meta_put(key, value));
        meta[key] = value;
      } else if (op < 78) {
        auto key = "k" + std::to_string(rnd(10));
        REQUIRE(j.append_meta_del(key));
        meta.erase(key);
      } else if (op < 79) {
        auto q = static_cast<uint32_t>(rnd(4));
        j.append_drop_queue(q);
        for (auto it = model.begin(); it != model.end();)
          it = it->first.first == q ? model.erase(it) : std::next(it);
      } else if (op < 94) {
        REQUIRE(j.sync(err));
      } else if (op < 98) {
        REQUIRE(j.sync(err));
        REQUIRE_MESSAGE(j.compact(err), err);
        CHECK(j.stats().live_messages == model.size());
      } else {
        REQUIRE(j.sync(err));
        compactions += j.stats().compactions;
        o->j.reset();
        o = open_journal(opts);
        REQUIRE_MESSAGE(o->j, o->error);
        CHECK(o->report.truncated_bytes == 0);
        check_recovered(*o);
      }
    }
    REQUIRE(o->j->sync(err));
    for (auto& kv : model) {
      std::string p;
      REQUIRE(o->j->read_payload(kv.first.first, kv.first.second, p));
      CHECK(p == kv.second);
    }
    compactions += o->j->stats().compactions;
    CHECK(compactions > 0);
    MESSAGE("compactions: " << compactions);
    o->j.reset();
    o = open_journal(opts);
    REQUIRE(o->j);
    check_recovered(*o);
  }

} // TEST_SUITE
