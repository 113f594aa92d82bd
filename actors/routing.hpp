#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>

#include "actors/events.hpp"
#include "protocol/field_table.hpp"

namespace flotilla {

/// The four AMQP exchange types.
enum class exchange_kind { direct, fanout, topic, headers };

/// Returns "direct", "fanout", "topic" or "headers".
const char* to_string(exchange_kind);

/// Parses an exchange type name; returns false for an unknown one.
bool parse_exchange_kind(const std::string& name, exchange_kind& out);

/// Where a binding leads: a queue (with its actor) or another exchange.
struct binding_dest {
  bool to_exchange = false;
  std::string name;
  caf::actor queue; ///< Set when !to_exchange.

  bool same_target(const binding_dest& other) const {
    return to_exchange == other.to_exchange && name == other.name;
  }
};

/// One binding of an exchange (the source) to a destination.
struct binding {
  std::string key;
  protocol::field_table arguments;
  binding_dest dest;
};

/// One exchange's routing state. Written under the unique lock by its
/// exchange actor (bind, unbind) and by the vhost actor (destination deleted,
/// restore at startup); read by publishing connections under the shared
/// lock, so a publish routes without a mailbox hop to the exchange.
class exchange_entry {
public:
  exchange_entry(std::string name, exchange_kind kind, bool durable,
                 bool auto_delete, bool internal,
                 protocol::field_table arguments);

  const std::string name;
  const exchange_kind kind;
  const bool durable;
  const bool auto_delete;
  const bool internal;
  const protocol::field_table arguments;
  /// From the "alternate-exchange" argument; empty if none.
  const std::string alternate_exchange;
  caf::actor actor; ///< Set once by the vhost right after spawning.

  /// Statistics, counted by vhost_table::route() for messages published to
  /// this exchange (relaxed atomics; not for the default exchange).
  mutable std::atomic<uint64_t> messages_in{0};  ///< Published to it.
  mutable std::atomic<uint64_t> messages_out{0}; ///< Copies routed to queues.
  mutable std::atomic<uint64_t> unroutable{0};   ///< Reached no queue.

  /// Adds a binding unless an identical one exists. Returns true if added.
  /// Caller holds no lock; takes the unique lock.
  bool add_binding(binding b);

  /// Removes an identical binding. Returns true if one was removed.
  bool remove_binding(const std::string& key,
                      const protocol::field_table& arguments,
                      const binding_dest& dest);

  /// Removes every binding to `dest` (a deleted queue or exchange). Returns
  /// the number removed.
  size_t remove_bindings_to(bool to_exchange, const std::string& name);

  /// Returns the number of bindings with this exchange as source.
  size_t binding_count() const;

  /// Returns a copy of every binding with this exchange as source
  /// (management; takes the shared lock).
  std::vector<binding> bindings() const;

  /// Calls `f(const binding_dest&)` for every binding matching
  /// `key`/`headers`, under the shared lock (`f` must not write bindings).
  template<class F>
  void for_each_match(const std::string& key,
                      const protocol::field_table* headers, F&& f) const;

private:
  mutable std::shared_mutex mtx_;
  std::vector<binding> bindings_; ///< fanout, topic, headers.
  std::unordered_map<std::string, std::vector<binding>> direct_;
  size_t count_ = 0;
};

bool binding_matches(exchange_kind kind, const binding& b,
                     const std::string& key,
                     const protocol::field_table* headers);

template<class F>
void exchange_entry::for_each_match(const std::string& key,
                                    const protocol::field_table* headers,
                                    F&& f) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  if (kind == exchange_kind::direct) {
    auto i = direct_.find(key);
    if (i != direct_.end())
      for (auto& b : i->second)
        f(b.dest);
    return;
  }
  for (auto& b : bindings_)
    if (binding_matches(kind, b, key, headers))
      f(b.dest);
}

using exchange_entry_ptr = std::shared_ptr<exchange_entry>;

/// A queue's name-level facts, shared by the vhost (writer) and connections.
struct queue_entry {
  std::string name;
  caf::actor actor;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  uint64_t owner_connection = 0; ///< For exclusive queues.
  protocol::field_table arguments;
};

using queue_entry_ptr = std::shared_ptr<const queue_entry>;

/// The names of one vhost. Written only by the vhost actor; read by
/// connections and queues (dead-lettering) to route without a mailbox hop.
class vhost_table {
public:
  explicit vhost_table(std::string name) : name_(std::move(name)) {}

  const std::string& name() const {
    return name_;
  }

  exchange_entry_ptr find_exchange(const std::string& name) const;
  queue_entry_ptr find_queue(const std::string& name) const;

  void put_exchange(exchange_entry_ptr x);
  void erase_exchange(const std::string& name);
  void put_queue(queue_entry_ptr q);
  void erase_queue(const std::string& name);

  size_t queue_count() const;
  size_t exchange_count() const;
  std::vector<exchange_entry_ptr> exchanges() const;
  std::vector<queue_entry_ptr> queues() const;

  /// Sets where entity events go (startup only, before clients connect).
  /// From then on put_* and erase_* report queues and exchanges created and
  /// deleted; the vhost actor reports bindings through notify().
  void set_event_sink(std::shared_ptr<event_sink> sink) {
    events_ = std::move(sink);
  }

  /// Hands `e` to the event sink, if any, with this vhost's name.
  void notify(broker_event e) const;

  /// Returns true if an event sink is set.
  bool has_event_sink() const {
    return events_ != nullptr;
  }

  /// Routes a message published to `exchange` with `key` and `headers`:
  /// appends the distinct queue actors it reaches (following
  /// exchange-to-exchange bindings and alternate exchanges, loop-safe).
  /// If `names` is not null, it receives the queue names, parallel to `out`.
  void route(const std::string& exchange, const std::string& key,
             const protocol::field_table* headers, std::vector<caf::actor>& out,
             std::vector<std::string>* names = nullptr) const;

private:
  void route_impl(const exchange_entry& x, const std::string& key,
                  const protocol::field_table* headers,
                  std::vector<caf::actor>& out, std::vector<std::string>* names,
                  std::vector<const exchange_entry*>& visited) const;

  std::string name_;
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, exchange_entry_ptr> exchanges_;
  std::unordered_map<std::string, queue_entry_ptr> queues_;
  std::shared_ptr<event_sink> events_;
};

using vhost_table_ptr = std::shared_ptr<vhost_table>;

} // namespace flotilla
