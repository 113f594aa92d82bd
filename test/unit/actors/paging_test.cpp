// Paging a queue's backlog out of memory: the file pager on real files, and
// queue_model's ordering, requeue, purge, TTL and error handling with it.
#include "actors/message_pager.hpp"
#include "actors/queue_model.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

using namespace flotilla;
namespace fs = std::filesystem;

namespace {

/// A temporary directory, removed with its contents.
struct scratch {
  scratch() {
    char tmpl[] = "/tmp/flotilla-paging-test-XXXXXX";
    if (char* p = ::mkdtemp(tmpl))
      dir = p;
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string dir;
};

message_ptr make_msg(std::string body, std::string key = "rk") {
  auto m = std::make_shared<message>();
  m->exchange = "ex";
  m->routing_key = std::move(key);
  m->body = std::move(body);
  m->properties.content_type = "text/plain";
  m->properties.delivery_mode = 2;
  return m;
}

std::string body_of(int i) {
  auto s = std::to_string(i);
  return std::string(6 - s.size(), '0') + s; // 6 bytes, sortable
}

struct fixture {
  explicit fixture(uint64_t limit = 60, queue_config cfg = {})
    : q("q", std::move(cfg)) {
    q.set_removal_log(&removed);
    paging = q.set_pager(make_file_pager(tmp.dir + "/q"), limit);
  }

  void put_n(int from, int to) {
    for (int i = from; i < to; ++i)
      q.enqueue(make_msg(body_of(i)), now, dead);
  }

  std::vector<std::string> drain(owner_id owner = 1) {
    std::vector<std::string> got;
    while (auto d = q.get(owner, true, now, dead))
      got.push_back(d->msg->body);
    return got;
  }

  uintmax_t file_size(int segment = 0) const {
    std::error_code ec;
    auto n = fs::file_size(tmp.dir + "/q." + std::to_string(segment), ec);
    return ec ? 0 : n;
  }

  scratch tmp;
  queue_model q;
  std::vector<uint64_t> removed;
  std::vector<dead_letter> dead;
  std::vector<delivery> out;
  millis now = 1000;
  bool paging = false;
};

std::vector<std::string> range(int from, int to) {
  std::vector<std::string> r;
  for (int i = from; i < to; ++i)
    r.push_back(body_of(i));
  return r;
}

} // namespace

TEST_SUITE("paging") {
  TEST_CASE("the file pager writes and reads messages back") {
    scratch tmp;
    auto p = make_file_pager(tmp.dir + "/x");
    auto m = make_msg(std::string(1000, 'a'), "key.1");
    message_pager::location a;
    message_pager::location b;
    REQUIRE(p->write(*m, a));
    REQUIRE(p->write(*make_msg("second"), b));
    CHECK(b.offset == a.offset + a.length);
    auto back = p->read(a);
    REQUIRE(back);
    CHECK(back->body == m->body);
    CHECK(back->exchange == "ex");
    CHECK(back->routing_key == "key.1");
    CHECK(back->properties.content_type
          == std::optional<std::string>{"text/plain"});
    CHECK(back->persistent());
    CHECK(p->read(b)->body == "second");
    CHECK(fs::file_size(tmp.dir + "/x.0") == a.length + b.length);
    p->release(a);
    p->release(b);
    // Every message of the head segment released: it starts over.
    CHECK(fs::file_size(tmp.dir + "/x.0") == 0);
    message_pager::location c;
    REQUIRE(p->write(*make_msg("third"), c));
    CHECK(c.offset == 0);
    p.reset();
    CHECK_FALSE(fs::exists(tmp.dir + "/x.0"));
  }

  TEST_CASE("a long backlog is paged out and comes back in order") {
    fixture f{60}; // ten 6-byte bodies in memory
    REQUIRE(f.paging);
    f.put_n(0, 1000);
    CHECK(f.q.ready_count() == 1000);
    CHECK(f.q.ready_bytes() == 6000);
    CHECK(f.q.paged_count() == 990);
    CHECK(f.q.paged_bytes() == 5940);
    CHECK(f.q.stats().paged_out == 990);
    CHECK(f.file_size() > 5940);
    CHECK(f.drain() == range(0, 1000));
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.paged_count() == 0);
    CHECK(f.file_size() == 0);
    CHECK(f.removed.size() == 1000);
  }

