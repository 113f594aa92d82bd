#include "actors/queue_model.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

using namespace flotilla;

namespace {

using overflow_policy = queue_config::overflow_policy;

message_ptr make_msg(std::string body, std::optional<uint8_t> priority = {},
                     std::optional<std::string> expiration = {}) {
  auto m = std::make_shared<message>();
  m->exchange = "ex";
  m->routing_key = "rk";
  m->body = std::move(body);
  m->properties.priority = priority;
  m->properties.expiration = std::move(expiration);
  return m;
}

std::vector<std::string> bodies(const std::vector<delivery>& ds) {
  std::vector<std::string> result;
  for (auto& d : ds)
    result.push_back(d.msg->body);
  return result;
}

std::vector<std::string> bodies(const std::vector<dead_letter>& ds) {
  std::vector<std::string> result;
  for (auto& d : ds)
    result.push_back(d.msg->body);
  return result;
}

std::vector<uint64_t> ids_of(const std::vector<delivery>& ds) {
  std::vector<uint64_t> result;
  for (auto& d : ds)
    result.push_back(d.id);
  return result;
}

using strings = std::vector<std::string>;

/// A queue_model plus the vectors its calls fill.
struct fixture {
  explicit fixture(queue_config cfg = {}) : q("q", std::move(cfg)) {}

  queue_model q;
  std::vector<delivery> out;
  std::vector<dead_letter> dead;
  millis now = 1000;

  queue_model::enqueue_result put(std::string body,
                                  std::optional<uint8_t> priority = {},
                                  std::optional<std::string> expiration = {}) {
    return q.enqueue(make_msg(std::move(body), priority, std::move(expiration)),
                     now, dead);
  }

  /// Returns the deliveries of one dispatch (clearing older ones).
  std::vector<delivery>& run() {
    out.clear();
    q.dispatch(now, out, dead);
    return out;
  }

  /// Returns the remaining ready messages in delivery order, via basic.get.
  strings drain() {
    strings result;
    while (auto d = q.get(999, true, now, dead))
      result.push_back(d->msg->body);
    return result;
  }
};

queue_config with_dlx(queue_config cfg = {}) {
  cfg.dead_letter_exchange = "dlx";
  return cfg;
}

} // namespace

