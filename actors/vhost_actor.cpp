#include "actors/vhost_actor.hpp"

#include <random>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/exchange_actor.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "actors/queue_actor.hpp"
#include "actors/store_actor.hpp"

namespace flotilla {

op_result make_op_error(errc code, const std::string& detail) {
  op_result r;
  r.code = code;
  r.text = std::string{to_string(code)} + " - " + detail;
  return r;
}

namespace {

struct vhost_state {
  static inline const char* name = "vhost";
  vhost_table_ptr table;
  vhost_durability durability;
  std::mt19937_64 rng{std::random_device{}()};
};

using vhost_self = caf::stateful_actor<vhost_state>*;

std::string where(vhost_self self) {
  return "in vhost '" + self->state.table->name() + "'";
}

std::string quoted(const char* kind, const std::string& name) {
  return std::string{kind} + " '" + name + "'";
}

const char* yes_no(bool x) {
  return x ? "true" : "false";
}

/// Returns a server-generated queue name like RabbitMQ's "amq.gen-...".
std::string generate_name(vhost_self self) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string result = "amq.gen-";
  for (int i = 0; i < 22; ++i)
    result += alphabet[self->state.rng() % 64];
  return result;
}

exchange_entry_ptr create_exchange(vhost_self self, std::string name,
                                   exchange_kind kind, bool durable,
                                   bool auto_delete, bool internal,
                                   protocol::field_table args) {
  auto entry = std::make_shared<exchange_entry>(
    std::move(name), kind, durable, auto_delete, internal, std::move(args));
  entry->actor = spawn_exchange(self->system(), entry);
  self->link_to(entry->actor);
  self->state.table->put_exchange(entry);
  return entry;
}

void delete_exchange_now(vhost_self self, const exchange_entry_ptr& x);

store_op meta_put(std::string key, std::string payload) {
  store_op op;
  op.kind = store_op::meta_put;
  op.key = std::move(key);
  op.payload = std::move(payload);
  return op;
}

store_op meta_del(std::string key) {
  store_op op;
  op.kind = store_op::meta_del;
  op.key = std::move(key);
  return op;
}

/// Writes `op` to the store and delivers `result` to `rp` once it is
/// durable (an error result if the store could not write it).
void persist_and_deliver(vhost_self self, store_op op,
                         caf::typed_response_promise<op_result> rp,
                         op_result result) {
  auto& store = self->state.durability.store;
  if (!store) {
    rp.deliver(std::move(result));
    return;
  }
  store_ops ops;
  ops.ops.push_back(std::move(op));
  self->request(store, caf::infinite, persist_atom::value, std::move(ops), true)
    .then(
      [rp, result](bool ok) mutable {
        if (!ok)
          result = make_op_error(errc::internal_error,
                                 "could not write to the store (see the "
                                 "broker log)");
        rp.deliver(std::move(result));
      },
      [rp](caf::error&) mutable {
        rp.deliver(make_op_error(errc::internal_error, "store unavailable"));
      });
}

/// Writes `op` to the store and answers `result` once it is durable.
caf::result<op_result> persist_then(vhost_self self, store_op op,
                                    op_result result) {
  if (!self->state.durability.store)
    return result;
  auto rp = self->make_response_promise<op_result>();
  persist_and_deliver(self, std::move(op), rp, std::move(result));
  return rp;
}

/// Writes `op` to the store without waiting.
void persist(vhost_self self, store_op op) {
  auto& store = self->state.durability.store;
  if (!store)
    return;
  store_ops ops;
  ops.ops.push_back(std::move(op));
  self->send(store, persist_atom::value, std::move(ops));
}

/// Returns the stored form of a binding, or nullopt if an end is transient
/// (such bindings are not persisted, as in RabbitMQ).
std::optional<stored_binding> durable_binding(vhost_self self,
                                              const bind_req& req) {
  auto& table = *self->state.table;
  auto src = table.find_exchange(req.source);
  if (!src || !src->durable)
    return std::nullopt;
  if (req.to_exchange) {
    auto dst = table.find_exchange(req.destination);
    if (!dst || !dst->durable)
      return std::nullopt;
  } else {
    auto q = table.find_queue(req.destination);
    if (!q || !q->durable || q->exclusive)
      return std::nullopt;
  }
  return stored_binding{table.name(),    req.source, req.to_exchange,
                        req.destination, req.key,    req.arguments};
}

/// Removes every binding to a deleted queue or exchange, then deletes
/// auto-delete exchanges left without bindings.
void unbind_everywhere(vhost_self self, bool to_exchange,
                       const std::string& name) {
  for (auto& x : self->state.table->exchanges()) {
    auto removed = x->remove_bindings_to(to_exchange, name);
    if (removed > 0 && x->auto_delete && x->binding_count() == 0)
      delete_exchange_now(self, x);
  }
}

void delete_exchange_now(vhost_self self, const exchange_entry_ptr& x) {
  if (x->durable)
    persist(self, meta_del(exchange_key(self->state.table->name(), x->name)));
  self->state.table->erase_exchange(x->name);
  self->unlink_from(x->actor);
  self->send_exit(x->actor, caf::exit_reason::user_shutdown);
  unbind_everywhere(self, true, x->name);
}

void erase_queue(vhost_self self, const std::string& name) {
  auto q = self->state.table->find_queue(name);
  if (q && q->durable && !q->exclusive)
    persist(self, meta_del(queue_key(self->state.table->name(), name)));
  self->state.table->erase_queue(name);
  unbind_everywhere(self, false, name);
}

bool reserved_name(const std::string& name) {
  return name.compare(0, 4, "amq.") == 0;
}

/// The exchanges of the management agent (management/), built into every
/// vhost like the amq.* exchanges.
bool management_exchange(const std::string& name) {
  return name == "qmf.default.direct" || name == "qmf.default.topic";
}

void notify_binding(vhost_self self, const char* action,
                    const std::optional<std::string>& source,
                    const bind_req& req) {
  if (!source || !self->state.table->has_event_sink())
    return;
  self->state.table->notify(
    broker_event{"binding",
                 action,
                 {},
                 *source,
                 {{"destination", req.destination},
                  {"destination_type", req.to_exchange ? "exchange" : "queue"},
                  {"routing_key", req.key}}});
}

caf::result<op_result> declare_exchange(vhost_self self,
                                        exchange_declare_req& req) {
  auto& table = *self->state.table;
  auto existing = table.find_exchange(req.name);
  if (req.passive) {
    if (!existing)
      return make_op_error(errc::not_found, "no " + quoted("exchange", req.name)
                                              + " " + where(self));
    return op_result{};
  }
  exchange_kind kind;
  if (!parse_exchange_kind(req.type, kind))
    return make_op_error(errc::command_invalid,
                         "unknown exchange type '" + req.type + "'");
  if (existing) {
    auto mismatch
      = [&](const char* arg, const std::string& got, const std::string& cur) {
          return make_op_error(errc::precondition_failed,
                               "inequivalent arg '" + std::string{arg}
                                 + "' for " + quoted("exchange", req.name) + " "
                                 + where(self) + ": received '" + got
                                 + "' but current is '" + cur + "'");
        };
    if (existing->kind != kind)
      return mismatch("type", req.type, to_string(existing->kind));
    if (existing->durable != req.durable)
      return mismatch("durable", yes_no(req.durable),
                      yes_no(existing->durable));
    if (existing->auto_delete != req.auto_delete)
      return mismatch("auto_delete", yes_no(req.auto_delete),
                      yes_no(existing->auto_delete));
    if (existing->internal != req.internal)
      return mismatch("internal", yes_no(req.internal),
                      yes_no(existing->internal));
    return op_result{};
  }
  if (reserved_name(req.name) || req.name.empty())
    return make_op_error(errc::access_refused,
                         "exchange name '" + req.name
                           + "' contains reserved prefix 'amq.*'");
  if (auto* ae = req.arguments.find("alternate-exchange"))
    if (ae->as_string() == nullptr)
      return make_op_error(errc::precondition_failed,
                           "invalid arg 'alternate-exchange' for "
                             + quoted("exchange", req.name)
                             + ": expected a string");
  auto x = create_exchange(self, req.name, kind, req.durable, req.auto_delete,
                           req.internal, std::move(req.arguments));
  FLOTILLA_LOG(debug, "exchange " << req.name << " declared");
  if (!x->durable)
    return op_result{};
  stored_exchange sx{self->state.table->name(),
                     x->name,
                     req.type,
                     x->auto_delete,
                     x->internal,
                     x->arguments};
  return persist_then(
    self, meta_put(exchange_key(sx.vhost, sx.name), encode(sx)), op_result{});
}

op_result exclusive_locked(vhost_self self, const std::string& name) {
  return make_op_error(
    errc::resource_locked,
    "cannot obtain exclusive access to locked " + quoted("queue", name) + " "
      + where(self)
      + ". It could be originally declared on another connection or the "
        "exclusive property value does not match that of the original "
        "declaration.");
}

caf::result<op_result> declare_queue(vhost_self self, queue_declare_req& req) {
  auto& table = *self->state.table;
  bool generated = req.name.empty() && !req.passive;
  if (generated)
    req.name = generate_name(self);
  auto existing = table.find_queue(req.name);
  if (existing && existing->exclusive
      && existing->owner_connection != req.connection_id)
    return exclusive_locked(self, req.name);
  if (req.passive) {
    if (!existing)
      return make_op_error(errc::not_found, "no " + quoted("queue", req.name)
                                              + " " + where(self));
    op_result r;
    r.name = req.name;
    r.actor = existing->actor;
    return r;
  }
  queue_config cfg;
  std::string error;
  auto err = parse_queue_arguments(req.arguments, cfg, error);
  if (err != errc::none)
    return make_op_error(err, error);
  if (existing) {
    auto mismatch = [&](const char* arg, bool got, bool cur) {
      return make_op_error(errc::precondition_failed,
                           "inequivalent arg '" + std::string{arg} + "' for "
                             + quoted("queue", req.name) + " " + where(self)
                             + ": received '" + yes_no(got)
                             + "' but current is '" + yes_no(cur) + "'");
    };
    if (existing->durable != req.durable)
      return mismatch("durable", req.durable, existing->durable);
    if (existing->exclusive != req.exclusive)
      return mismatch("exclusive", req.exclusive, existing->exclusive);
    if (existing->auto_delete != req.auto_delete)
      return mismatch("auto_delete", req.auto_delete, existing->auto_delete);
    queue_config current;
    std::string ignored;
    parse_queue_arguments(existing->arguments, current, ignored);
    if (!equivalent(current, cfg))
      return make_op_error(errc::precondition_failed,
                           "inequivalent arguments for "
                             + quoted("queue", req.name) + " " + where(self));
    op_result r;
    r.name = req.name;
    r.actor = existing->actor;
    return r;
  }
  if (reserved_name(req.name) && !generated)
    return make_op_error(errc::access_refused,
                         "queue name '" + req.name
                           + "' contains reserved prefix 'amq.*'");
  auto entry = std::make_shared<queue_entry>();
  entry->name = req.name;
  entry->durable = req.durable;
  entry->exclusive = req.exclusive;
  entry->auto_delete = req.auto_delete;
  entry->owner_connection = req.exclusive ? req.connection_id : 0;
  entry->arguments = std::move(req.arguments);
  bool durable = req.durable && !req.exclusive && self->state.durability.store;
  queue_durability qd;
  if (durable) {
    qd.store = self->state.durability.store;
    qd.queue_id = ++*self->state.durability.queue_ids;
  }
  qd.paging_dir = self->state.durability.paging_dir;
  qd.page_limit = self->state.durability.page_limit;
  qd.page_hook = self->state.durability.page_hook;
  entry->actor
    = spawn_queue(self->system(), req.name, std::move(cfg),
                  caf::actor_cast<caf::actor>(self), self->state.table, qd);
  self->link_to(entry->actor);
  table.put_queue(entry);
  FLOTILLA_LOG(debug, "queue " << req.name << " declared");
  op_result r;
  r.name = req.name;
  r.actor = entry->actor;
  if (!durable)
    return r;
  stored_queue sq{table.name(), entry->name, qd.queue_id, entry->auto_delete,
                  entry->arguments};
  return persist_then(self, meta_put(queue_key(sq.vhost, sq.name), encode(sq)),
                      std::move(r));
}

caf::result<op_result> bind(vhost_self self, bind_req& req) {
  auto& table = *self->state.table;
  binding_dest dest;
  dest.to_exchange = req.to_exchange;
  dest.name = req.destination;
  if (req.to_exchange) {
    if (!table.find_exchange(req.destination))
      return make_op_error(errc::not_found,
                           "no " + quoted("exchange", req.destination) + " "
                             + where(self));
  } else {
    auto q = table.find_queue(req.destination);
    if (!q)
      return make_op_error(errc::not_found, "no "
                                              + quoted("queue", req.destination)
                                              + " " + where(self));
    if (q->exclusive && q->owner_connection != req.connection_id)
      return exclusive_locked(self, req.destination);
    dest.queue = q->actor;
  }
  if (req.source.empty())
    return make_op_error(errc::access_refused,
                         "operation not permitted on the default exchange");
  auto src = table.find_exchange(req.source);
  if (!src)
    return make_op_error(errc::not_found, "no " + quoted("exchange", req.source)
                                            + " " + where(self));
  auto rp = self->make_response_promise<op_result>();
  auto stored = durable_binding(self, req);
  // For the binding events (management): the request without its arguments.
  std::optional<std::string> event_source;
  bind_req event_req;
  if (self->state.table->has_event_sink()) {
    event_source = req.source;
    event_req.destination = req.destination;
    event_req.to_exchange = req.to_exchange;
    event_req.key = req.key;
  }
  if (!req.unbind) {
    self
      ->request(src->actor, caf::infinite, bind_atom::value, std::move(req),
                std::move(dest))
      .then(
        [=](op_result& r) mutable {
          if (r.message_count == 1)
            notify_binding(self, "created", event_source, event_req);
          if (stored && r.message_count == 1) {
            // A new binding between durable ends: answer after the fsync.
            persist_and_deliver(self,
                                meta_put(binding_key(*stored), encode(*stored)),
                                rp, op_result{});
            return;
          }
          rp.deliver(op_result{});
        },
        [rp](caf::error&) mutable {
          rp.deliver(op_result{});
        });
  } else {
    if (stored)
      persist(self, meta_del(binding_key(*stored)));
    self
      ->request(src->actor, caf::infinite, unbind_atom::value, std::move(req),
                std::move(dest))
      .then(
        [=](op_result& r) mutable {
          if (r.consumer_count == 1)
            notify_binding(self, "deleted", event_source, event_req);
          if (src->auto_delete && r.message_count == 0
              && self->state.table->find_exchange(src->name) == src)
            delete_exchange_now(self, src);
          rp.deliver(op_result{});
        },
        [rp](caf::error&) mutable {
          rp.deliver(op_result{});
        });
  }
  return rp;
}

caf::result<op_result> remove(vhost_self self, delete_req& req) {
  auto& table = *self->state.table;
  if (req.exchange) {
    if (req.name.empty() || reserved_name(req.name))
      return make_op_error(errc::access_refused,
                           "operation not permitted on the default exchange");
    if (management_exchange(req.name))
      return make_op_error(errc::access_refused,
                           "operation not permitted on the management "
                           "exchange '"
                             + req.name + "'");
    auto x = table.find_exchange(req.name);
    if (!x)
      return op_result{};
    if (req.if_unused && x->binding_count() > 0)
      return make_op_error(errc::precondition_failed,
                           quoted("exchange", req.name) + " " + where(self)
                             + " in use");
    delete_exchange_now(self, x);
    return op_result{};
  }
  auto q = table.find_queue(req.name);
  if (!q) {
    if (req.purge_only)
      return make_op_error(errc::not_found, "no " + quoted("queue", req.name)
                                              + " " + where(self));
    return op_result{};
  }
  if (q->exclusive && q->owner_connection != req.connection_id)
    return exclusive_locked(self, req.name);
  auto rp = self->make_response_promise<op_result>();
  if (req.purge_only) {
    self->request(q->actor, caf::infinite, purge_atom::value)
      .then(
        [rp](op_result& r) mutable {
          rp.deliver(std::move(r));
        },
        [rp](caf::error&) mutable {
          rp.deliver(op_result{});
        });
    return rp;
  }
  // Await: no other declaration on this vhost interleaves with a deletion.
  self
    ->request(q->actor, caf::infinite, remove_atom::value, req.if_unused,
              req.if_empty)
    .await(
      [=](op_result& r) mutable {
        if (r.ok()) {
          self->unlink_from(q->actor);
          if (self->state.table->find_queue(q->name) == q)
            erase_queue(self, q->name);
        }
        rp.deliver(std::move(r));
      },
      [=](caf::error&) mutable {
        if (self->state.table->find_queue(q->name) == q)
          erase_queue(self, q->name);
        rp.deliver(op_result{});
      });
  return rp;
}

/// Deletes a queue unconditionally (exclusive owner gone) or if unused.
void drop_queue(vhost_self self, const queue_entry_ptr& q, bool if_unused) {
  self->request(q->actor, caf::infinite, remove_atom::value, if_unused, false)
    .await(
      [=](op_result& r) {
        if (!r.ok())
          return;
        self->unlink_from(q->actor);
        if (self->state.table->find_queue(q->name) == q)
          erase_queue(self, q->name);
      },
      [=](caf::error&) {
        if (self->state.table->find_queue(q->name) == q)
          erase_queue(self, q->name);
      });
}

void add_default_exchanges(vhost_self self) {
  using k = exchange_kind;
  create_exchange(self, "", k::direct, true, false, false, {});
  create_exchange(self, "amq.direct", k::direct, true, false, false, {});
  create_exchange(self, "amq.fanout", k::fanout, true, false, false, {});
  create_exchange(self, "amq.topic", k::topic, true, false, false, {});
  create_exchange(self, "amq.match", k::headers, true, false, false, {});
  create_exchange(self, "amq.headers", k::headers, true, false, false, {});
  // The management agent's exchanges (management/, docs/management.md).
  create_exchange(self, "qmf.default.direct", k::direct, true, false, false,
                  {});
  create_exchange(self, "qmf.default.topic", k::topic, true, false, false, {});
}

/// Recreates recovered durable entities (startup, before any client).
op_result restore(vhost_self self, vhost_restore& r) {
  auto& table = *self->state.table;
  auto& store = self->state.durability.store;
  size_t messages = 0;
  for (auto& sx : r.exchanges) {
    exchange_kind kind;
    if (!parse_exchange_kind(sx.type, kind)) {
      FLOTILLA_LOG(error, "store: exchange '"
                            << sx.name << "' has unknown type '" << sx.type
                            << "', skipped");
      continue;
    }
    if (table.find_exchange(sx.name))
      continue; // A default exchange.
    create_exchange(self, sx.name, kind, true, sx.auto_delete, sx.internal,
                    std::move(sx.arguments));
  }
  for (auto& [sq, msgs] : r.queues) {
    queue_config cfg;
    std::string error;
    if (parse_queue_arguments(sq.arguments, cfg, error) != errc::none) {
      FLOTILLA_LOG(error,
                   "store: queue '" << sq.name << "' not restored: " << error);
      continue;
    }
    messages += msgs.size();
    auto entry = std::make_shared<queue_entry>();
    entry->name = sq.name;
    entry->durable = true;
    entry->auto_delete = sq.auto_delete;
    entry->arguments = std::move(sq.arguments);
    queue_durability qd;
    qd.store = store;
    qd.queue_id = sq.queue_id;
    qd.recovered = std::move(msgs);
    qd.paging_dir = self->state.durability.paging_dir;
    qd.page_limit = self->state.durability.page_limit;
    qd.page_hook = self->state.durability.page_hook;
    entry->actor = spawn_queue(self->system(), sq.name, std::move(cfg),
                               caf::actor_cast<caf::actor>(self),
                               self->state.table, std::move(qd));
    self->link_to(entry->actor);
    table.put_queue(entry);
  }
  for (auto& b : r.bindings) {
    auto src = table.find_exchange(b.source);
    binding_dest dest;
    dest.to_exchange = b.to_exchange;
    dest.name = b.destination;
    bool ok = src != nullptr;
    if (b.to_exchange) {
      ok = ok && table.find_exchange(b.destination) != nullptr;
    } else if (auto q = table.find_queue(b.destination)) {
      dest.queue = q->actor;
    } else {
      ok = false;
    }
    if (!ok) {
      // An end was deleted before its binding record: forget the binding.
      persist(self, meta_del(binding_key(b)));
      continue;
    }
    src->add_binding(binding{b.key, std::move(b.arguments), std::move(dest)});
  }
  FLOTILLA_LOG(info, "vhost '" << table.name() << "': restored "
                               << r.exchanges.size() << " exchanges, "
                               << r.queues.size() << " queues, "
                               << r.bindings.size() << " bindings, " << messages
                               << " messages");
  return {};
}

caf::behavior vhost_impl(vhost_self self, vhost_table_ptr table,
                         vhost_durability durability) {
  self->state.table = std::move(table);
  self->state.durability = std::move(durability);
  add_default_exchanges(self);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    // A child (queue or exchange) that fails is removed; anything else
    // (shutdown) stops the vhost and, through the links, its children.
    if (msg.reason == caf::exit_reason::normal)
      return; // A deleted queue quitting after its reply.
    auto& table = *self->state.table;
    for (auto& q : table.queues())
      if (q->actor.address() == msg.source) {
        FLOTILLA_LOG(error, "queue " << q->name << " failed: "
                                     << self->system().render(msg.reason));
        erase_queue(self, q->name);
        return;
      }
    for (auto& x : table.exchanges())
      if (x->actor.address() == msg.source) {
        FLOTILLA_LOG(error, "exchange " << x->name << " failed: "
                                        << self->system().render(msg.reason));
        return;
      }
    self->quit(msg.reason);
  });
  return {
    [=](exchange_declare_req& req) {
      return declare_exchange(self, req);
    },
    [=](queue_declare_req& req) {
      return declare_queue(self, req);
    },
    [=](bind_req& req) {
      return bind(self, req);
    },
    [=](delete_req& req) {
      return remove(self, req);
    },
    [=](closed_atom, uint64_t connection_id) {
      for (auto& q : self->state.table->queues())
        if (q->exclusive && q->owner_connection == connection_id)
          drop_queue(self, q, false);
    },
    [=](restore_atom, vhost_restore& r) {
      return restore(self, r);
    },
    [=](autodel_atom, const std::string& name) {
      auto q = self->state.table->find_queue(name);
      if (q && q->actor == caf::actor_cast<caf::actor>(self->current_sender()))
        drop_queue(self, q, true);
    },
  };
}

} // namespace

caf::actor spawn_vhost(caf::actor_system& sys, vhost_table_ptr table,
                       vhost_durability durability) {
  return sys.spawn(vhost_impl, std::move(table), std::move(durability));
}

} // namespace flotilla
