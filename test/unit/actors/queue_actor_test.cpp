// The queue actor on CAF's deterministic test scheduler: nothing runs until
// sched.run(), so message order is exactly what the test says.

#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/messages.hpp"
#include "actors/queue_actor.hpp"

using namespace flotilla;

namespace {

struct queue_fixture {
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{init(cfg)};
  caf::scoped_actor self{sys, true};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  vhost_table_ptr table = std::make_shared<vhost_table>("/");
  caf::actor queue;

  explicit queue_fixture(queue_config qc = {}) {
    queue = spawn_queue(sys, "q", std::move(qc), self, table);
  }

  ~queue_fixture() {
    self->send_exit(queue, caf::exit_reason::user_shutdown);
    sched.run();
  }

  static message_ptr msg(std::string body, uint8_t priority = 0) {
    auto m = std::make_shared<message>();
    m->routing_key = "q";
    m->body = std::move(body);
    if (priority != 0)
      m->properties.priority = priority;
    return m;
  }

  void publish(std::vector<message_ptr> msgs) {
    self->send(queue, enqueue_atom::value, enqueue_batch{std::move(msgs), {}});
    sched.run();
  }

  op_result consume(uint64_t key, uint64_t owner, uint32_t prefetch,
                    bool exclusive = false) {
    consumer_spec spec;
    spec.key = key;
    spec.owner = owner;
    spec.connection = self;
    spec.prefetch = prefetch;
    spec.exclusive = exclusive;
    self->send(queue, consume_atom::value, spec);
    sched.run();
    op_result result;
    self->receive([&](op_result& r) {
      result = std::move(r);
    });
    return result;
  }

  /// Returns the bodies of every delivery waiting in self's mailbox.
  std::vector<std::pair<std::string, uint64_t>> deliveries() {
    std::vector<std::pair<std::string, uint64_t>> out;
    while (!self->mailbox().empty()) {
      self->receive(
        [&](deliver_atom, delivery_batch& b) {
          for (auto& item : b.items)
            out.emplace_back(item.msg->body, item.id);
        },
        [&](caf::message&) {});
    }
    return out;
  }

  op_result stats() {
    self->send(queue, stats_atom::value);
    sched.run();
    op_result result;
    self->receive([&](op_result& r) {
      result = std::move(r);
    });
    return result;
  }
};

} // namespace

TEST_SUITE("queue") {

  TEST_CASE_FIXTURE(queue_fixture,
                    "a consumer gets messages in publish order") {
    publish({msg("a"), msg("b"), msg("c")});
    CHECK(stats().message_count == 3);
    auto r = consume(1, 1, 0);
    CHECK(r.ok());
    auto got = deliveries();
    REQUIRE(got.size() == 3);
    CHECK(got[0].first == "a");
    CHECK(got[1].first == "b");
    CHECK(got[2].first == "c");
    CHECK(stats().message_count == 0);
  }

  TEST_CASE_FIXTURE(queue_fixture, "prefetch limits unacked deliveries") {
    auto r = consume(1, 7, 2);
    CHECK(r.ok());
    publish({msg("1"), msg("2"), msg("3"), msg("4")});
    auto got = deliveries();
    REQUIRE(got.size() == 2);
    self->send(queue, ack_atom::value, uint64_t{7},
               std::vector<uint64_t>{got[0].second});
    sched.run();
    got = deliveries();
    REQUIRE(got.size() == 1);
    CHECK(got[0].first == "3");
  }

  TEST_CASE_FIXTURE(queue_fixture,
                    "a closed channel's unacked messages return") {
    consume(1, 7, 1);
    publish({msg("x"), msg("y")});
    auto got = deliveries();
    REQUIRE(got.size() == 1);
    self->send(queue, closed_atom::value, uint64_t{7});
    sched.run();
    CHECK(stats().message_count == 2);
    CHECK(stats().consumer_count == 0);
    consume(2, 8, 0);
    got = deliveries();
    REQUIRE(got.size() == 2);
    CHECK(got[0].first == "x"); // Requeued at its original position.
  }

  TEST_CASE_FIXTURE(queue_fixture, "an exclusive consumer locks the queue") {
    CHECK(consume(1, 1, 0, true).ok());
    auto r = consume(2, 2, 0);
    CHECK(r.code == errc::access_refused);
  }

  TEST_CASE_FIXTURE(queue_fixture, "basic.get takes one message") {
    publish({msg("only")});
    self->send(queue, fetch_atom::value, uint64_t{3}, true);
    sched.run();
    self->receive([&](get_reply& r) {
      CHECK(r.found);
      CHECK(r.item.msg->body == "only");
      CHECK(r.message_count == 0);
    });
    self->send(queue, fetch_atom::value, uint64_t{3}, true);
    sched.run();
    self->receive([&](get_reply& r) {
      CHECK(!r.found);
    });
  }

  TEST_CASE_FIXTURE(queue_fixture, "delete if-unused refuses while consumed") {
    consume(1, 1, 0);
    self->send(queue, remove_atom::value, true, false);
    sched.run();
    self->receive([&](op_result& r) {
      CHECK(r.code == errc::precondition_failed);
    });
    self->send(queue, remove_atom::value, false, false);
    sched.run();
    bool cancelled = false;
    self->receive([&](op_result& r) {
      CHECK(r.ok());
    });
    self->receive([&](cancelled_atom, uint64_t key) {
      cancelled = true;
      CHECK(key == 1);
    });
    CHECK(cancelled);
  }

} // TEST_SUITE
