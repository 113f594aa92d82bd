// The bridge actor: the destination end of one route. It subscribes through
// its link's session on the source broker, republishes what arrives into the
// local exchange of the same name, and answers each batch only once every
// queue it reached has enqueued it (after the fsync, for persistent messages
// on durable queues): the source acks its queue on that answer.
//
//   waiting --link up--> subscribing --subscribed--> active
//      ^                      |                        |
//      +---- link down -------+--- refused: failed ----+-- source gone:
//                                  (retried after the     failed, retried
//                                   maintenance interval)

#include <chrono>
#include <set>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "actors/store_codec.hpp"
#include "federation/actors.hpp"

namespace flotilla::federation {

namespace {

constexpr auto subscribe_timeout = std::chrono::seconds(10);

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

struct bridge_actor_state {
  static inline const char* name = "fedbridge";
  bridge_config cfg;
  std::shared_ptr<bridge_status> status;
  caf::actor hub;
  context_ptr ctx;
  const vhost_ref* vh = nullptr;
  caf::actor session;
  caf::actor source;
  interest current;
  bool have_interest = false;
  /// Push routes (--src-local): the importer on the destination; stopped
  /// when the bridge pushes again or quits (shared with the exit functor).
  std::shared_ptr<caf::actor> importer = std::make_shared<caf::actor>();
  /// Push routes: the local exports this bridge spawned and linked to.
  std::set<caf::actor_addr> exports;
  uint64_t epoch = 0; ///< Ignores answers and timers of older subscriptions.
};

using bridge_self = caf::stateful_actor<bridge_actor_state>*;

void set_status(bridge_self self, const char* state, const std::string& error) {
  auto& s = *self->state.status;
  std::lock_guard<std::mutex> guard{s.mtx};
  s.state = state;
  if (!error.empty() || std::string{state} == "active")
    s.last_error = error;
}

void subscribe(bridge_self self);

/// Forgets what the last export reported (the route is not running).
void clear_source_stats(bridge_self self) {
  auto& c = self->state.status->counters;
  c.backlog = 0;
  c.lag_ms = 0;
}

void retry_later(bridge_self self, const std::string& error) {
  auto& st = self->state;
  set_status(self, "failed", error);
  FLOTILLA_LOG(warning, "federation: bridge " << st.cfg.name << ": " << error);
  self->delayed_send(self, st.ctx->maintenance_interval, retry_atom::value,
                     st.epoch);
}

subscription make_subscription(bridge_self self) {
  auto& st = self->state;
  subscription s;
  s.vhost = st.cfg.vhost;
  s.exchange = st.cfg.exchange;
  s.key = st.cfg.key;
  s.dynamic = st.cfg.dynamic;
  s.queue = st.cfg.queue;
  s.credit = st.cfg.credit;
  s.max_hops = st.cfg.max_hops;
  s.bridge_name = st.cfg.name;
  s.bridge = caf::actor_cast<caf::actor>(self);
  s.durable = st.cfg.durable;
  return s;
}

void on_subscribed(bridge_self self, uint64_t epoch, subscribed& r) {
  auto& st = self->state;
  if (epoch != st.epoch)
    return;
  if (!r.ok || !r.source)
    return retry_later(self, "source refused: " + r.error);
  st.source = r.source;
  self->monitor(st.source);
  set_status(self, "active", {});
  FLOTILLA_LOG(info, "federation: bridge " << st.cfg.name << " active");
  if (st.cfg.dynamic && st.have_interest)
    self->send(st.source, interest_atom::value, st.current);
}

void stop_importer(bridge_self self) {
  auto& imp = *self->state.importer;
  if (imp)
    self->send_exit(imp, caf::exit_reason::user_shutdown);
  imp = nullptr;
}

/// Push routes (--src-local): asks the destination's session for an
/// importer, then subscribes a local export that forwards to it.
void push(bridge_self self) {
  auto& st = self->state;
  auto epoch = ++st.epoch;
  set_status(self, "subscribing", {});
  stop_importer(self);
  self
    ->request(st.session, subscribe_timeout, push_atom::value,
              make_subscription(self))
    .then(
      [=](pushed& p) {
        auto& st = self->state;
        if (epoch != st.epoch) {
          if (p.importer)
            self->send_exit(p.importer, caf::exit_reason::user_shutdown);
          return;
        }
        if (!p.ok || !p.importer)
          return retry_later(self, "destination refused: " + p.error);
        *st.importer = p.importer;
        auto e = spawn_export(self->system(), st.hub, st.ctx);
        self->link_to(e);
        st.exports.insert(e.address());
        auto s = make_subscription(self);
        s.bridge = p.importer;
        s.dest_broker_id = p.broker_id;
        s.dest_node_name = p.node_name;
        self->request(e, subscribe_timeout, subscribe_atom::value, std::move(s))
          .then(
            [=](subscribed& r) {
              on_subscribed(self, epoch, r);
            },
            [=](caf::error& err) {
              if (epoch != self->state.epoch)
                return;
              retry_later(self, "export: " + self->system().render(err));
            });
      },
      [=](caf::error& e) {
        if (epoch != self->state.epoch)
          return;
        retry_later(self, "push: " + self->system().render(e));
      });
}

void subscribe(bridge_self self) {
  auto& st = self->state;
  if (!st.session)
    return;
  if (st.cfg.src_local)
    return push(self);
  auto epoch = ++st.epoch;
  set_status(self, "subscribing", {});
  self
    ->request(st.session, subscribe_timeout, subscribe_atom::value,
              make_subscription(self))
    .then(
      [=](subscribed& r) {
        on_subscribed(self, epoch, r);
      },
      [=](caf::error& e) {
        if (epoch != self->state.epoch)
          return;
        retry_later(self, "subscribe: " + self->system().render(e));
      });
}

/// Republishes a batch into the local exchange; answers after the enqueues.
caf::result<forward_ack> import(bridge_self self, forward_batch& b) {
  auto& st = self->state;
  auto& counters = st.status->counters;
  forward_ack ack;
  // Per target queue: its batch and the positions of its messages in b.
  struct for_queue {
    caf::actor queue;
    enqueue_batch batch;
    std::vector<uint32_t> positions;
  };
  std::vector<for_queue> per_queue;
  std::vector<caf::actor> targets;
  // Each message by position: to forget it and uncount it if refused. A
  // batch has few origins: each is kept once, messages index it (no string
  // copy per message).
  struct arrived {
    uint32_t origin = 0; ///< Index into origin_ids.
    uint64_t seq = 0;
    uint64_t bytes = 0;
  };
  auto origins = std::make_shared<std::vector<arrived>>(b.messages.size());
  auto origin_ids = std::make_shared<std::vector<std::string>>();
  auto origin_index = [&](const std::string& id) {
    auto i = std::find(origin_ids->begin(), origin_ids->end(), id);
    if (i == origin_ids->end())
      i = origin_ids->insert(i, id);
    return static_cast<uint32_t>(i - origin_ids->begin());
  };
  auto now = now_ms();
  for (uint32_t pos = 0; pos < b.messages.size(); ++pos) {
    auto& m = b.messages[pos];
    bool again = m.redelivered;
    trace_info t{m.origin, m.origin_seq, std::move(m.trace)};
    auto verdict
      = check_arrival(t, st.ctx->broker_id, st.cfg.max_hops, *st.ctx->seen);
    if (verdict != arrival::accept) {
      ++ack.dropped;
      if (verdict == arrival::loop)
        ++counters.dropped_loop;
      else if (verdict == arrival::duplicate)
        ++counters.dropped_duplicate;
      else
        ++counters.dropped_hops;
      continue;
    }
    auto decoded = decode_message(m.payload);
    if (!decoded) {
      FLOTILLA_LOG(error, "federation: bridge " << st.cfg.name
                                                << ": undecodable message "
                                                   "dropped");
      ++ack.dropped;
      continue;
    }
    auto msg = std::const_pointer_cast<message>(decoded);
    msg->exchange = st.cfg.exchange;
    msg->published_at = now;
    write_trace(*msg, t);
    message_ptr shared = std::move(msg);
    targets.clear();
    (*origins)[pos]
      = arrived{origin_index(t.origin), t.origin_seq, shared->body.size()};
    auto* headers
      = shared->properties.headers ? &*shared->properties.headers : nullptr;
    st.vh->table->route(shared->exchange, shared->routing_key, headers,
                        targets);
    ++ack.accepted;
    ++counters.messages_in;
    counters.bytes_in += shared->body.size();
    if (targets.empty())
      ++counters.unroutable;
    for (auto& q : targets) {
      auto i = std::find_if(per_queue.begin(), per_queue.end(), [&](auto& x) {
        return x.queue == q;
      });
      if (i == per_queue.end()) {
        per_queue.push_back(for_queue{q, {}, {}});
        i = per_queue.end() - 1;
      }
      i->batch.messages.push_back(shared);
      i->batch.redelivered.push_back(again ? 1 : 0);
      i->positions.push_back(pos);
    }
  }
  if (per_queue.empty())
    return ack;
  auto rp = self->make_response_promise<forward_ack>();
  auto left = std::make_shared<size_t>(per_queue.size());
  auto refused = std::make_shared<std::vector<uint8_t>>(b.messages.size(), 0);
  for (auto& x : per_queue) {
    auto done = [self, rp, left, ack, refused, origins, origin_ids]() mutable {
      if (--*left != 0)
        return;
      // A message refused by any of its queues goes back to the source
      // (the queues that took it may see it again, flagged redelivered),
      // and the duplicate window lets it in next time.
      auto& st = self->state;
      auto& counters = st.status->counters;
      for (uint32_t pos = 0; pos < refused->size(); ++pos) {
        if (!(*refused)[pos])
          continue;
        auto& a = (*origins)[pos];
        ack.refused.push_back(pos);
        st.ctx->seen->forget((*origin_ids)[a.origin], a.seq);
        ++counters.refused;
        --counters.messages_in;
        counters.bytes_in -= a.bytes;
        --ack.accepted;
      }
      rp.deliver(std::move(ack));
    };
    self
      ->request(x.queue, caf::infinite, enqueue_atom::value, std::move(x.batch),
                true)
      .then(
        [done, refused,
         positions = std::move(x.positions)](enqueue_reply& r) mutable {
          for (size_t i = 0; i < r.rejected.size() && i < positions.size(); ++i)
            if (r.rejected[i])
              (*refused)[positions[i]] = 1;
          done();
        },
        [done](caf::error&) mutable {
          // The queue is gone (deleted meanwhile): as if unroutable.
          done();
        });
  }
  return rp;
}

caf::behavior bridge_impl(bridge_self self, bridge_config cfg,
                          std::shared_ptr<bridge_status> status, caf::actor hub,
                          context_ptr ctx) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.hub = std::move(hub);
  st.ctx = std::move(ctx);
  st.vh = st.ctx->node->find_vhost(st.cfg.vhost);
  // Linked to the hub or the session that spawned it (stops with them) and,
  // for push routes, to its local exports: an export that ends is a
  // "source ended", not a reason to stop.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (self->state.exports.erase(msg.source) == 0)
      self->quit(msg.reason);
  });
  self->attach_functor([importer = st.importer] {
    if (*importer)
      caf::anon_send_exit(*importer, caf::exit_reason::user_shutdown);
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source != st.source.address())
      return;
    st.source = nullptr;
    ++st.epoch;
    clear_source_stats(self);
    if (st.session)
      retry_later(self, "source ended: " + self->system().render(msg.reason));
  });
  return {
    [=](link_up_atom, caf::actor& session) {
      auto& st = self->state;
      st.session = std::move(session);
      if (st.cfg.src_local && st.source)
        self->send_exit(st.source, caf::exit_reason::user_shutdown);
      st.source = nullptr;
      subscribe(self);
    },
    [=](link_down_atom) {
      auto& st = self->state;
      st.session = nullptr;
      if (st.cfg.src_local && st.source) {
        // The local export of a push route: its unacked messages go back.
        self->send_exit(st.source, caf::exit_reason::user_shutdown);
        stop_importer(self);
      }
      st.source = nullptr;
      ++st.epoch;
      clear_source_stats(self);
      set_status(self, "waiting", "link down");
    },
    [=](retry_atom, uint64_t epoch) {
      auto& st = self->state;
      if (epoch == st.epoch && st.session && !st.source)
        subscribe(self);
    },
    [=](interest_atom, interest& in) {
      auto& st = self->state;
      st.current = std::move(in);
      st.have_interest = true;
      {
        std::lock_guard<std::mutex> guard{st.status->mtx};
        st.status->keys = keys_of(st.current.items);
      }
      if (st.source)
        self->send(st.source, interest_atom::value, st.current);
    },
    [=](caf::delete_atom) -> caf::result<bool> {
      // A durable route was deleted: its source deletes the durable queue
      // (when the link is up), then the bridge quits. The hub keeps the
      // link until the answer.
      auto& st = self->state;
      if (!st.source) {
        self->quit();
        return true;
      }
      auto rp = self->make_response_promise<bool>();
      self->request(st.source, subscribe_timeout, caf::delete_atom::value)
        .then(
          [=](bool ok) mutable {
            rp.deliver(ok);
            self->quit();
          },
          [=](caf::error& e) mutable {
            FLOTILLA_LOG(warning, "federation: bridge "
                                    << self->state.cfg.name
                                    << ": the source did not delete its "
                                       "queue: "
                                    << self->system().render(e));
            rp.deliver(false);
            self->quit();
          });
      return rp;
    },
    [=](fed_stats_atom, uint64_t backlog, int64_t lag_ms) {
      // What the source's export measured (it cannot be seen from here).
      auto& c = self->state.status->counters;
      c.backlog = backlog;
      c.lag_ms = lag_ms;
    },
    [=](forward_atom, forward_batch& b) -> caf::result<forward_ack> {
      if (self->state.vh == nullptr)
        return forward_ack{0, static_cast<uint32_t>(b.messages.size()), {}};
      return import(self, b);
    },
  };
}

} // namespace

caf::actor spawn_bridge(caf::actor_system& sys, bridge_config cfg,
                        std::shared_ptr<bridge_status> status, caf::actor hub,
                        context_ptr ctx) {
  return sys.spawn(bridge_impl, std::move(cfg), std::move(status),
                   std::move(hub), std::move(ctx));
}

} // namespace flotilla::federation
