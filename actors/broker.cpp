#include "actors/broker.hpp"
#include "actors/message_pager.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/events.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "actors/store_actor.hpp"
#include "actors/store_codec.hpp"
#include "actors/vhost_actor.hpp"
#include "config/users.hpp"

namespace flotilla {

broker::broker(caf::actor_system& sys, broker_limits limits,
               std::shared_ptr<const config::user_db> users)
  : sys_(sys), limits_(std::move(limits)), users_(std::move(users)),
    page_hook_(std::make_shared<page_out_hook>()) {}

void broker::set_store(caf::actor store) {
  store_ = std::move(store);
}

void broker::add_vhost(const std::string& name) {
  if (vhosts_.count(name) > 0)
    return;
  auto table = std::make_shared<vhost_table>(name);
  auto actor
    = spawn_vhost(sys_, table,
                  vhost_durability{store_, queue_ids_, limits_.paging_dir,
                                   limits_.queue_memory_limit, page_hook_});
  vhosts_.emplace(name, vhost_ref{name, actor, table});
}

const vhost_ref* broker::find_vhost(const std::string& name) const {
  auto i = vhosts_.find(name);
  return i != vhosts_.end() ? &i->second : nullptr;
}

std::string broker::restore(recovered_state& state) {
  std::map<std::string, vhost_restore> per_vhost;
  std::map<uint32_t, std::pair<std::string, size_t>> queue_slots;
  size_t bad = 0;
  for (auto& [key, payload] : state.meta) {
    switch (meta_kind(key)) {
      case 'x': {
        stored_exchange x;
        if (decode(payload, x)) {
          per_vhost[x.vhost].exchanges.push_back(std::move(x));
          continue;
        }
        break;
      }
      case 'q': {
        stored_queue q;
        if (decode(payload, q)) {
          if (q.queue_id > *queue_ids_)
            *queue_ids_ = q.queue_id;
          auto& r = per_vhost[q.vhost];
          queue_slots[q.queue_id] = {q.vhost, r.queues.size()};
          r.queues.emplace_back(
            std::move(q), std::vector<std::pair<uint64_t, message_ptr>>{});
          continue;
        }
        break;
      }
      case 'b': {
        stored_binding b;
        if (decode(payload, b)) {
          per_vhost[b.vhost].bindings.push_back(std::move(b));
          continue;
        }
        break;
      }
      default:
        break;
    }
    ++bad;
    FLOTILLA_LOG(error, "store: undecodable metadata record ignored");
  }
  size_t messages = 0;
  size_t orphans = 0;
  store_ops drops;
  for (auto& [queue_id, msgs] : state.messages) {
    auto slot = queue_slots.find(queue_id);
    if (slot == queue_slots.end()) {
      // The queue was deleted but the crash came before its drop record.
      orphans += msgs.size();
      store_op op;
      op.kind = store_op::drop_queue;
      op.queue_id = queue_id;
      drops.ops.push_back(std::move(op));
      continue;
    }
    auto& target
      = per_vhost[slot->second.first].queues[slot->second.second].second;
    for (auto& [msg_id, payload] : msgs) {
      auto m = decode_message(payload);
      if (!m) {
        ++bad;
        FLOTILLA_LOG(error, "store: undecodable message "
                              << msg_id << " of queue id " << queue_id);
        continue;
      }
      target.emplace_back(msg_id, std::move(m));
      ++messages;
    }
  }
  state.messages.clear();
  if (!drops.ops.empty() && store_)
    caf::anon_send(store_, persist_atom::value, std::move(drops));
  caf::scoped_actor self{sys_};
  for (auto& [vhost, r] : per_vhost) {
    add_vhost(vhost);
    self
      ->request(find_vhost(vhost)->actor, caf::infinite, restore_atom::value,
                std::move(r))
      .receive([](op_result&) {},
               [&](caf::error& e) {
                 FLOTILLA_LOG(error, "restore of vhost '"
                                       << vhost
                                       << "' failed: " << sys_.render(e));
               });
  }
  return std::to_string(messages) + " messages in "
         + std::to_string(queue_slots.size()) + " durable queues ("
         + std::to_string(orphans) + " of deleted queues dropped, "
         + std::to_string(bad) + " undecodable records)";
}

std::vector<const vhost_ref*> broker::vhosts() const {
  std::vector<const vhost_ref*> result;
  for (auto& kv : vhosts_)
    result.push_back(&kv.second);
  return result;
}

std::vector<caf::actor> broker::connections() const {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  return {connections_.begin(), connections_.end()};
}

void broker::set_event_sink(std::shared_ptr<event_sink> sink) {
  events_ = std::move(sink);
  for (auto& kv : vhosts_)
    kv.second.table->set_event_sink(events_);
}

void broker::add_connection(const caf::actor& a) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.insert(a);
}

void broker::remove_connection(const caf::actor& a) {
  std::lock_guard<std::mutex> guard{connections_mtx_};
  connections_.erase(a);
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

void broker::set_alarm(alarm_source source, bool on) {
  auto before = on ? alarms_.fetch_or(source) : alarms_.fetch_and(~source);
  auto after = on ? before | source : before & ~source;
  if (before == after)
    return;
  static constexpr const char* names[]
    = {"memory", "disk free space", "journal write"};
  const char* name = source == memory_alarm ? names[0]
                     : source == disk_alarm ? names[1]
                                            : names[2];
  if (on)
    FLOTILLA_LOG(warning, "resource alarm set: " << name
                                                 << "; connections that "
                                                    "publish are blocked");
  else
    FLOTILLA_LOG(warning, "resource alarm cleared: " << name);
  if (auto* sink = events()) {
    // The names of the overview's alarm list.
    broker_event e;
    e.kind = "alarm";
    e.action = on ? "raised" : "cleared";
    e.name = source == memory_alarm ? "memory"
             : source == disk_alarm ? "disk"
                                    : "store";
    e.details.emplace_back("description", name);
    e.details.emplace_back("publishers_blocked", after != 0 ? "true" : "false");
    sink->publish(std::move(e));
  }
  if (after != 0 || before == 0)
    return;
  FLOTILLA_LOG(warning, "all resource alarms cleared; publishers resume");
  std::vector<caf::actor> all;
  {
    std::lock_guard<std::mutex> guard{connections_mtx_};
    all.assign(connections_.begin(), connections_.end());
  }
  for (auto& a : all)
    caf::anon_send(a, unblock_atom::value);
}

bool broker::set_named_alarm(const std::string& name, bool on) {
  std::lock_guard<std::mutex> guard{named_alarms_mtx_};
  return on ? named_alarms_.insert(name).second : named_alarms_.erase(name) > 0;
}

std::vector<std::string> broker::named_alarms() const {
  std::lock_guard<std::mutex> guard{named_alarms_mtx_};
  return {named_alarms_.begin(), named_alarms_.end()};
}

std::string broker::blocked_reason() const {
  auto a = alarms();
  bool memory = (a & memory_alarm) != 0;
  bool disk = (a & (disk_alarm | store_alarm)) != 0;
  if (memory && disk)
    return "low on memory and low on disk";
  if (memory)
    return "low on memory";
  return "low on disk";
}

void broker::stop() {
  for (auto& kv : vhosts_)
    caf::anon_send_exit(kv.second.actor, caf::exit_reason::user_shutdown);
  vhosts_.clear();
  if (store_) {
    // Queues send their last acks before they die; the store flushes what
    // it has before it quits (the exit is queued behind them).
    caf::anon_send_exit(store_, caf::exit_reason::user_shutdown);
    store_ = nullptr;
  }
}

} // namespace flotilla
