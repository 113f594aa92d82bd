// vhost_table routing: the read side publishers use, with real actor
// handles as destinations.

#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "actors/routing.hpp"

using namespace flotilla;
namespace pr = flotilla::protocol;

namespace {

// Takes an argument because CAF 0.17 binds a reference to a null pointer
// when spawning a function actor without arguments (UBSan reports it).
caf::behavior idle_actor(int) {
  return {[](int) {}};
}

struct routing_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  vhost_table table{"/"};
  std::vector<caf::actor> spawned;

  ~routing_fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

  caf::actor add_queue(const std::string& name) {
    auto a = sys.spawn(idle_actor, 0);
    spawned.push_back(a);
    auto q = std::make_shared<queue_entry>();
    q->name = name;
    q->actor = a;
    table.put_queue(q);
    return a;
  }

  exchange_entry_ptr add_exchange(const std::string& name, exchange_kind k,
                                  pr::field_table args = {}) {
    auto x = std::make_shared<exchange_entry>(name, k, false, false, false,
                                              std::move(args));
    table.put_exchange(x);
    return x;
  }

  void bind(const exchange_entry_ptr& x, const std::string& key,
            const caf::actor& q, const std::string& qname,
            pr::field_table args = {}) {
    x->add_binding(
      binding{key, std::move(args), binding_dest{false, qname, q}});
  }

  std::vector<caf::actor> route(const std::string& x, const std::string& key,
                                const pr::field_table* headers = nullptr) {
    std::vector<caf::actor> out;
    table.route(x, key, headers, out);
    return out;
  }
};

} // namespace

TEST_SUITE("routing") {

  TEST_CASE_FIXTURE(routing_fixture, "default exchange routes by queue name") {
    auto q = add_queue("orders");
    CHECK(route("", "orders") == std::vector<caf::actor>{q});
    CHECK(route("", "nope").empty());
  }

  TEST_CASE_FIXTURE(routing_fixture, "direct, fanout and topic exchanges") {
    auto a = add_queue("a");
    auto b = add_queue("b");
    auto direct = add_exchange("d", exchange_kind::direct);
    bind(direct, "k1", a, "a");
    bind(direct, "k1", b, "b");
    bind(direct, "k2", b, "b");
    CHECK(route("d", "k1").size() == 2);
    CHECK(route("d", "k2") == std::vector<caf::actor>{b});
    CHECK(route("d", "k3").empty());
    auto fan = add_exchange("f", exchange_kind::fanout);
    bind(fan, "", a, "a");
    bind(fan, "ignored", b, "b");
    CHECK(route("f", "anything").size() == 2);
    auto topic = add_exchange("t", exchange_kind::topic);
    bind(topic, "stock.*.nyse", a, "a");
    bind(topic, "stock.#", b, "b");
    CHECK(route("t", "stock.ibm.nyse").size() == 2);
    CHECK(route("t", "stock.ibm.lse") == std::vector<caf::actor>{b});
    CHECK(route("t", "bond.x").empty());
  }

  TEST_CASE_FIXTURE(routing_fixture, "a queue bound twice gets one copy") {
    auto a = add_queue("a");
    auto topic = add_exchange("t", exchange_kind::topic);
    bind(topic, "a.*", a, "a");
    bind(topic, "#", a, "a");
    CHECK(route("t", "a.b").size() == 1);
  }

  TEST_CASE_FIXTURE(routing_fixture, "bindings are unique and removable") {
    auto a = add_queue("a");
    auto x = add_exchange("d", exchange_kind::direct);
    CHECK(x->add_binding(binding{"k", {}, binding_dest{false, "a", a}}));
    CHECK(!x->add_binding(binding{"k", {}, binding_dest{false, "a", a}}));
    CHECK(x->binding_count() == 1);
    CHECK(x->remove_binding("k", {}, binding_dest{false, "a", a}));
    CHECK(!x->remove_binding("k", {}, binding_dest{false, "a", a}));
    CHECK(route("d", "k").empty());
    bind(x, "k1", a, "a");
    bind(x, "k2", a, "a");
    CHECK(x->remove_bindings_to(false, "a") == 2);
    CHECK(x->binding_count() == 0);
  }

  TEST_CASE_FIXTURE(routing_fixture, "headers exchange x-match all and any") {
    auto a = add_queue("a");
    auto b = add_queue("b");
    auto h = add_exchange("h", exchange_kind::headers);
    pr::field_table all;
    all.set("x-match", pr::field_value{std::string{"all"}});
    all.set("format", pr::field_value{std::string{"pdf"}});
    all.set("type", pr::field_value{std::string{"report"}});
    bind(h, "", a, "a", all);
    pr::field_table any = all;
    any.set("x-match", pr::field_value{std::string{"any"}});
    bind(h, "", b, "b", any);
    pr::field_table msg;
    msg.set("format", pr::field_value{std::string{"pdf"}});
    CHECK(route("h", "", &msg) == std::vector<caf::actor>{b});
    msg.set("type", pr::field_value{std::string{"report"}});
    CHECK(route("h", "", &msg).size() == 2);
    CHECK(route("h", "", nullptr).empty());
  }

  TEST_CASE_FIXTURE(routing_fixture,
                    "exchange-to-exchange bindings, cycles and alternates") {
    auto a = add_queue("a");
    auto b = add_queue("b");
    auto up = add_exchange("up", exchange_kind::fanout);
    auto down = add_exchange("down", exchange_kind::direct);
    up->add_binding(binding{"", {}, binding_dest{true, "down", {}}});
    down->add_binding(binding{"", {}, binding_dest{true, "up", {}}}); // cycle
    bind(down, "k", a, "a");
    CHECK(route("up", "k") == std::vector<caf::actor>{a});
    CHECK(route("up", "other").empty());
    pr::field_table args;
    args.set("alternate-exchange", pr::field_value{std::string{"ae"}});
    auto main_x = add_exchange("main", exchange_kind::direct, args);
    auto ae = add_exchange("ae", exchange_kind::fanout);
    bind(ae, "", b, "b");
    bind(main_x, "k", a, "a");
    CHECK(main_x->alternate_exchange == "ae");
    CHECK(route("main", "k") == std::vector<caf::actor>{a});
    CHECK(route("main", "unroutable") == std::vector<caf::actor>{b});
  }

} // TEST_SUITE
