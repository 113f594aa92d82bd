#include <doctest/doctest.h>

#include "test_util.hpp"

using namespace flotilla::store;
using namespace flotilla::store::test;

TEST_SUITE("store") {

  TEST_CASE("a new journal starts empty with one segment") {
    temp_dir d;
    auto o = open_journal(d / "j");
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages.empty());
    CHECK(o->rec.meta.empty());
    CHECK(o->report.segments == 0);
    auto files = segment_files(d / "j");
    REQUIRE(files.size() == 1);
    CHECK(files[0] == d / "j/journal-00000000000000000000.seg");
    CHECK(file_size(files[0]) == segment_header_size);
    auto s = o->j->stats();
    CHECK(s.segments == 1);
    CHECK(s.live_messages == 0);
    CHECK(o->j->next_msg_id() == 1);
  }

  TEST_CASE("appends are buffered until sync and then durable and readable") {
    temp_dir d;
    std::string err;
    {
      auto o = open_journal(d.path);
      REQUIRE(o->j);
      auto& j = *o->j;
      CHECK(j.append_meta_put("q/v/orders", "def-orders"));
      CHECK(j.append_publish(1, 10, "hello"));
      CHECK(j.append_publish(1, 11, "world"));
      CHECK(j.buffered_records() == 3);
      CHECK_FALSE(j.is_live(1, 10)); // not synced yet
      CHECK(file_size(segment_files(d.path)[0]) == segment_header_size);
      REQUIRE(j.sync(err));
      CHECK(j.buffered_records() == 0);
      CHECK(j.is_live(1, 10));
      std::string p;
      CHECK(j.read_payload(1, 11, p));
      CHECK(p == "world");
      CHECK_FALSE(j.read_payload(1, 12, p));
      CHECK_FALSE(j.read_payload(2, 10, p));
      auto s = j.stats();
      CHECK(s.live_messages == 2);
      CHECK(s.meta_entries == 1);
      CHECK(s.syncs == 1);
      CHECK(s.dead_bytes == 0);
      CHECK(j.sync(err)); // nothing buffered: a no-op
      CHECK(j.stats().syncs == 1);
    }
    auto o = open_journal(d.path);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.meta
          == std::map<std::string, std::string>{{"q/v/orders", "def-orders"}});
    CHECK(o->rec.messages
          == std::vector<msg>{{1, 10, "hello"}, {1, 11, "world"}});
    CHECK(o->report.records == 3);
    CHECK(o->report.live_messages == 2);
    CHECK(o->report.live_bytes == 10);
    CHECK(o->report.meta_entries == 1);
    CHECK(o->report.truncated_file.empty());
    CHECK(o->j->next_msg_id() == 12);
  }

  TEST_CASE("recovery replays an interleaving of publishes and acks and meta") {
    temp_dir d;
    std::string err;
    {
      auto o = open_journal(d.path);
      REQUIRE(o->j);
      auto& j = *o->j;
      CHECK(j.append_meta_put("e/v/ex", "exchange-1"));
      CHECK(j.append_meta_put("q/v/a", "queue-a"));
      CHECK(j.append_meta_put("q/v/b", "queue-b"));
      CHECK(j.append_publish(1, 1, "a1"));
      CHECK(j.append_publish(2, 2, "b2"));
      CHECK(j.append_publish(1, 3, "a3"));
      REQUIRE(j.sync(err));
      j.append_ack(1, 1);
      CHECK(j.append_publish(2, 4, "b4"));
      CHECK(j.append_meta_put("e/v/ex", "exchange-2")); // replaces
      CHECK(j.append_publish(3, 4, "c4")); // same message, another queue
      j.append_ack(2, 99);                 // not live: written, ignored
      REQUIRE(j.sync(err));
      CHECK(j.append_publish(1, 5, "a5"));
      j.append_ack(1, 5); // acked in the same batch
      CHECK(j.append_meta_del("q/v/b"));
      CHECK(j.append_meta_put("q/v/c", "queue-c"));
      j.append_drop_queue(2);              // removes b2, b4
      CHECK(j.append_publish(2, 6, "b6")); // after the drop: stays
      REQUIRE(j.sync(err));
      CHECK_FALSE(j.is_live(2, 2));
      CHECK(j.is_live(2, 6));
    }
    auto o = open_journal(d.path);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.meta
          == std::map<std::string, std::string>{{"e/v/ex", "exchange-2"},
                                                {"q/v/a", "queue-a"},
                                                {"q/v/c", "queue-c"}});
    CHECK(o->rec.meta_order
          == std::vector<std::string>{"e/v/ex", "q/v/a", "q/v/c"});
    CHECK(o->rec.messages
          == std::vector<msg>{{1, 3, "a3"}, {2, 6, "b6"}, {3, 4, "c4"}});
    CHECK(o->j->stats().live_messages == 3);
    CHECK(o->j->next_msg_id() == 100); // above the ack of 99 too
  }

  TEST_CASE("messages come back per queue in msg_id order") {
    temp_dir d;
    std::string err;
    {
      auto o = open_journal(d.path);
      auto& j = *o->j;
      for (uint64_t m : {5, 3, 9, 1, 7})
        CHECK(j.append_publish(4, m, "m" + std::to_string(m)));
      CHECK(j.append_publish(2, 8, "x"));
      REQUIRE(j.sync(err));
      j.append_ack(4, 3);
      REQUIRE(j.sync(err));
    }
    auto o = open_journal(d.path);
    REQUIRE(o->j);
    CHECK(
      o->rec.messages
      == std::vector<msg>{
        {2, 8, "x"}, {4, 1, "m1"}, {4, 5, "m5"}, {4, 7, "m7"}, {4, 9, "m9"}});
  }

  TEST_CASE("append_publish refuses a message that is already live") {
    temp_dir d;
    std::string err;
    auto o = open_journal(d.path);
    auto& j = *o->j;
    CHECK(j.append_publish(1, 1, "a"));
    REQUIRE(j.sync(err));
    CHECK_FALSE(j.append_publish(1, 1, "again"));
    CHECK(j.append_publish(2, 1, "other queue"));
    CHECK_FALSE(j.append_meta_put(std::string(max_key_size + 1, 'k'), "v"));
    CHECK_FALSE(j.append_meta_del(std::string(max_key_size + 1, 'k')));
    CHECK(j.buffered_records() == 1);
    j.append_ack(1, 1);
    REQUIRE(j.sync(err));
    CHECK(j.append_publish(1, 1, "reused after the ack")); // allowed
    REQUIRE(j.sync(err));
    std::string p;
    CHECK(j.read_payload(1, 1, p));
    CHECK(p == "reused after the ack");
  }

  TEST_CASE("a journal directory can be open only once") {
    temp_dir d;
    auto a = open_journal(d.path);
    REQUIRE(a->j);
    auto b = open_journal(d.path);
    CHECK_FALSE(b->j);
    CHECK(b->error.find("in use") != std::string::npos);
    a->j.reset();
    auto c = open_journal(d.path);
    CHECK(c->j);
  }

  TEST_CASE("message ids are unique and increasing across reopen") {
    temp_dir d;
    std::string err;
    uint64_t last = 0;
    for (int round = 0; round < 3; ++round) {
      auto o = open_journal(d.path);
      REQUIRE(o->j);
      auto& j = *o->j;
      for (int i = 0; i < 5; ++i) {
        auto id = j.next_msg_id();
        CHECK(id > last);
        last = id;
        CHECK(j.append_publish(1, id, "p"));
        j.append_ack(1, id);
      }
      REQUIRE(j.sync(err));
    }
  }

  TEST_CASE("segments roll at segment_bytes and are named by first sequence") {
    temp_dir d;
    std::string err;
    auto opts = options(d.path);
    opts.segment_bytes = 200;
    std::vector<msg> expected;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      for (uint64_t m = 1; m <= 20; ++m) {
        std::string payload(40, static_cast<char>('a' + m % 26));
        CHECK(j.append_publish(1, m, payload));
        CHECK(j.append_publish(2, m, payload));
        REQUIRE(j.sync(err)); // 2 records = 122 bytes per batch
        expected.push_back({1, m, payload});
      }
      for (uint64_t m = 1; m <= 20; ++m)
        j.append_ack(2, m);
      REQUIRE(j.sync(err));
      CHECK(j.stats().segments > 5);
    }
    auto files = segment_files(d.path);
    REQUIRE(files.size() > 5);
    // Each segment but the last holds two batches: header 32 + 122 < 200, then
    // 276 >= 200 rolls. So segment k starts at sequence 4k.
    for (size_t k = 0; k + 1 < files.size(); ++k) {
      char name[64];
      std::snprintf(name, sizeof name, "journal-%020zu.seg", 4 * k);
      CHECK(files[k] == d / name);
      CHECK(file_size(files[k]) == segment_header_size + 4 * publish_size(40));
    }
    auto o = open_journal(opts);
    REQUIRE_MESSAGE(o->j, o->error);
    CHECK(o->rec.messages == expected);
    CHECK(o->report.segments == files.size());
    CHECK(o->report.records == 60);
    std::string p;
    CHECK(o->j->read_payload(1, 7, p));
    CHECK(p == std::string(40, 'h'));
  }

  TEST_CASE("stats count live and dead bytes") {
    temp_dir d;
    std::string err;
    auto o = open_journal(d.path);
    auto& j = *o->j;
    CHECK(j.append_publish(1, 1, std::string(100, 'x')));
    CHECK(j.append_publish(1, 2, std::string(100, 'y')));
    REQUIRE(j.sync(err));
    auto s = j.stats();
    CHECK(s.live_bytes == 2 * publish_size(100));
    CHECK(s.dead_bytes == 0);
    CHECK(s.disk_bytes == segment_header_size + 2 * publish_size(100));
    j.append_ack(1, 1);
    CHECK(j.stats().buffered_records == 1);
    CHECK(j.stats().buffered_bytes == 21);
    REQUIRE(j.sync(err));
    s = j.stats();
    CHECK(s.live_bytes == publish_size(100));
    CHECK(s.dead_bytes == publish_size(100) + 21);
    CHECK(s.live_messages == 1);
  }

  TEST_CASE("many messages with acks out of order keep the index consistent") {
    temp_dir d;
    std::string err;
    auto opts = options(d.path);
    opts.sync = false;
    std::map<std::pair<uint32_t, uint64_t>, std::string> live;
    {
      auto o = open_journal(opts);
      auto& j = *o->j;
      uint64_t state = 12345;
      auto rnd = [&] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return state >> 33;
      };
      for (int batch = 0; batch < 50; ++batch) {
        for (int i = 0; i < 100; ++i) {
          auto q = static_cast<uint32_t>(rnd() % 5);
          auto id = j.next_msg_id();
          auto payload = std::to_string(id);
          REQUIRE(j.append_publish(q, id, payload));
          live[{q, id}] = payload;
        }
        for (int i = 0; i < 70 && !live.empty(); ++i) {
          auto it = live.begin();
          std::advance(it, static_cast<long>(rnd() % live.size()));
          j.append_ack(it->first.first, it->first.second);
          live.erase(it);
        }
        REQUIRE(j.sync(err));
      }
      CHECK(j.stats().live_messages == live.size());
      for (auto& kv : live) {
        std::string p;
        REQUIRE(j.read_payload(kv.first.first, kv.first.second, p));
        CHECK(p == kv.second);
      }
    }
    auto o = open_journal(opts);
    REQUIRE(o->j);
    std::vector<msg> expected;
    for (auto& kv : live)
      expected.push_back({kv.first.first, kv.first.second, kv.second});
    CHECK(o->rec.messages == expected);
  }

} // TEST_SUITE