  TEST_CASE("consumers get paged messages in order while more arrive") {
    fixture f{60};
    REQUIRE(f.q.add_consumer(7, 1, 0, false, false) == errc::none);
    f.put_n(0, 300);
    std::vector<std::string> got;
    // Interleave: deliver some, publish more, deliver again.
    for (int round = 0; round < 3; ++round) {
      f.out.clear();
      f.q.dispatch(f.now, f.out, f.dead, 120);
      for (auto& d : f.out)
        got.push_back(d.msg->body);
      f.put_n(300 + round * 100, 400 + round * 100);
    }
    f.out.clear();
    f.q.dispatch(f.now, f.out, f.dead);
    for (auto& d : f.out)
      got.push_back(d.msg->body);
    CHECK(got == range(0, 600));
    CHECK(f.q.unacked_count() == 600);
  }

  TEST_CASE("requeued messages go back before the paged ones") {
    fixture f{60};
    REQUIRE(f.q.add_consumer(7, 1, 5, false, false) == errc::none);
    f.put_n(0, 100);
    f.q.dispatch(f.now, f.out, f.dead);
    REQUIRE(f.out.size() == 5);
    std::vector<uint64_t> ids;
    for (auto& d : f.out)
      ids.push_back(d.id);
    f.q.reject(1, ids, true, f.dead);
    f.q.remove_consumer(7);
    CHECK(f.drain(2) == range(0, 100));
  }

  TEST_CASE("purge removes paged messages and frees their file") {
    fixture f{60};
    f.put_n(0, 500);
    REQUIRE(f.q.paged_count() > 0);
    f.removed.clear();
    CHECK(f.q.purge(f.dead) == 500);
    CHECK(f.removed.size() == 500);
    CHECK(f.q.paged_count() == 0);
    CHECK(f.q.ready_bytes() == 0);
    CHECK(f.file_size() == 0);
    f.put_n(500, 600);
    CHECK(f.drain() == range(500, 600));
  }

  TEST_CASE("paged messages expire when they reach the head") {
    queue_config cfg;
    cfg.message_ttl = 500;
    fixture f{60, cfg};
    f.put_n(0, 200);
    f.now += 1000;
    f.q.expire(f.now, f.dead);
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.stats().expired == 200);
    CHECK(f.removed.size() == 200);
  }

  TEST_CASE("queues that need every message at hand do not page") {
    scratch tmp;
    queue_config prio;
    prio.max_priority = 5;
    queue_model a{"a", prio};
    CHECK_FALSE(a.set_pager(make_file_pager(tmp.dir + "/a"), 60));
    queue_config limited;
    limited.max_length = 1000;
    queue_model b{"b", limited};
    CHECK_FALSE(b.set_pager(make_file_pager(tmp.dir + "/b"), 60));
    queue_model c{"c", {}};
    CHECK_FALSE(c.set_pager(make_file_pager(tmp.dir + "/c"), 0));
  }

  TEST_CASE("a pager that cannot write stops paging and loses nothing") {
    queue_model q{"q", {}};
    // A directory that does not exist: the first segment cannot be made.
    REQUIRE(q.set_pager(make_file_pager("/nonexistent-flotilla/q"), 60));
    std::vector<dead_letter> dead;
    for (int i = 0; i < 100; ++i)
      q.enqueue(make_msg(body_of(i)), 1000, dead);
    CHECK(q.paging_failed());
    CHECK(q.paged_count() == 0);
    std::vector<std::string> got;
    while (auto d = q.get(1, true, 1000, dead))
      got.push_back(d->msg->body);
    CHECK(got == range(0, 100));
  }

  TEST_CASE("a paged message that cannot be read back is counted as lost") {
    fixture f{60};
    f.put_n(0, 100);
    // Damage the page file behind the pager's back.
    REQUIRE(::truncate((f.tmp.dir + "/q.0").c_str(), 0) == 0);
    auto got = f.drain();
    CHECK(got == range(0, 10)); // the ones in memory
    CHECK(f.q.stats().page_read_errors == 90);
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.ready_bytes() == 0);
    CHECK(f.removed.size() == 100);
  }
}
