// The source side of federation: the gatekeeper (published on the fabric
// port), one session per authenticated peer link, and one export per remote
// bridge. An export behaves like an AMQP consumer of this broker: it owns an
// exclusive queue bound to the source exchange (or consumes an existing
// queue for queue routes), takes at most `credit` unacked messages, forwards
// them to the bridge and acks each batch only when the bridge answered that
// the destination enqueued it.

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <set>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "actors/stats.hpp"
#include "actors/store_codec.hpp"
#include "config/users.hpp"
#include "federation/actors.hpp"

namespace flotilla::federation {

namespace {

constexpr auto forward_timeout = std::chrono::seconds(60);
/// Messages a destination queue refused wait this long (still in flight,
/// holding the route's credit) before they go back to the queue to be
/// forwarded again.
constexpr auto refused_retry_delay = std::chrono::seconds(1);

int64_t now_ms() {
  using namespace std::chrono;
  // The clock of message::published_at.
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

// -- gatekeeper ---------------------------------------------------------------

struct gatekeeper_state {
  static inline const char* name = "fedgate";
  std::shared_ptr<const config::user_db> users;
  caf::actor hub;
};

caf::behavior gatekeeper_impl(caf::stateful_actor<gatekeeper_state>* self,
                              std::shared_ptr<const config::user_db> users) {
  self->state.users = std::move(users);
  return {
    [=](hub_atom, caf::actor& hub) {
      self->state.hub = std::move(hub);
    },
    [=](hello_atom, hello& h) {
      auto rp = self->make_response_promise();
      auto& st = self->state;
      auto refuse = [&](std::string why) {
        FLOTILLA_LOG(warning, "federation: refused link from " << h.node_name
                                                               << ": " << why);
        welcome w;
        w.error = std::move(why);
        rp.deliver(std::move(w));
      };
      if (!st.hub)
        return refuse("the broker is starting");
      auto* u = st.users->find(h.user);
      if (u == nullptr || !st.users->check_password(*u, h.password))
        return refuse("authentication failed for user '" + h.user + "'");
      rp.delegate(st.hub, hello_atom::value, std::move(h));
    },
  };
}

// -- export -------------------------------------------------------------------

struct export_state {
  static inline const char* name = "fedexport";
  subscription sub;
  context_ptr ctx;
  caf::actor hub;
  std::string peer_id;
  const vhost_ref* vh = nullptr;
  uint64_t conn_id = 0;
  uint64_t owner = 0;
  std::string queue;
  caf::actor queue_actor;
  bool own_queue = false;
  std::set<std::string> bound;
  bool deleting = false; ///< A durable route's queue is being deleted.
  bool local = false;    ///< Spawned by a push bridge here (export_info).
  std::shared_ptr<route_counters> counters = std::make_shared<route_counters>();
  /// The oldest published_at of each batch in flight (for the lag).
  std::multiset<int64_t> in_flight_oldest;
  /// The destination refuses messages (a queue full with reject-publish, a
  /// failed journal write): logged when it starts and when it ends.
  bool refusing = false;
  size_t held = 0; ///< Refused messages waiting for refused_retry_delay.
  /// What the exit functor needs (the state may be gone when it runs).
  struct cleanup_info {
    caf::actor hub;
    caf::actor vhost;
    caf::actor queue;
    uint64_t conn_id = 0;
    uint64_t owner = 0;
    bool own_queue = false;
  };
  std::shared_ptr<cleanup_info> cleanup = std::make_shared<cleanup_info>();
};

using export_self = caf::stateful_actor<export_state>*;

/// Binds (or unbinds) the export queue; `then` runs once the vhost has
/// answered, so a route reported active already has its binding.
void bind_key(export_self self, const std::string& key, bool unbind,
              std::function<void()> then = {}) {
  auto& st = self->state;
  bind_req req;
  req.unbind = unbind;
  req.source = st.sub.exchange;
  req.destination = st.queue;
  req.key = key;
  req.connection_id = st.conn_id;
  self->request(st.vh->actor, caf::infinite, std::move(req))
    .then(
      [=](op_result& r) {
        if (!r.ok())
          FLOTILLA_LOG(warning, "federation: export " << self->state.queue
                                                      << ": " << r.text);
        if (then)
          then();
      },
      [=](caf::error&) {
        if (then)
          then();
      });
}

/// A batch in flight was answered: its oldest message no longer counts for
/// the lag.
void answered(export_self self, int64_t oldest) {
  auto& set = self->state.in_flight_oldest;
  if (auto i = set.find(oldest); i != set.end())
    set.erase(i);
}

void forward(export_self self, delivery_batch& b) {
  auto& st = self->state;
  forward_batch out;
  std::vector<uint64_t> ids;
  std::vector<uint64_t> sizes; // Body bytes, by position.
  std::vector<uint64_t> drop;
  uint64_t bytes = 0;
  int64_t oldest = std::numeric_limits<int64_t>::max();
  for (auto& item : b.items) {
    trace_info t;
    if (auto known = read_trace(*item.msg)) {
      t = std::move(*known);
    } else {
      t.origin = st.ctx->broker_id;
      t.origin_seq = st.ctx->numbers->number_of(item.msg);
    }
    if (contains(t.trace, st.sub.dest_broker_id)) {
      ++st.counters->dropped_loop;
      drop.push_back(item.id);
      continue;
    }
    // (A message numbered here when it was paged out already names us.)
    if (t.trace.empty() || t.trace.back() != st.ctx->broker_id)
      t.trace.push_back(st.ctx->broker_id);
    if (st.sub.max_hops != 0 && t.trace.size() > st.sub.max_hops) {
      ++st.counters->dropped_hops;
      drop.push_back(item.id);
      continue;
    }
    fed_message m;
    m.redelivered = item.redelivered;
    m.origin = t.trace.front();
    m.origin_seq = t.origin_seq;
    m.trace = std::move(t.trace);
    m.payload = encode_message(*item.msg);
    bytes += item.msg->body.size();
    if (item.msg->published_at > 0) // 0: unknown (an old journal).
      oldest = std::min<int64_t>(oldest, item.msg->published_at);
    out.messages.push_back(std::move(m));
    ids.push_back(item.id);
    sizes.push_back(item.msg->body.size());
  }
  if (!drop.empty())
    self->send(st.queue_actor, ack_atom::value, st.owner, std::move(drop));
  if (ids.empty())
    return;
  auto n = ids.size();
  st.counters->in_flight += n;
  st.in_flight_oldest.insert(oldest);
  self
    ->request(st.sub.bridge, forward_timeout, forward_atom::value,
              std::move(out))
    .then(
      [=](forward_ack& a) mutable {
        auto& st = self->state;
        std::vector<uint64_t> again; // Refused: forwarded again later.
        if (!a.refused.empty()) {
          std::vector<uint8_t> refused(ids.size(), 0);
          for (auto pos : a.refused)
            if (pos < refused.size())
              refused[pos] = 1;
          std::vector<uint64_t> acked;
          for (size_t i = 0; i < ids.size(); ++i) {
            if (refused[i]) {
              again.push_back(ids[i]);
              bytes -= sizes[i];
            } else {
              acked.push_back(ids[i]);
            }
          }
          ids = std::move(acked);
        }
        st.counters->in_flight -= ids.size();
        st.counters->messages_out += ids.size();
        st.counters->bytes_out += bytes;
        if (!ids.empty())
          self->send(st.queue_actor, ack_atom::value, st.owner, std::move(ids));
        if (again.empty()) {
          answered(self, oldest);
          if (st.refusing && st.held == 0) {
            st.refusing = false;
            FLOTILLA_LOG(notice, "federation: export "
                                   << st.queue << ": " << st.sub.dest_node_name
                                   << " accepts messages again");
          }
          return;
        }
        st.counters->refused += again.size();
        st.held += again.size();
        if (!st.refusing) {
          st.refusing = true;
          FLOTILLA_LOG(warning, "federation: export "
                                  << st.queue << ": " << again.size()
                                  << " message(s) refused by a queue on "
                                  << st.sub.dest_node_name
                                  << "; kept here and forwarded again");
        }
        self->delayed_send(self, refused_retry_delay, reject_atom::value,
                           std::move(again), oldest);
      },
      [=](caf::error& e) mutable {
        auto& st = self->state;
        answered(self, oldest);
        st.counters->in_flight -= n;
        FLOTILLA_LOG(info, "federation: export " << st.queue
                                                 << ": bridge did not answer ("
                                                 << self->system().render(e)
                                                 << "); messages requeued");
        self->send(st.queue_actor, reject_atom::value, st.owner, std::move(ids),
                   true);
      });
}

/// Samples the backlog (ready in the queue plus in flight) and the lag (age
/// of the oldest waiting message: the head of the queue or the oldest batch
/// in flight), keeps them for management and tells the bridge. Runs every
/// stats_interval while the export consumes.
void sample(export_self self) {
  auto& st = self->state;
  self->request(st.queue_actor, stats_interval, peek_atom::value, uint32_t{1})
    .then(
      [=](queue_peek& p) {
        auto& st = self->state;
        auto oldest = std::numeric_limits<int64_t>::max();
        if (!p.messages.empty() && p.messages.front()
            && p.messages.front()->published_at > 0)
          oldest = p.messages.front()->published_at;
        if (!st.in_flight_oldest.empty())
          oldest = std::min(oldest, *st.in_flight_oldest.begin());
        auto backlog = p.ready + st.counters->in_flight.load();
        int64_t lag = 0;
        if (backlog > 0 && oldest != std::numeric_limits<int64_t>::max())
          lag = std::max<int64_t>(0, now_ms() - oldest);
        st.counters->backlog = backlog;
        st.counters->lag_ms = lag;
        if (st.sub.bridge)
          self->send(st.sub.bridge, fed_stats_atom::value, backlog, lag);
      },
      [](caf::error&) {
        // A busy queue answers next time.
      });
  self->delayed_send(self, stats_interval, tick_atom::value);
}

void report_up(export_self self) {
  auto& st = self->state;
  export_info info;
  info.id = self->id();
  info.peer_id = st.sub.dest_broker_id;
  info.peer_node = st.sub.dest_node_name;
  info.bridge_name = st.sub.bridge_name;
  info.vhost = st.sub.vhost;
  info.exchange = st.sub.exchange;
  info.queue = st.queue;
  info.dynamic = st.sub.dynamic;
  info.local = st.local;
  info.counters = st.counters;
  self->send(st.hub, export_atom::value, std::move(info));
}

void start_consuming(export_self self,
                     caf::typed_response_promise<subscribed> rp) {
  auto& st = self->state;
  consumer_spec spec;
  spec.key = 1;
  spec.owner = st.owner;
  spec.connection = caf::actor_cast<caf::actor>(self);
  spec.prefetch = st.sub.credit == 0 ? 100 : st.sub.credit;
  spec.no_ack = false;
  self->request(st.queue_actor, caf::infinite, consume_atom::value, spec)
    .then(
      [=](op_result& r) mutable {
        if (!r.ok()) {
          rp.deliver(subscribed{false, r.text, {}});
          self->quit();
          return;
        }
        report_up(self);
        sample(self);
        FLOTILLA_LOG(info, "federation: exporting "
                             << self->state.queue << " to "
                             << self->state.sub.dest_node_name);
        rp.deliver(subscribed{true, {}, caf::actor_cast<caf::actor>(self)});
      },
      [=](caf::error& e) mutable {
        rp.deliver(subscribed{false, self->system().render(e), {}});
        self->quit();
      });
}

caf::result<subscribed> setup(export_self self, subscription& s) {
  auto& st = self->state;
  st.sub = std::move(s);
  st.vh = st.ctx->node->find_vhost(st.sub.vhost);
  auto fail = [&](std::string why) {
    self->quit();
    return subscribed{false, std::move(why), {}};
  };
  if (st.vh == nullptr)
    return fail("no vhost '" + st.sub.vhost + "'");
  if (!st.sub.bridge)
    return fail("no bridge");
  self->monitor(st.sub.bridge);
  st.conn_id = st.ctx->node->next_connection_id();
  st.owner = (st.conn_id << 16) | 1;
  st.cleanup->vhost = st.vh->actor;
  st.cleanup->conn_id = st.conn_id;
  st.cleanup->owner = st.owner;
  auto rp = self->make_response_promise<subscribed>();
  if (!st.sub.queue.empty()) {
    auto q = st.vh->table->find_queue(st.sub.queue);
    if (!q)
      return fail("no queue '" + st.sub.queue + "' in vhost '" + st.sub.vhost
                  + "'");
    st.queue = q->name;
    st.queue_actor = q->actor;
    st.cleanup->queue = q->actor;
    start_consuming(self, rp);
    return rp;
  }
  if (!st.vh->table->find_exchange(st.sub.exchange))
    return fail("no exchange '" + st.sub.exchange + "' in vhost '"
                + st.sub.vhost + "'");
  queue_declare_req req;
  if (st.sub.durable) {
    // Found again after either broker restarts (the federation id is new
    // in every process, the node name and the bridge name are not); it
    // outlives the link, so messages wait in it while the link is down.
    req.name = durable_export_queue(st.sub.dest_node_name, st.sub.bridge_name);
    req.durable = true;
  } else {
    req.name = std::string{export_queue_prefix} + st.sub.dest_node_name + "."
               + st.sub.bridge_name + "." + st.sub.dest_broker_id;
    req.exclusive = true;
    req.auto_delete = true;
  }
  req.connection_id = st.conn_id;
  self->request(st.vh->actor, caf::infinite, std::move(req))
    .then(
      [=](op_result& r) mutable {
        auto& st = self->state;
        if (!r.ok()) {
          rp.deliver(subscribed{false, r.text, {}});
          self->quit();
          return;
        }
        st.queue = r.name;
        st.queue_actor = r.actor;
        st.own_queue = true;
        if (st.sub.durable) {
          // Only the consumer goes on exit (its unacked messages are
          // requeued); the bindings of the last incarnation are known.
          st.cleanup->queue = r.actor;
          if (auto x = st.vh->table->find_exchange(st.sub.exchange))
            for (auto& b : x->bindings())
              if (!b.dest.to_exchange && b.dest.name == st.queue)
                st.bound.insert(b.key);
        } else {
          st.cleanup->own_queue = true;
        }
        if (!st.sub.dynamic && st.bound.count(st.sub.key) == 0) {
          st.bound.insert(st.sub.key);
          bind_key(self, st.sub.key, false, [=]() mutable {
            start_consuming(self, rp);
          });
          return;
        }
        start_consuming(self, rp);
      },
      [=](caf::error& e) mutable {
        rp.deliver(subscribed{false, self->system().render(e), {}});
        self->quit();
      });
  return rp;
}

caf::behavior export_impl(export_self self, caf::actor hub, context_ptr ctx,
                          bool local) {
  self->state.local = local;
  self->state.hub = std::move(hub);
  self->state.ctx = std::move(ctx);
  self->state.cleanup->hub = self->state.hub;
  self->attach_functor([c = self->state.cleanup, id = self->id()] {
    // Runs on exit: give the queue back (an own queue is exclusive to this
    // export's connection id, so the vhost deletes it).
    caf::anon_send(c->hub, export_atom::value, id);
    if (c->own_queue && c->vhost)
      caf::anon_send(c->vhost, closed_atom::value, c->conn_id);
    else if (c->queue)
      caf::anon_send(c->queue, closed_atom::value, c->owner);
  });
  self->set_down_handler([=](caf::down_msg&) {
    // The bridge is gone (deleted, or its broker unreachable).
    self->quit();
  });
  return {
    [=](subscribe_atom, subscription& s) {
      return setup(self, s);
    },
    [=](deliver_atom, delivery_batch& b) {
      forward(self, b);
    },
    [=](tick_atom) {
      sample(self);
    },
    [=](reject_atom, std::vector<uint64_t>& ids, int64_t oldest) {
      // Refused messages, held for refused_retry_delay: back to the queue.
      auto& st = self->state;
      answered(self, oldest);
      st.counters->in_flight -= ids.size();
      st.held -= ids.size();
      self->send(st.queue_actor, reject_atom::value, st.owner, std::move(ids),
                 true);
    },
    [=](caf::delete_atom) -> caf::result<bool> {
      // The durable route was deleted on the destination: delete its queue.
      auto& st = self->state;
      if (!st.own_queue || !st.sub.durable) {
        self->quit();
        return true;
      }
      delete_req req;
      req.name = st.queue;
      req.connection_id = st.conn_id;
      st.deleting = true; // The queue cancels us first: answer, then quit.
      auto rp = self->make_response_promise<bool>();
      self->request(st.vh->actor, caf::infinite, std::move(req))
        .then(
          [=](op_result& r) mutable {
            FLOTILLA_LOG(notice, "federation: durable route queue "
                                   << self->state.queue << " deleted");
            rp.deliver(r.ok());
            self->quit();
          },
          [=](caf::error& e) mutable {
            rp.deliver(e);
            self->quit();
          });
      return rp;
    },
    [=](cancelled_atom, uint64_t) {
      if (self->state.deleting)
        return;
      FLOTILLA_LOG(info, "federation: export queue " << self->state.queue
                                                     << " was deleted");
      self->quit();
    },
    [=](interest_atom, interest& in) {
      auto& st = self->state;
      if (!st.sub.dynamic || !st.own_queue)
        return;
      auto keys = keys_of(in.items);
      std::set<std::string> wanted(keys.begin(), keys.end());
      for (auto& k : wanted)
        if (st.bound.count(k) == 0)
          bind_key(self, k, false);
      for (auto& k : st.bound)
        if (wanted.count(k) == 0)
          bind_key(self, k, true);
      st.bound = std::move(wanted);
      self->send(st.hub, interest_atom::value, self->id(), std::move(in));
    },
  };
}

// -- session ------------------------------------------------------------------

struct session_state {
  static inline const char* name = "fedsession";
  caf::actor peer_link;
  std::string peer_id;
  std::string peer_node;
  caf::actor hub;
  context_ptr ctx;
};

caf::behavior session_impl(caf::stateful_actor<session_state>* self,
                           caf::actor peer_link, std::string peer_id,
                           std::string peer_node, caf::actor hub,
                           context_ptr ctx) {
  auto& st = self->state;
  st.peer_link = std::move(peer_link);
  st.peer_id = std::move(peer_id);
  st.peer_node = std::move(peer_node);
  st.hub = std::move(hub);
  st.ctx = std::move(ctx);
  self->monitor(st.peer_link);
  self->set_down_handler([=](caf::down_msg& msg) {
    FLOTILLA_LOG(info, "federation: session of "
                         << self->state.peer_node
                         << " ended: " << self->system().render(msg.reason));
    self->quit(caf::exit_reason::user_shutdown);
  });
  // Exports are linked to the session: they stop with it, but one export
  // stopping does not stop the session.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.source != self->state.hub.address())
      return;
    self->quit(msg.reason);
  });
  return {
    [=](link_down_atom) {
      // The peer's link was cut by fault injection: end like a lost link.
      FLOTILLA_LOG(info, "federation: session of " << self->state.peer_node
                                                   << " cut by its link");
      self->quit(caf::exit_reason::user_shutdown);
    },
    [=](push_atom, subscription& s) -> pushed {
      // A push route (--src-local) of the peer: an importer here, a bridge
      // that never subscribes and only republishes what the peer's export
      // forwards. It stops with this session, or when the peer's bridge
      // stops it.
      auto& st = self->state;
      pushed out;
      auto* vh = st.ctx->node->find_vhost(s.vhost);
      if (vh == nullptr) {
        out.error = "no vhost '" + s.vhost + "'";
        return out;
      }
      if (!vh->table->find_exchange(s.exchange)) {
        out.error = "no exchange '" + s.exchange + "' in vhost '" + s.vhost
                    + "' (the destination of the route)";
        return out;
      }
      bridge_config cfg;
      cfg.name = "push from " + st.peer_node + ": " + s.bridge_name;
      cfg.vhost = s.vhost;
      cfg.exchange = s.exchange;
      cfg.max_hops = s.max_hops;
      importer_info info{st.peer_node, s.bridge_name,
                         s.vhost,      s.exchange,
                         s.max_hops,   std::make_shared<bridge_status>()};
      info.status->state = "active";
      auto importer = spawn_bridge(self->system(), std::move(cfg), info.status,
                                   st.hub, st.ctx);
      self->link_to(importer);
      self->send(st.hub, importer_atom::value, std::move(info), importer);
      FLOTILLA_LOG(info, "federation: importing push route "
                           << s.bridge_name << " of " << st.peer_node);
      out.ok = true;
      out.importer = importer;
      out.broker_id = st.ctx->broker_id;
      out.node_name = st.ctx->node_name;
      return out;
    },
    [=](subscribe_atom, subscription& s) {
      auto& st = self->state;
      s.dest_broker_id = st.peer_id;
      s.dest_node_name = st.peer_node;
      auto e = self->spawn<caf::linked>(export_impl, st.hub, st.ctx, false);
      auto rp = self->make_response_promise();
      rp.delegate(e, subscribe_atom::value, std::move(s));
    },
    [=](duplex_atom, duplex_offer& offer) {
      // The peer's duplex connector: this broker pulls back through the
      // peer's session; the hub creates the link and its bridges.
      auto& st = self->state;
      self->send(st.hub, duplex_atom::value, st.peer_id, st.peer_node,
                 std::move(offer), caf::actor_cast<caf::actor>(self));
    },
  };
}

} // namespace

caf::actor spawn_gatekeeper(caf::actor_system& sys,
                            std::shared_ptr<const config::user_db> users) {
  return sys.spawn(gatekeeper_impl, std::move(users));
}

caf::actor spawn_export(caf::actor_system& sys, caf::actor hub,
                        context_ptr ctx) {
  return sys.spawn(export_impl, std::move(hub), std::move(ctx), true);
}

caf::actor spawn_session(caf::actor_system& sys, caf::actor peer_link,
                         std::string peer_id, std::string peer_node,
                         caf::actor hub, context_ptr ctx) {
  return sys.spawn(session_impl, std::move(peer_link), std::move(peer_id),
                   std::move(peer_node), std::move(hub), std::move(ctx));
}

} // namespace flotilla::federation