TEST_SUITE("queue") {

  TEST_CASE("messages are delivered in FIFO order with increasing ids") {
    fixture f;
    f.put("a");
    f.put("b");
    f.put("c");
    CHECK(f.q.ready_count() == 3);
    CHECK(f.q.ready_bytes() == 3);
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    auto& ds = f.run();
    CHECK(bodies(ds) == strings{"a", "b", "c"});
    CHECK(ids_of(ds) == std::vector<uint64_t>{1, 2, 3});
    for (auto& d : ds) {
      CHECK(d.consumer == 1);
      CHECK(d.owner == 10);
      CHECK_FALSE(d.redelivered);
    }
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.ready_bytes() == 0);
    CHECK(f.q.unacked_count() == 3);
    CHECK(f.q.ack(10, {1, 2, 3}) == 3);
    CHECK(f.q.unacked_count() == 0);
    CHECK(f.q.stats().enqueued == 3);
    CHECK(f.q.stats().delivered == 3);
    CHECK(f.q.stats().acked == 3);
  }

  TEST_CASE("dispatch without consumers delivers nothing") {
    fixture f;
    f.put("a");
    CHECK(f.run().empty());
    CHECK(f.q.ready_count() == 1);
    CHECK(f.q.unused());
  }

  TEST_CASE("dispatch stops after max_deliveries") {
    queue_config cfg;
    cfg.message_ttl = 0;
    fixture f{cfg};
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    f.put("a");
    f.put("b");
    f.put("c");
    f.q.dispatch(f.now, f.out, f.dead, 2);
    CHECK(bodies(f.out) == strings{"a", "b"});
    // The next dispatch still delivers the TTL 0 message.
    CHECK(bodies(f.run()) == strings{"c"});
    CHECK(f.dead.empty());
  }

  TEST_CASE("x-max-priority serves higher priorities first, capped") {
    queue_config cfg;
    cfg.max_priority = 5;
    fixture f{cfg};
    f.put("a0", 0);
    f.put("b3", 3);
    f.put("c9", 9); // Capped at 5.
    f.put("d3", 3);
    f.put("e"); // No priority: 0.
    f.put("f5", 5);
    CHECK(f.drain() == strings{"c9", "f5", "b3", "d3", "a0", "e"});
  }

  TEST_CASE("peek shows the delivery order and takes nothing") {
    queue_config cfg;
    cfg.max_priority = 5;
    fixture f{cfg};
    f.put("a0", 0);
    f.put("b3", 3);
    f.put("c5", 5);
    std::vector<queue_model::peeked> seen;
    f.q.peek(2, seen);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].msg->body == "c5");
    CHECK(seen[1].msg->body == "b3");
    CHECK_FALSE(seen[0].redelivered);
    seen.clear();
    f.q.peek(10, seen);
    CHECK(seen.size() == 3);
    CHECK(f.q.ready_count() == 3);
    CHECK(f.drain() == strings{"c5", "b3", "a0"});
  }

  TEST_CASE("without x-max-priority the priority property is ignored") {
    fixture f;
    f.put("a", 0);
    f.put("b", 9);
    f.put("c", 3);
    CHECK(f.drain() == strings{"a", "b", "c"});
  }

  TEST_CASE("prefetch limits unacked deliveries and ack frees credit") {
    fixture f;
    for (auto b : {"a", "b", "c", "d", "e"})
      f.put(b);
    REQUIRE(f.q.add_consumer(1, 10, 2, false, false) == errc::none);
    CHECK(bodies(f.run()) == strings{"a", "b"});
    CHECK(f.q.consumer_unacked(1) == 2);
    CHECK(f.run().empty());
    CHECK(f.q.ack(10, {1}) == 1);
    CHECK(f.q.consumer_unacked(1) == 1);
    CHECK(bodies(f.run()) == strings{"c"});
    // Unknown ids, ids acked twice and other owners' ids are ignored.
    CHECK(f.q.ack(10, {1, 42}) == 0);
    CHECK(f.q.ack(11, {2}) == 0);
    CHECK(f.q.ack(10, {2, 3}) == 2);
    CHECK(bodies(f.run()) == strings{"d", "e"});
    CHECK(f.q.unacked_count() == 2);
  }

  TEST_CASE("equal priority consumers are served round-robin") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(2, 20, 0, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(3, 20, 0, true, false) == errc::none);
    for (auto b : {"a", "b", "c", "d", "e", "f", "g"})
      f.put(b);
    auto& ds = f.run();
    REQUIRE(ds.size() == 7);
    std::vector<consumer_id> who;
    for (auto& d : ds)
      who.push_back(d.consumer);
    CHECK(who == std::vector<consumer_id>{1, 2, 3, 1, 2, 3, 1});
    // Round-robin continues across dispatches.
    f.put("h");
    CHECK(f.run().at(0).consumer == 2);
  }

  TEST_CASE("a blocked consumer is skipped and rejoins when credit returns") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(2, 20, 0, false, false) == errc::none);
    f.put("a");
    f.put("b");
    f.put("c");
    auto& ds = f.run();
    REQUIRE(ds.size() == 3);
    CHECK(ds[0].consumer == 1);
    CHECK(ds[1].consumer == 2);
    CHECK(ds[2].consumer == 2);
    f.q.ack(10, {ds[0].id});
    f.put("d");
    f.put("e");
    auto& more = f.run();
    REQUIRE(more.size() == 2);
    CHECK(more[0].consumer == 2);
    CHECK(more[1].consumer == 1);
  }

  TEST_CASE("higher x-priority consumers go first while they have credit") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false, 0) == errc::none);
    REQUIRE(f.q.add_consumer(2, 20, 2, false, false, 10) == errc::none);
    REQUIRE(f.q.add_consumer(3, 30, 0, false, false, -5) == errc::none);
    for (auto b : {"a", "b", "c", "d"})
      f.put(b);
    auto& ds = f.run();
    REQUIRE(ds.size() == 4);
    CHECK(ds[0].consumer == 2);
    CHECK(ds[1].consumer == 2);
    CHECK(ds[2].consumer == 1); // 2 is out of credit; 3 has the lowest.
    CHECK(ds[3].consumer == 1);
    f.q.ack(20, {ds[0].id});
    f.put("e");
    CHECK(f.run().at(0).consumer == 2);
    f.q.remove_consumer(1);
    f.put("f");
    CHECK(f.run().at(0).consumer == 3);
  }

  TEST_CASE("single active consumer fails over in registration order") {
    queue_config cfg;
    cfg.single_active_consumer = true;
    fixture f{cfg};
    CHECK_FALSE(f.q.active_consumer());
    REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(2, 20, 0, false, false, 100) == errc::none);
    REQUIRE(f.q.add_consumer(3, 30, 0, false, false) == errc::none);
    CHECK(f.q.active_consumer() == consumer_id{1});
    f.put("a");
    f.put("b");
    f.put("c");
    // Only the active consumer receives, even when out of credit.
    CHECK(bodies(f.run()) == strings{"a"});
    CHECK(f.run().empty());
    f.q.remove_consumer(1);
    CHECK(f.q.active_consumer() == consumer_id{2});
    // The old consumer's delivery stays unacked, owned by its channel.
    CHECK(f.q.unacked_count() == 1);
    auto& ds = f.run();
    CHECK(bodies(ds) == strings{"b", "c"});
    CHECK(ds.at(0).consumer == 2);
    CHECK(f.q.ack(10, {1}) == 1);
    f.q.remove_consumer(3); // Not active: nothing changes.
    CHECK(f.q.active_consumer() == consumer_id{2});
    f.q.remove_consumer(2);
    CHECK_FALSE(f.q.active_consumer());
    CHECK(f.q.consumer_count() == 0);
  }

  TEST_CASE("single active consumer: owner_closed hands over to the next") {
    queue_config cfg;
    cfg.single_active_consumer = true;
    fixture f{cfg};
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(2, 20, 0, false, false) == errc::none);
    f.put("a");
    CHECK(f.run().at(0).consumer == 1);
    f.q.owner_closed(10);
    CHECK(f.q.active_consumer() == consumer_id{2});
    auto& ds = f.run();
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].consumer == 2);
    CHECK(ds[0].redelivered);
  }

  TEST_CASE("exclusive consumers lock the queue") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 0, false, true) == errc::none);
    CHECK(f.q.add_consumer(2, 10, 0, false, false) == errc::access_refused);
    CHECK(f.q.add_consumer(3, 20, 0, false, true) == errc::access_refused);
    f.q.remove_consumer(1);
    REQUIRE(f.q.add_consumer(4, 20, 0, false, false) == errc::none);
    CHECK(f.q.add_consumer(5, 20, 0, false, true) == errc::access_refused);
    CHECK(f.q.add_consumer(6, 30, 0, false, false) == errc::none);
    CHECK(f.q.consumer_count() == 2);
    // Ids must be new and not 0 (0 marks basic.get).
    CHECK(f.q.add_consumer(4, 20, 0, false, false) == errc::not_allowed);
    CHECK(f.q.add_consumer(0, 20, 0, false, false) == errc::not_allowed);
  }

  TEST_CASE("single active consumer queues refuse exclusive consumers") {
    queue_config cfg;
    cfg.single_active_consumer = true;
    fixture f{cfg};
    CHECK(f.q.add_consumer(1, 10, 0, false, true) == errc::access_refused);
    CHECK(f.q.consumer_count() == 0);
  }

  TEST_CASE("requeued messages return to their position, redelivered") {
    fixture f;
    for (auto b : {"a", "b", "c", "d"})
      f.put(b);
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    auto ds = f.run(); // ids 1..4
    REQUIRE(ds.size() == 4);
    f.q.remove_consumer(1);
    f.put("e"); // id 5
    f.q.reject(10, {3, 1}, true, f.dead);
    CHECK(f.dead.empty());
    CHECK(f.q.unacked_count() == 2);
    f.q.release(10, {2}); // Never reached the client: not redelivered.
    f.q.reject(99, {4}, true, f.dead); // Other owner: ignored.
    CHECK(f.q.unacked_count() == 1);
    std::vector<std::pair<std::string, bool>> got;
    while (auto d = f.q.get(20, true, f.now, f.dead))
      got.emplace_back(d->msg->body, d->redelivered);
    CHECK(got
          == std::vector<std::pair<std::string, bool>>{
            {"a", true}, {"b", false}, {"c", true}, {"e", false}});
    CHECK(f.q.stats().requeued == 3);
    CHECK(f.q.stats().redelivered == 2);
  }

  TEST_CASE("requeue merges into the middle and keeps priority levels") {
    queue_config cfg;
    cfg.max_priority = 2;
    fixture f{cfg};
    f.put("a", 1); // 1
    f.put("b", 2); // 2
    f.put("c", 1); // 3
    f.put("d", 1); // 4
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    auto ds = f.run();
    CHECK(bodies(ds) == strings{"b", "a", "c", "d"});
    f.q.remove_consumer(1);
    f.q.reject(10, {3}, true, f.dead); // c back, alone.
    f.put("e", 1);                     // 5, after c.
    f.put("f", 2);                     // 6
    // b (2) goes before f; a (1) before c; d (4) between c and e.
    f.q.reject(10, {1, 2, 4}, true, f.dead);
    CHECK(f.drain() == strings{"b", "f", "a", "c", "d", "e"});
  }

  TEST_CASE("released deliveries keep their redelivered flag") {
    fixture f;
    f.put("a");
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    f.run();
    f.q.reject(10, {1}, true, f.dead);
    auto& ds = f.run();
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].redelivered);
    f.q.release(10, {1});
    auto& again = f.run();
    REQUIRE(again.size() == 1);
    CHECK(again[0].redelivered); // It had been redelivered already.
  }

  TEST_CASE("reject without requeue dead-letters only with a DLX") {
    SUBCASE("with a dead-letter exchange") {
      fixture f{with_dlx()};
      f.put("a");
      f.put("b");
      REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
      f.run();
      f.q.reject(10, {2, 1}, false, f.dead);
      REQUIRE(f.dead.size() == 2);
      CHECK(f.dead[0].reason == dead_letter_reason::rejected);
      CHECK(f.dead[0].msg->body == "b");
      CHECK(f.q.unacked_count() == 0);
      CHECK(f.q.ready_count() == 0);
      CHECK(f.q.stats().dead_lettered == 2);
    }
    SUBCASE("without") {
      fixture f;
      f.put("a");
      REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
      f.run();
      f.q.reject(10, {1}, false, f.dead);
      CHECK(f.dead.empty());
      CHECK(f.q.unacked_count() == 0);
      CHECK(f.q.stats().discarded == 1);
      // Credit is back.
      f.put("b");
      CHECK(bodies(f.run()) == strings{"b"});
    }
  }

  TEST_CASE("owner_closed requeues its unacked and removes its consumers") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(2, 10, 0, false, false) == errc::none);
    REQUIRE(f.q.add_consumer(3, 20, 0, false, false) == errc::none);
    for (auto b : {"a", "b", "c", "d", "e", "f"})
      f.put(b);
    auto ds = f.run(); // 1:a,d 2:b,e 3:c,f
    REQUIRE(ds.size() == 6);
    auto got = f.q.get(10, false, f.now, f.dead);
    CHECK_FALSE(got); // Nothing ready.
    f.q.owner_closed(10);
    CHECK(f.q.consumer_count() == 1);
    CHECK(f.q.unacked_count() == 2); // Owner 20's c and f.
    auto& again = f.run();
    CHECK(bodies(again) == strings{"a", "b", "d", "e"});
    for (auto& d : again) {
      CHECK(d.consumer == 3);
      CHECK(d.redelivered);
    }
  }

  TEST_CASE("basic.recover requeues; requeue=false is not implemented") {
    fixture f;
    f.put("a");
    f.put("b");
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    f.run();
    CHECK(f.q.recover(10, false) == errc::not_implemented);
    CHECK(f.q.unacked_count() == 2);
    CHECK(f.q.recover(10, true) == errc::none);
    auto& ds = f.run();
    CHECK(bodies(ds) == strings{"a", "b"});
    CHECK(ds.at(0).redelivered);
  }

  TEST_CASE("no-ack consumers have unlimited credit and nothing unacked") {
    fixture f;
    REQUIRE(f.q.add_consumer(1, 10, 1, true, false) == errc::none);
    for (auto b : {"a", "b", "c"})
      f.put(b);
    auto& ds = f.run();
    CHECK(bodies(ds) == strings{"a", "b", "c"});
    CHECK(f.q.unacked_count() == 0);
    CHECK(f.q.ack(10, ids_of(ds)) == 0);
    CHECK(f.q.stats().delivered == 3);
  }

  TEST_CASE("basic.get") {
    fixture f;
    CHECK_FALSE(f.q.get(10, false, f.now, f.dead));
    f.put("a");
    f.put("b");
    auto d = f.q.get(10, false, f.now, f.dead);
    REQUIRE(d);
    CHECK(d->consumer == 0);
    CHECK(d->owner == 10);
    CHECK(d->msg->body == "a");
    CHECK(f.q.ready_count() == 1);
    CHECK(f.q.unacked_count() == 1);
    auto e = f.q.get(10, true, f.now, f.dead);
    REQUIRE(e);
    CHECK(e->msg->body == "b");
    CHECK(f.q.unacked_count() == 1);
    CHECK(f.q.ack(10, {d->id}) == 1);
    // A rejected get is redelivered.
    f.put("c");
    auto g = f.q.get(10, false, f.now, f.dead);
    f.q.reject(10, {g->id}, true, f.dead);
    auto h = f.q.get(10, false, f.now, f.dead);
    REQUIRE(h);
    CHECK(h->msg->body == "c");
    CHECK(h->redelivered);
  }

  TEST_CASE("queue TTL expires messages at the head") {
    queue_config cfg = with_dlx();
    cfg.message_ttl = 100;
    fixture f{cfg};
    CHECK(f.q.next_expiry() == 0);
    f.now = 0;
    f.put("a");
    f.now = 50;
    f.put("b");
    CHECK(f.q.next_expiry() == 100);
    f.q.expire(99, f.dead);
    CHECK(f.dead.empty());
    f.q.expire(100, f.dead);
    CHECK(bodies(f.dead) == strings{"a"});
    CHECK(f.dead.at(0).reason == dead_letter_reason::expired);
    CHECK(f.q.next_expiry() == 150);
    CHECK(f.q.ready_count() == 1);
    CHECK(f.q.stats().expired == 1);
    // Dispatch and get skip expired heads too.
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    f.put("c"); // At 50: expires at 150.
    f.now = 150;
    f.put("d");
    CHECK(bodies(f.run()) == strings{"d"});
    CHECK(bodies(f.dead) == strings{"a", "b", "c"});
    CHECK(f.q.next_expiry() == 0);
  }

  TEST_CASE("expired messages are dropped without a DLX") {
    queue_config cfg;
    cfg.message_ttl = 10;
    fixture f{cfg};
    f.put("a");
    f.q.expire(f.now + 10, f.dead);
    CHECK(f.dead.empty());
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.stats().expired == 1);
    CHECK(f.q.stats().dead_lettered == 0);
  }

  TEST_CASE("per-message TTL expires only at the head, like RabbitMQ") {
    fixture f{with_dlx()};
    f.now = 0;
    f.put("long", {}, "1000");
    f.put("short", {}, "10");
    f.put("none");
    CHECK(f.q.next_expiry() == 1000);
    f.q.expire(500, f.dead);
    CHECK(f.dead.empty()); // "short" waits behind "long".
    CHECK(f.q.ready_count() == 3);
    auto d = f.q.get(10, true, 500, f.dead);
    REQUIRE(d);
    CHECK(d->msg->body == "long");
    CHECK(f.q.next_expiry() == 10);
    f.q.expire(500, f.dead);
    CHECK(bodies(f.dead) == strings{"short"});
    CHECK(f.q.next_expiry() == 0); // "none" never expires.
    CHECK(f.q.ready_count() == 1);
  }

  TEST_CASE("the effective TTL is the smaller of queue and message TTL") {
    queue_config cfg;
    cfg.message_ttl = 100;
    fixture f{cfg};
    f.now = 0;
    f.put("a", {}, "1000");
    CHECK(f.q.next_expiry() == 100);
    f.q.purge(f.dead);
    f.put("b", {}, "10");
    CHECK(f.q.next_expiry() == 10);
    f.q.purge(f.dead);
    f.put("c", {}, "junk"); // Invalid: treated as absent.
    CHECK(f.q.next_expiry() == 100);
  }

  TEST_CASE("TTL 0 delivers only to a consumer ready at the next dispatch") {
    SUBCASE("no consumer: expires at the dispatch") {
      fixture f{with_dlx()};
      f.now = 0;
      f.put("a", {}, "0");
      CHECK(f.q.next_expiry() == 1); // 0 would mean "no expiry".
      CHECK(f.q.ready_count() == 1);
      CHECK(f.run().empty());
      CHECK(bodies(f.dead) == strings{"a"});
      CHECK(f.q.ready_count() == 0);
      // A consumer arriving later (even at the same time) is too late.
      REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
      CHECK(f.run().empty());
    }
    SUBCASE("consumer with credit for one of two") {
      queue_config cfg = with_dlx();
      cfg.message_ttl = 0;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
      f.put("a");
      f.put("b");
      CHECK(bodies(f.run()) == strings{"a"});
      CHECK(bodies(f.dead) == strings{"b"});
      // Requeued, it has expired: RabbitMQ drops it at the head.
      f.q.reject(10, {1}, true, f.dead);
      CHECK(f.run().empty());
      CHECK(bodies(f.dead) == strings{"b", "a"});
    }
    SUBCASE("later dispatches and time do not revive it") {
      fixture f;
      f.now = 0;
      f.put("x", {}, "1000");
      f.put("a", {}, "0"); // Behind x: waits for the head, then expires.
      f.run();
      REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
      CHECK(bodies(f.run()) == strings{"x"});
      CHECK(f.q.ready_count() == 0);
      CHECK(f.q.stats().expired == 1);
    }
  }

  TEST_CASE("x-max-length drop-head drops the oldest") {
    SUBCASE("with a DLX") {
      queue_config cfg = with_dlx();
      cfg.max_length = 2;
      fixture f{cfg};
      CHECK(f.put("a") == queue_model::enqueue_result::accepted);
      CHECK(f.put("b") == queue_model::enqueue_result::accepted);
      CHECK(f.put("c") == queue_model::enqueue_result::accepted);
      CHECK(bodies(f.dead) == strings{"a"});
      CHECK(f.dead.at(0).reason == dead_letter_reason::maxlen);
      CHECK(f.drain() == strings{"b", "c"});
      CHECK(f.q.stats().overflowed == 1);
    }
    SUBCASE("without") {
      queue_config cfg;
      cfg.max_length = 1;
      fixture f{cfg};
      f.put("a");
      f.put("b");
      CHECK(f.dead.empty());
      CHECK(f.drain() == strings{"b"});
    }
    SUBCASE("unacked messages do not count") {
      queue_config cfg;
      cfg.max_length = 1;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
      f.put("a");
      f.run();
      f.put("b");
      CHECK(f.q.ready_count() == 1);
      CHECK(f.q.unacked_count() == 1);
    }
    SUBCASE("with priorities the next to deliver is dropped") {
      queue_config cfg;
      cfg.max_length = 2;
      cfg.max_priority = 3;
      fixture f{cfg};
      f.put("low", 0);
      f.put("high", 3);
      f.put("mid", 1);
      CHECK(f.drain() == strings{"mid", "low"});
    }
  }

  TEST_CASE("drop-head does not count messages consumers can take now") {
    SUBCASE("x-max-length 0 still feeds a waiting consumer") {
      queue_config cfg = with_dlx();
      cfg.max_length = 0;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 2, false, false) == errc::none);
      f.put("a");
      f.put("b");
      f.put("c"); // Beyond the credit: dropped.
      CHECK(bodies(f.dead) == strings{"c"});
      CHECK(bodies(f.run()) == strings{"a", "b"});
      f.put("d");
      CHECK(bodies(f.dead) == strings{"c", "d"});
    }
    SUBCASE("the oldest queued message is dropped, not a deliverable one") {
      queue_config cfg = with_dlx();
      cfg.max_length = 1;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
      f.put("a"); // Goes to the consumer.
      f.put("b");
      f.put("c"); // Queue [b, c] is too long: b goes.
      CHECK(bodies(f.dead) == strings{"b"});
      CHECK(bodies(f.run()) == strings{"a"});
      CHECK(f.drain() == strings{"c"});
    }
    SUBCASE("with a byte limit, only queued bodies count") {
      queue_config cfg = with_dlx();
      cfg.max_length_bytes = 4;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
      f.put("aaaa"); // Goes to the consumer.
      f.put("bbbb"); // Queued: 4 bytes, at the limit.
      CHECK(f.dead.empty());
      f.put("cc"); // Queued: 6 bytes; bbbb goes.
      CHECK(bodies(f.dead) == strings{"bbbb"});
      CHECK(bodies(f.run()) == strings{"aaaa"});
      CHECK(f.drain() == strings{"cc"});
    }
    SUBCASE("unlimited consumers take everything") {
      queue_config cfg;
      cfg.max_length = 0;
      fixture f{cfg};
      REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
      for (auto b : {"a", "b", "c"})
        f.put(b);
      CHECK(bodies(f.run()) == strings{"a", "b", "c"});
    }
  }

  TEST_CASE("x-overflow reject-publish refuses new messages") {
    queue_config cfg = with_dlx();
    cfg.max_length = 2;
    cfg.overflow = overflow_policy::reject_publish;
    fixture f{cfg};
    CHECK(f.put("a") == queue_model::enqueue_result::accepted);
    CHECK(f.put("b") == queue_model::enqueue_result::accepted);
    CHECK(f.put("c") == queue_model::enqueue_result::rejected);
    CHECK(f.dead.empty());
    CHECK(f.q.stats().rejected_publishes == 1);
    CHECK(f.q.stats().enqueued == 2);
    // Like RabbitMQ, refused even when a consumer could take it.
    REQUIRE(f.q.add_consumer(1, 10, 0, false, false) == errc::none);
    CHECK(f.put("d") == queue_model::enqueue_result::rejected);
    CHECK(bodies(f.run()) == strings{"a", "b"});
    CHECK(f.put("e") == queue_model::enqueue_result::accepted);
  }

  TEST_CASE("x-overflow reject-publish-dlx refuses and dead-letters") {
    queue_config cfg = with_dlx();
    cfg.max_length = 1;
    cfg.overflow = overflow_policy::reject_publish_dlx;
    fixture f{cfg};
    CHECK(f.put("a") == queue_model::enqueue_result::accepted);
    CHECK(f.put("b") == queue_model::enqueue_result::rejected);
    REQUIRE(f.dead.size() == 1);
    CHECK(f.dead[0].msg->body == "b");
    CHECK(f.dead[0].reason == dead_letter_reason::maxlen);
    CHECK(f.drain() == strings{"a"});
  }

  TEST_CASE("x-max-length-bytes counts ready body bytes") {
    SUBCASE("drop-head") {
      queue_config cfg = with_dlx();
      cfg.max_length_bytes = 10;
      fixture f{cfg};
      f.put("aaaa");
      f.put("bbbb");
      CHECK(f.dead.empty());
      f.put("cccc");
      CHECK(bodies(f.dead) == strings{"aaaa"});
      CHECK(f.q.ready_bytes() == 8);
      f.put("0123456789ab"); // Larger than the limit: everything goes.
      CHECK(f.q.ready_count() == 0);
      CHECK(f.q.ready_bytes() == 0);
    }
    SUBCASE("reject-publish") {
      queue_config cfg;
      cfg.max_length_bytes = 10;
      cfg.overflow = overflow_policy::reject_publish;
      fixture f{cfg};
      CHECK(f.put("aaaa") == queue_model::enqueue_result::accepted);
      CHECK(f.put("bbbbbb") == queue_model::enqueue_result::accepted);
      CHECK(f.put("c") == queue_model::enqueue_result::rejected);
      CHECK(f.put("") == queue_model::enqueue_result::accepted);
    }
  }

  TEST_CASE("purge removes ready messages only") {
    fixture f{with_dlx()};
    for (auto b : {"a", "b", "c"})
      f.put(b);
    REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
    f.run();
    CHECK(f.q.purge(f.dead) == 2);
    CHECK(f.dead.empty());
    CHECK(f.q.ready_count() == 0);
    CHECK(f.q.ready_bytes() == 0);
    CHECK(f.q.unacked_count() == 1);
    f.q.reject(10, {1}, true, f.dead);
    CHECK(f.q.ready_count() == 1);
    CHECK(f.q.purge(f.dead) == 1);
  }

  TEST_CASE("acks after the consumer is gone are accepted") {
    fixture f;
    f.put("a");
    REQUIRE(f.q.add_consumer(1, 10, 1, false, false) == errc::none);
    f.run();
    f.q.remove_consumer(1);
    f.q.remove_consumer(1); // Twice: ignored.
    CHECK(f.q.unused());
    CHECK(f.q.ack(10, {1}) == 1);
    // A new consumer with a new id gets fresh credit.
    REQUIRE(f.q.add_consumer(2, 10, 1, false, false) == errc::none);
    f.put("b");
    CHECK(bodies(f.run()) == strings{"b"});
  }

  TEST_CASE("many messages and consumers stay consistent") {
    queue_config cfg;
    cfg.max_priority = 3;
    fixture f{cfg};
    for (consumer_id c = 1; c <= 4; ++c)
      REQUIRE(
        f.q.add_consumer(c, c % 2, 3, false, false, static_cast<int32_t>(c % 3))
        == errc::none);
    uint64_t acked = 0;
    for (int round = 0; round < 200; ++round) {
      f.put("m" + std::to_string(round), static_cast<uint8_t>(round % 5));
      auto ds = f.run();
      for (auto& d : ds) {
        if (d.id % 3 == 0)
          f.q.reject(d.owner, {d.id}, true, f.dead);
        else
          acked += f.q.ack(d.owner, {d.id});
      }
      CHECK(f.q.unacked_count() + f.q.ready_count() + acked
            == f.q.stats().enqueued);
    }
  }

} // TEST_SUITE
