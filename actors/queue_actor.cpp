#include "actors/queue_actor.hpp"

#include <chrono>
#include <map>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/dead_letter.hpp"
#include "actors/log.hpp"
#include "actors/message_pager.hpp"
#include "actors/messages.hpp"
#include "actors/queue_model.hpp"
#include "actors/rate_window.hpp"
#include "actors/stats.hpp"
#include "actors/store_actor.hpp"
#include "actors/store_codec.hpp"

namespace flotilla {

namespace {

millis now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

struct consumer_rec {
  caf::actor connection;
  uint64_t key = 0;
  uint64_t owner = 0;
};

struct queue_state {
  static inline const char* name = "queue";
  std::unique_ptr<queue_model> model;
  caf::actor vhost;
  vhost_table_ptr table;
  uint64_t next_consumer_id = 1;
  std::unordered_map<uint64_t, consumer_rec> consumers; // by consumer_id
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> by_owner_key;
  millis expiry_timer_at = 0; ///< When the pending expire timer fires.
  millis last_used = 0;       ///< For x-expires.
  bool had_consumers = false; ///< For auto-delete.
  bool deleting = false;
  bool paging_failure_logged = false;
  std::vector<delivery> out;
  std::vector<dead_letter> dead;
  // Durability (store is null for transient queues).
  caf::actor store;
  uint32_t queue_id = 0;
  uint64_t next_store_id = 1;
  std::unordered_map<uint64_t, uint64_t> persisted; ///< model id -> store id
  std::vector<uint64_t> removed;                    ///< Filled by the model.
  store_ops ops; ///< Not yet sent to the store.
  /// Management: publish, deliver and ack rates (fixed size).
  rate_window<3> rates;
};

using queue_self = caf::stateful_actor<queue_state>*;

/// Enqueues `m`, recording a publish for the store if it must be durable.
queue_model::enqueue_result enqueue(queue_self self, message_ptr m, millis now,
                                    bool redelivered = false) {
  auto& st = self->state;
  auto id = st.model->next_id();
  bool durable = st.store && m->persistent();
  std::string payload;
  if (durable)
    payload = encode_message(*m);
  auto res = st.model->enqueue(std::move(m), now, st.dead, redelivered);
  if (st.model->paging_failed() && !st.paging_failure_logged) {
    st.paging_failure_logged = true;
    FLOTILLA_LOG(error, "queue " << st.model->name()
                                 << ": cannot page messages out to disk; its "
                                    "backlog stays in memory from now on");
  }
  if (durable && res == queue_model::enqueue_result::accepted) {
    auto sid = st.next_store_id++;
    st.persisted.emplace(id, sid);
    store_op op;
    op.kind = store_op::publish;
    op.queue_id = st.queue_id;
    op.msg_id = sid;
    op.payload = std::move(payload);
    st.ops.ops.push_back(std::move(op));
  }
  return res;
}

/// Turns removals into store acks; returns the pending ops (maybe empty).
store_ops take_store_ops(queue_self self) {
  auto& st = self->state;
  if (!st.store) {
    st.removed.clear();
    return {};
  }
  for (auto id : st.removed) {
    auto i = st.persisted.find(id);
    if (i == st.persisted.end())
      continue;
    store_op op;
    op.kind = store_op::ack;
    op.queue_id = st.queue_id;
    op.msg_id = i->second;
    st.ops.ops.push_back(std::move(op));
    st.persisted.erase(i);
  }
  st.removed.clear();
  auto result = std::move(st.ops);
  st.ops.ops.clear();
  return result;
}

/// Sends pending store changes that nobody waits for.
void persist_changes(queue_self self) {
  auto ops = take_store_ops(self);
  if (!ops.ops.empty())
    self->send(self->state.store, persist_atom::value, std::move(ops));
}

void route_dead_letters(queue_self self) {
  auto& st = self->state;
  if (st.dead.empty())
    return;
  auto dead = std::move(st.dead);
  st.dead.clear();
  auto& cfg = st.model->config();
  if (!cfg.dead_letter_exchange) {
    return;
  }
  auto now = now_ms();
  std::vector<caf::actor> targets;
  std::vector<std::string> names;
  for (auto& d : dead) {
    auto copy = make_dead_lettered(*d.msg, st.model->name(), d.reason, now,
                                   cfg.dead_letter_routing_key,
                                   *cfg.dead_letter_exchange);
    auto* headers
      = copy->properties.headers ? &*copy->properties.headers : nullptr;
    targets.clear();
    names.clear();
    st.table->route(*cfg.dead_letter_exchange, copy->routing_key, headers,
                    targets, &names);
    for (size_t i = 0; i < targets.size(); ++i) {
      // A message that expired or overflowed around a cycle back into a
      // queue it already died in, with no rejection on the way, would
      // circulate forever: RabbitMQ drops it, and so do we.
      if (is_dead_letter_cycle(*copy, d.reason, names[i]))
        continue;
      self->send(targets[i], enqueue_atom::value, enqueue_batch{{copy}, {}});
    }
  }
}

void arm_expiry_timer(queue_self self) {
  auto& st = self->state;
  auto next = st.model->next_expiry();
  if (next <= 0)
    return;
  if (st.expiry_timer_at != 0 && st.expiry_timer_at <= next)
    return;
  st.expiry_timer_at = next;
  auto delay = std::max<millis>(0, next - now_ms());
  self->delayed_send(self, std::chrono::milliseconds(delay + 1),
                     expire_atom::value);
}

void arm_idle_timer(queue_self self) {
  auto& cfg = self->state.model->config();
  if (cfg.expires)
    self->delayed_send(self, std::chrono::milliseconds(*cfg.expires),
                       idle_atom::value);
}

rate_window<3>::values rate_counters(queue_self self) {
  auto& c = self->state.model->stats();
  return {c.enqueued, c.delivered, c.acked};
}

/// Records the counters for the management rates (one comparison unless a
/// second has passed since the last sample).
void sample_rates(queue_self self) {
  self->state.rates.sample(now_ms(), rate_counters(self));
}

/// Returns the management snapshot of this queue.
queue_stats management_stats(queue_self self) {
  auto& st = self->state;
  auto& m = *st.model;
  auto& c = m.stats();
  queue_stats r;
  r.messages_ready = m.ready_count();
  r.messages_unacked = m.unacked_count();
  r.consumers = st.consumers.size();
  r.bytes_ready = m.ready_bytes();
  r.published = c.enqueued;
  r.rejected = c.rejected_publishes;
  r.delivered = c.delivered;
  r.redelivered = c.redelivered;
  r.acked = c.acked;
  r.requeued = c.requeued;
  r.dead_lettered = c.dead_lettered;
  r.expired = c.expired;
  r.overflowed = c.overflowed;
  r.discarded = c.discarded;
  r.purged = c.purged;
  auto now = now_ms();
  auto current = rate_counters(self);
  st.rates.sample(now, current);
  auto rates = st.rates.rates(now, current, r.rate_window_seconds);
  r.publish_rate = rates[0];
  r.deliver_rate = rates[1];
  r.ack_rate = rates[2];
  return r;
}

/// Delivers what consumer credit allows, batched per connection.
void dispatch(queue_self self) {
  auto& st = self->state;
  if (st.deleting)
    return;
  st.out.clear();
  st.model->dispatch(now_ms(), st.out, st.dead);
  if (!st.out.empty()) {
    // Usually all deliveries go to one or two connections: batch per target.
    std::vector<std::pair<caf::actor, delivery_batch>> batches;
    for (auto& d : st.out) {
      auto i = st.consumers.find(d.consumer);
      if (i == st.consumers.end())
        continue; // Cannot happen: the model knows only live consumers.
      auto& rec = i->second;
      delivery_batch* b = nullptr;
      for (auto& kv : batches)
        if (kv.first == rec.connection)
          b = &kv.second;
      if (b == nullptr) {
        batches.emplace_back(rec.connection, delivery_batch{});
        b = &batches.back().second;
        b->queue = self;
        b->queue_name = st.model->name();
      }
      b->items.push_back(
        delivery_item{rec.key, d.owner, d.id, std::move(d.msg), d.redelivered});
    }
    for (auto& kv : batches)
      self->send(kv.first, deliver_atom::value, std::move(kv.second));
    st.out.clear();
  }
  route_dead_letters(self);
  arm_expiry_timer(self);
  persist_changes(self);
  sample_rates(self);
}

void remove_consumer(queue_self self, uint64_t id) {
  auto& st = self->state;
  auto i = st.consumers.find(id);
  if (i == st.consumers.end())
    return;
  st.by_owner_key.erase({i->second.owner, i->second.key});
  st.consumers.erase(i);
  st.model->remove_consumer(id);
}

/// Asks the vhost to delete this queue when auto-delete applies.
void check_auto_delete(queue_self self) {
  auto& st = self->state;
  if (st.deleting || !st.had_consumers || !st.consumers.empty())
    return;
  if (!st.table)
    return;
  auto entry = st.table->find_queue(st.model->name());
  if (entry && entry->auto_delete && entry->actor == self)
    self->send(st.vhost, autodel_atom::value, st.model->name());
}

op_result counts(queue_self self) {
  op_result r;
  r.name = self->state.model->name();
  r.message_count = static_cast<uint32_t>(self->state.model->ready_count());
  r.consumer_count = static_cast<uint32_t>(self->state.consumers.size());
  r.actor = caf::actor_cast<caf::actor>(self);
  return r;
}

caf::behavior queue_impl(queue_self self, std::string name, queue_config cfg,
                         caf::actor vhost, vhost_table_ptr table,
                         queue_durability durability) {
  auto& st = self->state;
  st.model = std::make_unique<queue_model>(std::move(name), std::move(cfg));
  st.vhost = std::move(vhost);
  st.table = std::move(table);
  st.last_used = now_ms();
  if (!durability.paging_dir.empty() && durability.page_limit != 0) {
    // One file prefix per queue actor; the directory is emptied at startup.
    auto prefix = durability.paging_dir + "/q" + std::to_string(self->id());
    st.model->set_pager(make_file_pager(std::move(prefix)),
                        durability.page_limit);
    if (auto hook = durability.page_hook)
      st.model->set_page_transform(
        [hook, name = st.model->name()](const message_ptr& m) {
          return hook->apply(name, m);
        });
  }
  if (durability.store) {
    st.store = std::move(durability.store);
    st.queue_id = durability.queue_id;
    st.model->set_removal_log(&st.removed);
    auto now = now_ms();
    for (auto& [sid, msg] : durability.recovered) {
      // Recovered messages may have been delivered before the restart.
      auto id = st.model->next_id();
      if (st.model->enqueue(std::move(msg), now, st.dead, true)
          == queue_model::enqueue_result::accepted)
        st.persisted.emplace(id, sid);
      st.next_store_id = std::max(st.next_store_id, sid + 1);
    }
    // What the queue's limits dropped at recovery is acked in the store.
    st.dead.clear();
    persist_changes(self);
  }
  arm_idle_timer(self);
  return {
    [=](enqueue_atom, enqueue_batch& batch) {
      auto now = now_ms();
      for (auto& m : batch.messages)
        enqueue(self, std::move(m), now);
      dispatch(self);
    },
    [=](enqueue_atom, enqueue_batch& batch,
        bool) -> caf::result<enqueue_reply> {
      auto& st = self->state;
      auto now = now_ms();
      enqueue_reply reply;
      reply.rejected.resize(batch.messages.size());
      std::vector<size_t> durable; // Indexes waiting for the fsync.
      for (size_t i = 0; i < batch.messages.size(); ++i) {
        bool persistent = st.store && batch.messages[i]->persistent();
        bool again = i < batch.redelivered.size() && batch.redelivered[i] != 0;
        auto res = enqueue(self, std::move(batch.messages[i]), now, again);
        reply.rejected[i] = res == queue_model::enqueue_result::rejected;
        if (persistent && !reply.rejected[i])
          durable.push_back(i);
      }
      // The publishes go to the store before dispatch() sends the acks of
      // deliveries it makes (the store must see a publish before its ack).
      // Deliveries may go out before the fsync (as in RabbitMQ); the
      // confirm waits for it.
      auto ops = take_store_ops(self);
      if (durable.empty()) {
        if (!ops.ops.empty())
          self->send(st.store, persist_atom::value, std::move(ops));
        dispatch(self);
        return reply;
      }
      auto rp = self->make_response_promise<enqueue_reply>();
      self
        ->request(st.store, caf::infinite, persist_atom::value, std::move(ops),
                  true)
        .then(
          [rp, reply, durable](bool ok) mutable {
            if (!ok)
              for (auto i : durable)
                reply.rejected[i] = 1; // Not durable: nack.
            rp.deliver(std::move(reply));
          },
          [rp, reply, durable](caf::error&) mutable {
            for (auto i : durable)
              reply.rejected[i] = 1;
            rp.deliver(std::move(reply));
          });
      dispatch(self);
      return rp;
    },
    [=](consume_atom, consumer_spec& spec) -> op_result {
      auto& st = self->state;
      if (st.deleting)
        return make_op_error(errc::not_found, "queue is being deleted");
      auto id = st.next_consumer_id++;
      auto err
        = st.model->add_consumer(id, spec.owner, spec.prefetch, spec.no_ack,
                                 spec.exclusive, spec.priority);
      if (err != errc::none) {
        return make_op_error(errc::access_refused,
                             "queue '" + st.model->name() + "' in vhost '"
                               + st.table->name() + "' in exclusive use");
      }
      st.consumers.emplace(id,
                           consumer_rec{spec.connection, spec.key, spec.owner});
      st.by_owner_key.emplace(std::make_pair(spec.owner, spec.key), id);
      st.had_consumers = true;
      st.last_used = now_ms();
      auto result = counts(self);
      // Deliveries follow the reply in this actor's send order.
      self->send(self, dispatch_atom::value);
      return result;
    },
    [=](dispatch_atom) {
      dispatch(self);
    },
    [=](cancel_atom, uint64_t owner, uint64_t key) -> op_result {
      auto& st = self->state;
      auto i = st.by_owner_key.find({owner, key});
      if (i != st.by_owner_key.end())
        remove_consumer(self, i->second);
      st.last_used = now_ms();
      arm_idle_timer(self);
      check_auto_delete(self);
      dispatch(self);
      return counts(self);
    },
    [=](fetch_atom, uint64_t owner, bool no_ack) -> get_reply {
      auto& st = self->state;
      get_reply reply;
      st.last_used = now_ms();
      if (!st.deleting) {
        if (auto d = st.model->get(owner, no_ack, now_ms(), st.dead)) {
          reply.found = true;
          reply.item = delivery_item{0, d->owner, d->id, std::move(d->msg),
                                     d->redelivered};
        }
      }
      reply.message_count = static_cast<uint32_t>(st.model->ready_count());
      route_dead_letters(self);
      arm_idle_timer(self);
      persist_changes(self);
      return reply;
    },
    [=](ack_atom, uint64_t owner, std::vector<uint64_t>& ids) {
      self->state.model->ack(owner, ids);
      dispatch(self);
    },
    [=](reject_atom, uint64_t owner, std::vector<uint64_t>& ids, bool requeue) {
      self->state.model->reject(owner, ids, requeue, self->state.dead);
      dispatch(self);
    },
    [=](release_atom, uint64_t owner, std::vector<uint64_t>& ids) {
      self->state.model->release(owner, ids);
      dispatch(self);
    },
    [=](closed_atom, uint64_t owner) {
      auto& st = self->state;
      std::vector<uint64_t> gone;
      for (auto& kv : st.consumers)
        if (kv.second.owner == owner)
          gone.push_back(kv.first);
      for (auto id : gone)
        remove_consumer(self, id);
      st.model->owner_closed(owner);
      if (!gone.empty()) {
        st.last_used = now_ms();
        arm_idle_timer(self);
      }
      check_auto_delete(self);
      dispatch(self);
    },
    [=](stats_atom) -> op_result {
      self->state.last_used = now_ms();
      arm_idle_timer(self);
      return counts(self);
    },
    [=](peek_atom, uint32_t count) -> queue_peek {
      // Like mgmt_atom, not a use of the queue.
      std::vector<queue_model::peeked> items;
      self->state.model->peek(count, items);
      queue_peek r;
      for (auto& p : items) {
        r.messages.push_back(std::move(p.msg));
        r.redelivered.push_back(p.redelivered);
      }
      r.ready = self->state.model->ready_count();
      return r;
    },
    [=](mgmt_atom) -> queue_stats {
      // Not a use of the queue: x-expires keeps counting.
      auto s = management_stats(self);
      s.mailbox = self->mailbox().size();
      return s;
    },
    [=](purge_atom) -> op_result {
      auto& st = self->state;
      op_result r;
      r.message_count = static_cast<uint32_t>(st.model->purge(st.dead));
      st.dead.clear(); // Purged messages are not dead-lettered.
      persist_changes(self);
      return r;
    },
    [=](remove_atom, bool if_unused, bool if_empty) -> op_result {
      auto& st = self->state;
      auto where = "queue '" + st.model->name() + "' in vhost '"
                   + st.table->name() + "'";
      if (if_unused && !st.consumers.empty())
        return make_op_error(errc::precondition_failed, where + " in use");
      if (if_empty && st.model->ready_count() > 0)
        return make_op_error(errc::precondition_failed, where + " not empty");
      op_result r;
      r.message_count = static_cast<uint32_t>(st.model->ready_count());
      st.deleting = true;
      for (auto& kv : st.consumers)
        self->send(kv.second.connection, cancelled_atom::value, kv.second.key);
      st.consumers.clear();
      if (st.store) {
        store_ops ops;
        store_op op;
        op.kind = store_op::drop_queue;
        op.queue_id = st.queue_id;
        ops.ops.push_back(std::move(op));
        self->send(st.store, persist_atom::value, std::move(ops));
      }
      FLOTILLA_LOG(debug, "queue " << st.model->name() << " deleted");
      self->quit();
      return r;
    },
    [=](expire_atom) {
      auto& st = self->state;
      st.expiry_timer_at = 0;
      st.model->expire(now_ms(), st.dead);
      dispatch(self);
    },
    [=](idle_atom) {
      auto& st = self->state;
      auto& cfg = st.model->config();
      if (st.deleting || !cfg.expires || !st.consumers.empty())
        return;
      if (now_ms() - st.last_used >= *cfg.expires)
        self->send(st.vhost, autodel_atom::value, st.model->name());
    },
  };
}

} // namespace

caf::actor spawn_queue(caf::actor_system& sys, std::string name,
                       queue_config cfg, caf::actor vhost,
                       vhost_table_ptr table, queue_durability durability) {
  return sys.spawn(queue_impl, std::move(name), std::move(cfg),
                   std::move(vhost), std::move(table), std::move(durability));
}

} // namespace flotilla
