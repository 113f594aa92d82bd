#include "federation/core.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>

#include "actors/store_codec.hpp"

using namespace flotilla;
using namespace flotilla::federation;
using namespace std::chrono_literals;

TEST_SUITE("federation") {
  TEST_CASE("a trace survives the message headers") {
    message m;
    m.raw_header = "x";
    CHECK_FALSE(read_trace(m));
    write_trace(m, trace_info{"a", 42, {"a", "b"}});
    CHECK(m.raw_header.empty());
    auto t = read_trace(m);
    REQUIRE(t);
    CHECK(t->origin == "a");
    CHECK(t->origin_seq == 42);
    CHECK(t->trace == std::vector<std::string>{"a", "b"});
    CHECK(split_ids("") == std::vector<std::string>{});
    CHECK(join_ids({"x", "y", "z"}) == "x,y,z");
  }

  TEST_CASE("the duplicate window remembers each origin's numbers") {
    dedup_window w{128};
    CHECK(w.accept("a", 1));
    CHECK_FALSE(w.accept("a", 1));
    CHECK(w.accept("b", 1)); // Origins are independent.
    CHECK(w.accept("a", 3));
    CHECK(w.accept("a", 2)); // Out of order, still new.
    CHECK_FALSE(w.accept("a", 2));
    CHECK(w.accept("a", 200));
    CHECK_FALSE(w.accept("a", 3)); // Older than the window: treated as seen.
    CHECK(w.accept("a", 199));
    CHECK(w.accept("a", 1000)); // A jump clears the bitmap.
    CHECK(w.accept("a", 999));
    CHECK_FALSE(w.accept("a", 1000));
  }

  TEST_CASE("a refused message is forgotten and accepted again") {
    dedup_window w{128};
    CHECK(w.accept("a", 5));
    CHECK(w.accept("a", 6));
    w.forget("a", 5);
    CHECK(w.accept("a", 5));
    CHECK_FALSE(w.accept("a", 5));
    CHECK_FALSE(w.accept("a", 6)); // Only the forgotten number.
    w.forget("a", 6);              // The highest number too.
    CHECK(w.accept("a", 6));
    w.forget("b", 1); // Unknown origin, number above the highest, or older
    w.forget("a", 7); // than the window: nothing to forget.
    CHECK(w.accept("a", 300));
    w.forget("a", 6);
    CHECK_FALSE(w.accept("a", 6));
    CHECK(w.accept("a", 7 + 200)); // Still new after the no-op forgets.
  }

  TEST_CASE("arrivals: loops, hop limit, duplicates") {
    dedup_window w;
    CHECK(check_arrival({"a", 1, {"a", "b"}}, "c", 16, w) == arrival::accept);
    CHECK(check_arrival({"a", 1, {"a", "d"}}, "c", 16, w)
          == arrival::duplicate);
    CHECK(check_arrival({"a", 2, {"a", "c", "b"}}, "c", 16, w)
          == arrival::loop);
    CHECK(check_arrival({"a", 2, {"a", "b", "d"}}, "c", 2, w)
          == arrival::too_many_hops);
    // The rejected ones did not enter the window.
    CHECK(check_arrival({"a", 2, {"a"}}, "c", 16, w) == arrival::accept);
  }

  TEST_CASE("export queues number what they page out, once per message") {
    origin_numbers n;
    auto orig = std::make_shared<message>();
    orig->routing_key = "k";
    orig->body = "payload";
    message_ptr m = orig;
    // Two export queues page the same message out: both copies, read back
    // as new objects, carry one number, the one its other copies get.
    auto a = number_for_paging("federation.b.r1", m, "self", n);
    auto b = number_for_paging("federation.c.r2", m, "self", n);
    REQUIRE(a != m);
    auto ta = read_trace(*decode_message(encode_message(*a)));
    auto tb = read_trace(*decode_message(encode_message(*b)));
    REQUIRE(ta);
    REQUIRE(tb);
    CHECK(ta->origin == "self");
    CHECK(ta->trace == std::vector<std::string>{"self"});
    CHECK(ta->origin_seq == tb->origin_seq);
    CHECK(n.number_of(m) == ta->origin_seq);
    CHECK(a->body == "payload");
    CHECK_FALSE(m->properties.headers); // The original is untouched.
    // Other queues, and messages that already carry a trace, pass as they
    // are.
    CHECK(number_for_paging("orders", m, "self", n) == m);
    CHECK(number_for_paging("federation.x", a, "self", n) == a);
  }

  TEST_CASE("one message gets one origin number on every bridge") {
    origin_numbers n;
    auto m1 = std::make_shared<const message>();
    auto m2 = std::make_shared<const message>();
    auto a = n.number_of(m1);
    CHECK(n.number_of(m1) == a);
    CHECK(n.number_of(m2) != a);
    // A new message at the address of a freed one gets a new number.
    auto* addr = m1.get();
    m1.reset();
    for (int i = 0; i < 2000; ++i) {
      auto m = std::make_shared<const message>();
      auto x = n.number_of(m);
      if (m.get() == addr)
        CHECK(x != a);
    }
  }

  TEST_CASE("interest: own keys, split horizon, no loops, hop limit") {
    std::vector<received_interest> got{
      {"p", {{"k1", {"p"}}}},
      {"q", {{"k2", {"q"}}, {"k3", {"p", "q"}}, {"k4", {"r", "self"}}}},
    };
    auto items = interest_for_peer("self", "p", {"k0"}, got, 16);
    // k0 is ours; k1 came from p (never echoed back); k3 crossed p; k4
    // crossed us already.
    REQUIRE(items.size() == 2);
    CHECK(items[0] == interest_item{"k0", {"self"}});
    CHECK(items[1] == interest_item{"k2", {"q", "self"}});
    CHECK(keys_of(items) == std::vector<std::string>{"k0", "k2"});
    CHECK(interest_for_peer("self", "p", {}, got, 1).empty());
  }

  /// node -> from peer -> the items that peer sent it.
  using interest_state
    = std::map<std::string, std::map<std::string, std::vector<interest_item>>>;

  // Runs dynamic-route interest to a fixed point on a topology (each pair in
  // `edges` has routes both ways), as the hubs do by exchanging messages.
  // Returns the number of rounds.
  int converge(const std::vector<std::pair<std::string, std::string>>& edges,
               const std::map<std::string, std::vector<std::string>>& local,
               interest_state& received) {
    for (int round = 1; round <= 50; ++round) {
      bool changed = false;
      for (auto& [a, b] : edges)
        for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
          std::vector<received_interest> r;
          for (auto& [peer, items] : received[from])
            r.push_back({peer, items});
          auto it = local.find(from);
          auto items = interest_for_peer(
            from, to,
            it == local.end() ? std::vector<std::string>{} : it->second, r, 16);
          if (received[to][from] != items) {
            received[to][from] = items;
            changed = true;
          }
        }
      if (!changed)
        return round;
    }
    return 0;
  }

  TEST_CASE("interest spreads around a ring and is withdrawn completely") {
    std::vector<std::pair<std::string, std::string>> ring{
      {"a", "b"}, {"b", "c"}, {"c", "d"}, {"d", "a"}};
    interest_state st;
    CHECK(converge(ring, {{"c", {"k"}}}, st) > 0);
    // a learns k from both neighbours (two paths to c).
    std::set<std::string> from;
    for (auto& [peer, items] : st["a"])
      if (!items.empty())
        from.insert(peer);
    CHECK(from == std::set<std::string>{"b", "d"});
    // c unbinds: nothing stays anywhere (no count to infinity).
    CHECK(converge(ring, {}, st) > 0);
    for (auto& [node, m] : st)
      for (auto& [peer, items] : m)
        CHECK_MESSAGE(items.empty(),
                      node << " still has interest from " << peer);
  }

  TEST_CASE("a full mesh converges too") {
    std::vector<std::pair<std::string, std::string>> mesh{
      {"a", "b"}, {"b", "c"}, {"c", "a"}, {"a", "d"}, {"b", "d"}, {"c", "d"}};
    interest_state st;
    CHECK(converge(mesh, {{"a", {"x"}}, {"d", {"y"}}}, st) > 0);
    for (auto n : {"b", "c"}) {
      std::set<std::string> keys;
      for (auto& [peer, items] : st[n])
        for (auto& k : keys_of(items))
          keys.insert(k);
      CHECK(keys == std::set<std::string>{"x", "y"});
    }
    CHECK(converge(mesh, {{"d", {"y"}}}, st) > 0);
    for (auto& [node, m] : st)
      for (auto& [peer, items] : m)
        for (auto& it : items)
          CHECK(it.key == "y");
  }

  TEST_CASE("reconnect delays double up to the maximum") {
    backoff b{2000ms, 64000ms};
    std::vector<long> got;
    for (int i = 0; i < 8; ++i)
      got.push_back(static_cast<long>(b.next().count()));
    CHECK(got
          == std::vector<long>{2000, 4000, 8000, 16000, 32000, 64000, 64000,
                               64000});
    b.reset();
    CHECK(b.next() == 2000ms);
  }

  TEST_CASE("after a lost connection the greater broker id reconnects later") {
    CHECK(reconnect_delay(2000ms, "a1", "b2") == 2000ms);
    CHECK(reconnect_delay(2000ms, "b2", "a1") == 3000ms);
    CHECK(reconnect_delay(2000ms, "b2", "") == 2000ms);
    CHECK(reconnect_delay(2000ms, "", "a1") == 2000ms);
  }

  TEST_CASE("broker ids and loopback") {
    auto a = make_broker_id();
    CHECK(a.size() == 16);
    CHECK(a != make_broker_id());
    CHECK(is_loopback("127.0.0.1"));
    CHECK(is_loopback("localhost"));
    CHECK_FALSE(is_loopback("0.0.0.0"));
    CHECK_FALSE(is_loopback("198.18.0.1"));
  }

  TEST_CASE("a route alarm waits for the limit and clears at once") {
    route_alarm a;
    CHECK_FALSE(a.update(true, 0, 3000));
    CHECK_FALSE(a.update(false, 1000, 3000)); // Down from 1000 on.
    CHECK_FALSE(a.update(false, 4000, 3000)); // Exactly the limit: not yet.
    CHECK_FALSE(a.raised());
    CHECK(a.update(false, 4001, 3000));
    CHECK(a.raised());
    CHECK_FALSE(a.update(false, 9000, 3000));
    CHECK(a.update(true, 9500, 3000));
    CHECK_FALSE(a.raised());
    // A short outage does not raise it; the clock restarts after running.
    CHECK_FALSE(a.update(false, 10000, 3000));
    CHECK_FALSE(a.update(true, 12000, 3000));
    CHECK_FALSE(a.update(false, 14000, 3000));
    CHECK_FALSE(a.update(false, 16000, 3000));
    CHECK(a.update(false, 17001, 3000));
  }

  TEST_CASE("a durable route's source queue has a stable name") {
    // No federation id in it: it is found again after restarts.
    CHECK(durable_export_queue("dest", "localhost:10002/amq.direct/k")
          == "federation.dest.localhost:10002/amq.direct/k");
  }
}
