#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/routing.hpp"

namespace flotilla::config {
class user_db;
} // namespace flotilla::config

namespace flotilla {

class page_out_hook; // actors/message_pager.hpp

class event_sink;

/// Limits and defaults the connection actors negotiate with clients.
struct broker_limits {
  uint32_t frame_max = 131072;
  uint16_t channel_max = 2047;
  uint16_t heartbeat = 60;
  uint64_t max_message_size = 128ull << 20;
  bool auth = true;
  std::string node_name = "flotilla";
  std::string cluster_name = "flotilla";
  /// Message bytes a queue keeps in memory before paging (0: never).
  uint64_t queue_memory_limit = 0;
  /// Where queues page messages out to; empty: never page.
  std::string paging_dir;
  /// The inter-node fabric (federation/): where links connect, and this
  /// process's federation id; shown by management. 0 / empty: no fabric.
  uint16_t fabric_port = 0;
  std::string fabric_interface;
  std::string federation_id;
};

/// One virtual host: its actor (owner of names) and its routing table.
struct vhost_ref {
  std::string name;
  caf::actor actor;
  vhost_table_ptr table;
};

/// Node-wide shared state, created by flotillad before any listener starts
/// and immutable afterwards except for the connection registry.
class broker {
public:
  broker(caf::actor_system& sys, broker_limits limits,
         std::shared_ptr<const config::user_db> users);

  caf::actor_system& system() {
    return sys_;
  }
  const broker_limits& limits() const {
    return limits_;
  }
  const config::user_db& users() const {
    return *users_;
  }

  /// Sets the store actor (before add_vhost; none: nothing is durable).
  void set_store(caf::actor store);

  /// Creates a vhost with its default exchanges (startup only).
  void add_vhost(const std::string& name);

  /// Recreates the durable entities and messages recovered from the
  /// journal in their vhosts (startup only; creates missing vhosts).
  /// Returns a one-line summary for the log.
  std::string restore(struct recovered_state& state);

  /// Returns the vhost or nullptr.
  const vhost_ref* find_vhost(const std::string& name) const;

  /// Returns a new, process-unique connection id (never 0).
  uint64_t next_connection_id() {
    return ++connection_ids_;
  }

  /// Connection registry, used for shutdown and management.
  void add_connection(const caf::actor& a);
  void remove_connection(const caf::actor& a);

  // -- management
  // --------------------------------------------------------------

  /// Returns the vhosts, by name (startup adds them; the list is then fixed).
  std::vector<const vhost_ref*> vhosts() const;

  /// Returns the open client connections (a snapshot).
  std::vector<caf::actor> connections() const;

  /// Sets where broker events go (startup only, after restore and before the
  /// listener starts); also hands it to every vhost table.
  void set_event_sink(std::shared_ptr<event_sink> sink);

  /// What queues run on a message before they page it out (federation sets
  /// it at startup; see page_out_hook).
  page_out_hook& page_hook() {
    return *page_hook_;
  }

  /// Returns the event sink, or nullptr.
  event_sink* events() const {
    return events_.get();
  }

  /// Returns the shared event sink, or nullptr (to wrap it: federation/).
  std::shared_ptr<event_sink> shared_events() const {
    return events_;
  }

  /// Closes every client connection with 320 CONNECTION_FORCED.
  void close_all_connections(const std::string& reason);

  /// Stops the vhost actors (and with them every queue and exchange).
  void stop();

  const caf::actor& store() const {
    return store_;
  }

  // -- resource alarms --------------------------------------------------------

  /// Alarm sources; while any is set, connections that publish are blocked.
  enum alarm_source : uint32_t {
    memory_alarm = 1, ///< Memory use above the high watermark.
    disk_alarm = 2,   ///< Free disk space below the limit.
    store_alarm = 4,  ///< The journal could not write (e.g. disk full).
  };

  /// Sets or clears one alarm source (thread-safe). Logs each change; when
  /// the last source clears, tells every connection to resume.
  void set_alarm(alarm_source source, bool on);

  /// Raises or clears a named alarm that does not block publishers (e.g.
  /// "route:NAME", a federation route that is not running). Returns true if
  /// it changed. Thread-safe. The caller publishes the alarm event.
  bool set_named_alarm(const std::string& name, bool on);

  /// Returns the raised named alarms, sorted.
  std::vector<std::string> named_alarms() const;

  /// Returns true while any alarm is set (one relaxed atomic load).
  bool publishing_blocked() const {
    return alarms_.load(std::memory_order_relaxed) != 0;
  }

  /// Returns the set alarm sources (a mask of alarm_source).
  uint32_t alarms() const {
    return alarms_.load(std::memory_order_relaxed);
  }

  /// Returns the reason given in connection.blocked: "low on memory", "low
  /// on disk" (RabbitMQ's words), or both joined by " and ".
  std::string blocked_reason() const;

private:
  caf::actor_system& sys_;
  broker_limits limits_;
  std::shared_ptr<const config::user_db> users_;
  std::map<std::string, vhost_ref> vhosts_;
  caf::actor store_;
  std::shared_ptr<std::atomic<uint32_t>> queue_ids_
    = std::make_shared<std::atomic<uint32_t>>(0);
  std::shared_ptr<page_out_hook> page_hook_;
  std::atomic<uint64_t> connection_ids_{0};
  std::shared_ptr<event_sink> events_;
  std::atomic<uint32_t> alarms_{0};
  mutable std::mutex named_alarms_mtx_;
  std::set<std::string> named_alarms_;
  mutable std::mutex connections_mtx_;
  std::unordered_set<caf::actor> connections_;
};

} // namespace flotilla
