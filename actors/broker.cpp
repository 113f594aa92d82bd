#include "actors/broker.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/vhost_actor.hpp"
#include "config/users.hpp"

namespace flotilla {

broker::broker(caf::actor_system& sys, broker_limits limits,
               std::shared_ptr<const config::user_db> users)
  : sys_(sys), limits_(std::move(limits)), users_(std::move(users)) {
}

void broker::add_vhost(const std::string& name) {
  if (vhosts_.count(name) > 0)
    return;
  auto table = std::make_shared<vhost_table>(name);
  auto actor = spawn_vhost(sys_, table);
  vhosts_.emplace(name, vhost_ref{name, actor, table});
}

const vhost_ref* broker::find_vhost(const std::string& name) const {
  auto i = vhosts_.find(name);
  return i != vhosts_.end() ? &i->second : nullptr;
}

void broker::add_connection(const caf::actor& a) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.insert(a);
}

void broker::remove_connection(const caf::actor& a) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.erase(a);
}

size_t broker::connection_count() const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  return connections_.size();
}

void broker::close_all_connections(const std::string& reason) {
  std::vector<caf::actor> all;
  {
    std::lock_guard<std::mutex> guard{connections_mtx_};
    all.assign(connections_.begin(), connections_.end());
  }
  for (auto& a : all)
    caf::anon_send(a, shutdown_atom::value, reason);
}

void broker::stop() {
  for (auto& kv : vhosts_)
    caf::anon_send_exit(kv.second.actor, caf::exit_reason::user_shutdown);
  vhosts_.clear();
}

} // namespace flotilla
