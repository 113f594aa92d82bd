#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "actors/routing.hpp"

namespace flotilla::config {
class user_db;
} // namespace flotilla::config

namespace flotilla {

/// Limits and defaults the connection actors negotiate with clients.
struct broker_limits {
  uint32_t frame_max = 131072;
  uint16_t channel_max = 2047;
  uint16_t heartbeat = 60;
  uint64_t max_message_size = 128ull << 20;
  bool auth = true;
  std::string node_name = "flotilla";
  std::string cluster_name = "flotilla";
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

  /// Connection registry, used for shutdown.
  void add_connection(const caf::actor& a);
  void remove_connection(const caf::actor& a);

  /// Closes every client connection with 320 CONNECTION_FORCED.
  void close_all_connections(const std::string& reason);

  /// Stops the vhost actors (and with them every queue and exchange).
  void stop();

  const caf::actor& store() const {
    return store_;
  }

private:
  caf::actor_system& sys_;
  broker_limits limits_;
  std::shared_ptr<const config::user_db> users_;
  std::map<std::string, vhost_ref> vhosts_;
  caf::actor store_;
  std::shared_ptr<std::atomic<uint32_t>> queue_ids_
    = std::make_shared<std::atomic<uint32_t>>(0);
  std::atomic<uint64_t> connection_ids_{0};
  mutable std::mutex connections_mtx_;
  std::unordered_set<caf::actor> connections_;
};

} // namespace flotilla
