// The federation's wire types across a real BASP connection: two actor
// systems in this process, one publishes an actor on a loopback port, the
// other reaches it with remote_actor. (Locally CAF never serializes, so only
// this catches a type that was not registered or not inspectable.)

#include <doctest/doctest.h>

#include <chrono>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "federation/fabric.hpp"
#include "federation/wire.hpp"

using namespace flotilla::federation;

namespace {

struct two_systems {
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    fabric_settings s;
    s.heartbeat_interval = std::chrono::milliseconds(500);
    configure(cfg, s);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    return cfg;
  }
  caf::actor_system_config cfg_a;
  caf::actor_system_config cfg_b;
  caf::actor_system a{init(cfg_a)};
  caf::actor_system b{init(cfg_b)};
};

// The unused argument: CAF 0.17 dereferences a null (empty) argument tuple
// when it starts a function actor spawned without arguments, which UBSan
// reports as a reference bound to a null pointer.
caf::behavior echo_impl(caf::event_based_actor* self, int /* unused */) {
  return {
    [](forward_atom, forward_batch& batch) {
      forward_ack ack;
      for (auto& m : batch.messages)
        if (m.trace.size() == 2 && m.payload == "body" && m.origin_seq == 7)
          ++ack.accepted;
      return ack;
    },
    [](hello_atom, hello& h) {
      welcome w;
      w.ok = h.user == "u" && h.password == "p";
      w.broker_id = h.broker_id + "!";
      w.session = h.link;
      return w;
    },
    [](subscribe_atom, subscription& s) {
      return subscribed{!s.dynamic, s.exchange + "/" + s.key, s.bridge};
    },
    [](interest_atom, interest& in) {
      return static_cast<int32_t>(in.items.size());
    },
    [](push_atom, subscription& s) {
      return pushed{true, {}, s.bridge, "id", s.exchange};
    },
    [](duplex_atom, duplex_offer& o) {
      return o.name + "|" + o.static_keys.at(0) + "|" + o.exclude.at(0) + "|"
             + std::to_string(o.max_hops) + (o.session ? "|session" : "");
    },
  };
}

} // namespace

TEST_SUITE("federation") {
  TEST_CASE_FIXTURE(two_systems, "wire types cross a BASP connection") {
    auto server = b.spawn(echo_impl, 0);
    auto port = b.middleman().publish(server, 0, "127.0.0.1", true);
    REQUIRE(port);
    auto remote = a.middleman().remote_actor("127.0.0.1", *port);
    REQUIRE(remote);
    caf::scoped_actor self{a};
    auto t = std::chrono::seconds(5);
    forward_batch batch;
    batch.messages.push_back(fed_message{"o", 7, {"o", "p"}, "body"});
    batch.messages.push_back(fed_message{"o", 8, {"o"}, "x"});
    self->request(*remote, t, forward_atom::value, batch)
      .receive(
        [](forward_ack& ack) {
          CHECK(ack.accepted == 1);
        },
        [](caf::error& e) {
          FAIL("forward: " << to_string(e));
        });
    hello h{"u", "p", "id", "node", caf::actor_cast<caf::actor>(self)};
    self->request(*remote, t, hello_atom::value, h)
      .receive(
        [&](welcome& w) {
          CHECK(w.ok);
          CHECK(w.broker_id == "id!");
          // An actor handle came back through the other node.
          CHECK(w.session == caf::actor_cast<caf::actor>(self));
        },
        [](caf::error& e) {
          FAIL("hello: " << to_string(e));
        });
    subscription s;
    s.exchange = "amq.direct";
    s.key = "k";
    self->request(*remote, t, subscribe_atom::value, s)
      .receive(
        [](subscribed& r) {
          CHECK(r.ok);
          CHECK(r.error == "amq.direct/k");
        },
        [](caf::error& e) {
          FAIL("subscribe: " << to_string(e));
        });
    interest in{{{"a", {"x", "y"}}, {"b", {"x"}}}};
    self->request(*remote, t, interest_atom::value, in)
      .receive(
        [](int32_t n) {
          CHECK(n == 2);
        },
        [](caf::error& e) {
          FAIL("interest: " << to_string(e));
        });
    s.bridge = caf::actor_cast<caf::actor>(self);
    self->request(*remote, t, push_atom::value, s)
      .receive(
        [&](pushed& r) {
          CHECK(r.ok);
          CHECK(r.node_name == "amq.direct");
          CHECK(r.importer == caf::actor_cast<caf::actor>(self));
        },
        [](caf::error& e) {
          FAIL("push: " << to_string(e));
        });
    duplex_offer o;
    o.name = "to-a";
    o.exchanges = {"amq.direct"};
    o.static_exchanges = {"amq.topic"};
    o.static_keys = {"k.>"};
    o.exclude = {"x.#"};
    o.max_hops = 3;
    o.session = caf::actor_cast<caf::actor>(self);
    self->request(*remote, t, duplex_atom::value, o)
      .receive(
        [](std::string& r) {
          CHECK(r == "to-a|k.>|x.#|3|session");
        },
        [](caf::error& e) {
          FAIL("duplex: " << to_string(e));
        });
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  }
}
