#include "management/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <utility>

#include "protocol/management.pb.h"

namespace flotilla::management {

namespace {

using labels = std::vector<std::pair<std::string, std::string>>;

/// One metric family: written as HELP, TYPE, then its samples.
class family {
public:
  family(std::string name, const char* type, const char* help)
    : name_(std::move(name)), type_(type), help_(help) {}

  void add(const labels& ls, double value) {
    samples_.emplace_back(render(ls), value);
  }

  /// Adds `value` to the sample with labels `ls` (aggregation).
  void sum(const labels& ls, double value) {
    merge(ls, value, false);
  }

  /// Keeps the largest `value` for the labels `ls` (aggregation of ages).
  void max(const labels& ls, double value) {
    merge(ls, value, true);
  }

  void write(std::string& out) const {
    out += "# HELP " + name_ + " " + help_ + "\n";
    out += "# TYPE " + name_ + " " + type_ + "\n";
    for (auto& [ls, v] : samples_) {
      out += name_;
      out += ls;
      out += ' ';
      out += number(v);
      out += '\n';
    }
  }

private:
  void merge(const labels& ls, double value, bool keep_max) {
    auto key = render(ls);
    auto [i, added] = index_.emplace(key, samples_.size());
    if (added) {
      samples_.emplace_back(std::move(key), value);
      return;
    }
    auto& v = samples_[i->second].second;
    v = keep_max ? std::max(v, value) : v + value;
  }

  static std::string render(const labels& ls) {
    if (ls.empty())
      return {};
    std::string out = "{";
    for (size_t i = 0; i < ls.size(); ++i) {
      if (i > 0)
        out += ',';
      out += ls[i].first + "=\"" + escape_label(ls[i].second) + "\"";
    }
    return out + "}";
  }

  static std::string number(double v) {
    if (std::isnan(v))
      return "NaN";
    if (std::isinf(v))
      return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.0f", v);
      return buf;
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", v);
    return buf;
  }

  std::string name_;
  const char* type_;
  const char* help_;
  std::vector<std::pair<std::string, double>> samples_;
  std::map<std::string, size_t> index_;
};

struct queue_counter {
  const char* name;
  const char* help;
  uint64_t (MessageStats::*get)() const;
};

const queue_counter queue_counters[] = {
  {"published", "Messages the queue accepted.", &MessageStats::published},
  {"delivered", "Messages delivered to consumers and basic.get.",
   &MessageStats::delivered},
  {"redelivered", "Deliveries flagged redelivered.",
   &MessageStats::redelivered},
  {"acked", "Messages acknowledged by consumers.", &MessageStats::acked},
  {"rejected", "Publishes refused by x-overflow reject-publish.",
   &MessageStats::rejected},
  {"dead_lettered", "Messages dead-lettered.", &MessageStats::dead_lettered},
  {"expired", "Messages expired by TTL.", &MessageStats::expired},
  {"purged", "Messages removed by queue.purge.", &MessageStats::purged},
  {"overflowed", "Messages dropped by x-overflow drop-head.",
   &MessageStats::overflowed},
  {"discarded", "Messages rejected without requeue and without DLX.",
   &MessageStats::discarded},
  {"requeued", "Messages returned to the queue by nack, reject or close.",
   &MessageStats::requeued},
};

/// The states of a link (federation/actors.hpp link_state).
const char* const link_states[]
  = {"Waiting", "Connecting", "Operational", "Failed", "Closed"};

/// Links (per node) and routes (per vhost and direction): docs/federation.md.
void format_federation(const metrics_input& in, bool per_object,
                       std::string& out) {
  std::unordered_map<std::string, std::string> remote_of; // link -> node
  {
    family up{"flotilla_link_up", "gauge",
              "1 while the federation link is Operational (aggregated: "
              "the number of Operational links)."};
    family state{"flotilla_link_state", "gauge",
                 "1 for the link's current state, 0 for the others "
                 "(aggregated: links per state)."};
    family connects{"flotilla_link_connects_total", "counter",
                    "Successful connections of the link (reconnects count)."};
    if (!per_object) {
      up.sum({}, 0);
      connects.sum({}, 0);
      for (auto* s : link_states)
        state.sum({{"state", s}}, 0);
    }
    for (auto* l : in.links) {
      auto remote = l->remote_node().empty()
                      ? l->host() + ":" + std::to_string(l->port())
                      : l->remote_node();
      remote_of[l->name()] = remote;
      labels ls;
      if (per_object)
        ls = {{"link", l->name()}, {"remote", remote}};
      up.sum(ls, l->state() == "Operational" ? 1 : 0);
      connects.sum(ls, static_cast<double>(l->connects()));
      for (auto* s : link_states) {
        auto with_state = per_object ? labels{{"link", l->name()}, {"state", s}}
                                     : labels{{"state", s}};
        state.sum(with_state, l->state() == s ? 1 : 0);
      }
    }
    for (auto* f : {&up, &state, &connects})
      f->write(out);
  }
  // Routes: "in" (bridges into this broker), "push" (bridges of this
  // broker that push) and "out" (exports serving remote bridges).
  auto route_labels = [&](const Bridge& b) {
    labels ls{{"vhost", b.vhost()}, {"direction", b.direction()}};
    if (per_object) {
      std::string remote = b.peer();
      if (b.direction() != "out" && !b.link().empty()) {
        auto i = remote_of.find(b.link());
        remote = i != remote_of.end() ? i->second : b.link();
      }
      ls.emplace_back("route", b.name());
      ls.emplace_back("remote", remote);
    }
    return ls;
  };
  family msgs_in{"flotilla_route_messages_in_total", "counter",
                 "Messages the route accepted into this broker's exchange "
                 "(direction in)."};
  family msgs_out{"flotilla_route_messages_out_total", "counter",
                  "Messages forwarded over the link and acknowledged by the "
                  "destination (directions out and push)."};
  family bytes_in{"flotilla_route_bytes_in_total", "counter",
                  "Body bytes of the messages the route accepted."};
  family bytes_out{"flotilla_route_bytes_out_total", "counter",
                   "Body bytes of the messages the route forwarded."};
  family backlog{"flotilla_route_backlog", "gauge",
                 "Messages waiting for the route: ready in the source's "
                 "export queue plus in flight (direction in: as the source "
                 "reports it)."};
  family in_flight{"flotilla_route_in_flight", "gauge",
                   "Messages forwarded and not acknowledged yet."};
  family lag{"flotilla_route_lag_seconds", "gauge",
             "Age of the oldest message waiting for the route (aggregated: "
             "the largest)."};
  family dropped{"flotilla_route_dropped_total", "counter",
                 "Messages dropped by loop, duplicate or hop-limit checks."};
  family unroutable{"flotilla_route_unroutable_total", "counter",
                    "Messages accepted by the route that reached no queue."};
  family alarm{"flotilla_route_alarm", "gauge",
               "1 while the route's alarm is raised (not running for three "
               "link maintenance intervals; directions in and push)."};
  family refused{"flotilla_route_refused_total", "counter",
                 "Messages a destination queue refused; requeued on the "
                 "source and forwarded again."};
  family active{"flotilla_route_active", "gauge",
                "1 while the route is active (subscribed and forwarding)."};
  for (auto* b : in.bridges) {
    auto ls = route_labels(*b);
    msgs_in.sum(ls, static_cast<double>(b->messages_in()));
    msgs_out.sum(ls, static_cast<double>(b->messages_out()));
    bytes_in.sum(ls, static_cast<double>(b->bytes_in()));
    bytes_out.sum(ls, static_cast<double>(b->bytes_out()));
    backlog.sum(ls, static_cast<double>(b->backlog()));
    in_flight.sum(ls, static_cast<double>(b->in_flight()));
    lag.max(ls, static_cast<double>(b->lag_ms()) / 1000.0);
    std::pair<const char*, uint64_t> reasons[] = {
      {"loop", b->dropped_loop()},
      {"duplicate", b->dropped_duplicate()},
      {"hops", b->dropped_hops()},
    };
    for (auto& [reason, n] : reasons) {
      auto with_reason = ls;
      with_reason.emplace_back("reason", reason);
      dropped.sum(with_reason, static_cast<double>(n));
    }
    unroutable.sum(ls, static_cast<double>(b->unroutable()));
    refused.sum(ls, static_cast<double>(b->refused()));
    alarm.sum(ls, b->alarm() ? 1 : 0);
    active.sum(ls, b->state() == "active" ? 1 : 0);
  }
  for (auto* f :
       {&msgs_in, &msgs_out, &bytes_in, &bytes_out, &backlog, &in_flight, &lag,
        &dropped, &unroutable, &refused, &alarm, &active})
    f->write(out);
}

} // namespace

std::string escape_label(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_metrics(const metrics_input& in, bool per_object) {
  std::string out;
  // -- broker ------------------------------------------------------------
  if (in.overview != nullptr) {
    auto& o = *in.overview;
    auto& b = o.broker();
    family info{"flotilla_build_info", "gauge",
                "Always 1; labels name the node, cluster and version."};
    info.add(
      {{"node", b.node()}, {"cluster", b.cluster()}, {"version", b.version()}},
      1);
    info.write(out);
    family up{"flotilla_uptime_seconds", "gauge",
              "Seconds since the node started."};
    up.add({}, static_cast<double>(b.uptime_ms()) / 1000.0);
    up.write(out);
    family mem{"flotilla_resident_memory_bytes", "gauge",
               "Resident memory of the flotillad process (from /proc)."};
    mem.add({}, static_cast<double>(b.memory_bytes()));
    mem.write(out);
    std::pair<const char*, uint64_t> counts[] = {
      {"vhosts", o.vhosts()},           {"exchanges", o.exchanges()},
      {"queues", o.queues()},           {"bindings", o.bindings()},
      {"connections", o.connections()}, {"channels", o.channels()},
      {"consumers", o.consumers()},
    };
    for (auto& [what, n] : counts) {
      family f{std::string{"flotilla_"} + what, "gauge",
               "Number of objects of this kind on the node."};
      f.add({}, static_cast<double>(n));
      f.write(out);
    }
    family ready{"flotilla_messages_ready", "gauge",
                 "Messages ready for delivery, summed over all queues."};
    ready.add({}, static_cast<double>(o.messages_ready()));
    ready.write(out);
    family unacked{"flotilla_messages_unacked", "gauge",
                   "Messages delivered and not yet acknowledged, summed over "
                   "all queues."};
    unacked.add({}, static_cast<double>(o.messages_unacked()));
    unacked.write(out);
    family bytes{"flotilla_messages_ready_bytes", "gauge",
                 "Body bytes of the ready messages, summed over all queues."};
    bytes.add({}, static_cast<double>(o.bytes_ready()));
    bytes.write(out);
    family alarm{"flotilla_alarm", "gauge",
                 "1 while the resource alarm is set (publishers blocked)."};
    for (auto* source : {"memory", "disk", "store"}) {
      bool on = false;
      for (auto& a : o.alarms())
        on = on || a == source;
      alarm.add({{"source", source}}, on ? 1 : 0);
    }
    alarm.write(out);
  }
  // -- queues -------------------------------------------------------------
  auto queue_labels = [per_object](const Queue& q) {
    labels ls{{"vhost", q.vhost()}};
    if (per_object)
      ls.emplace_back("queue", q.name());
    return ls;
  };
  auto emit_queue_gauge
    = [&](const char* name, const char* help, uint64_t (Queue::*get)() const) {
        family f{name, "gauge", help};
        for (auto* q : in.queues)
          f.sum(queue_labels(*q), static_cast<double>((q->*get)()));
        f.write(out);
      };
  {
    family n{"flotilla_vhost_queues", "gauge", "Queues per vhost."};
    for (auto* q : in.queues)
      n.sum({{"vhost", q->vhost()}}, 1);
    n.write(out);
  }
  emit_queue_gauge("flotilla_queue_messages_ready",
                   "Messages ready for delivery.", &Queue::messages_ready);
  emit_queue_gauge("flotilla_queue_messages_unacked",
                   "Messages delivered and not yet acknowledged.",
                   &Queue::messages_unacked);
  emit_queue_gauge("flotilla_queue_consumers", "Consumers of the queue.",
                   &Queue::consumers);
  emit_queue_gauge("flotilla_queue_bytes_ready",
                   "Body bytes of the ready messages.", &Queue::bytes_ready);
  for (auto& qc : queue_counters) {
    family f{std::string{"flotilla_queue_messages_"} + qc.name + "_total",
             "counter", qc.help};
    for (auto* q : in.queues)
      f.sum(queue_labels(*q), static_cast<double>((q->stats().*qc.get)()));
    f.write(out);
  }
  // -- exchanges ----------------------------------------------------------
  {
    family n{"flotilla_vhost_exchanges", "gauge", "Exchanges per vhost."};
    family f{"flotilla_exchange_bindings", "gauge",
             "Bindings whose source is the exchange."};
    family xin{"flotilla_exchange_messages_in_total", "counter",
               "Messages published to the exchange (not counted for the "
               "default exchange)."};
    family xout{"flotilla_exchange_messages_out_total", "counter",
                "Copies the exchange routed to queues."};
    family xun{"flotilla_exchange_unroutable_total", "counter",
               "Messages published to the exchange that reached no queue."};
    for (auto* x : in.exchanges) {
      n.sum({{"vhost", x->vhost()}}, 1);
      labels ls{{"vhost", x->vhost()}};
      if (per_object) {
        ls.emplace_back("exchange", x->name());
        ls.emplace_back("type", x->type());
      }
      f.sum(ls, static_cast<double>(x->bindings()));
      xin.sum(ls, static_cast<double>(x->messages_in()));
      xout.sum(ls, static_cast<double>(x->messages_out()));
      xun.sum(ls, static_cast<double>(x->unroutable()));
    }
    for (auto* fam : {&n, &f, &xin, &xout, &xun})
      fam->write(out);
  }
  // -- connections --------------------------------------------------------
  {
    auto conn_labels = [per_object](const Connection& c) {
      labels ls{{"vhost", c.vhost()}};
      if (per_object) {
        ls.emplace_back("connection", std::to_string(c.id()));
        ls.emplace_back("user", c.user());
        ls.emplace_back("peer", c.peer());
      }
      return ls;
    };
    family n{"flotilla_vhost_connections", "gauge",
             "Open client connections per vhost."};
    family ch{"flotilla_connection_channels", "gauge", "Open channels."};
    family co{"flotilla_connection_consumers", "gauge",
              "Consumers on the connection's channels."};
    family in_msgs{"flotilla_connection_messages_received_total", "counter",
                   "Messages the client published on the connection."};
    family out_msgs{"flotilla_connection_messages_sent_total", "counter",
                    "Messages delivered to the client on the connection."};
    family in_bytes{"flotilla_connection_received_bytes_total", "counter",
                    "Body bytes of the messages the client published."};
    family out_bytes{"flotilla_connection_sent_bytes_total", "counter",
                     "Body bytes of the messages delivered to the client."};
    for (auto* c : in.connections) {
      n.sum({{"vhost", c->vhost()}}, 1);
      auto ls = conn_labels(*c);
      ch.sum(ls, c->channels());
      co.sum(ls, c->consumers());
      in_msgs.sum(ls, static_cast<double>(c->published()));
      out_msgs.sum(ls, static_cast<double>(c->delivered()));
      in_bytes.sum(ls, static_cast<double>(c->published_bytes()));
      out_bytes.sum(ls, static_cast<double>(c->delivered_bytes()));
    }
    for (auto* f : {&n, &ch, &co, &in_msgs, &out_msgs, &in_bytes, &out_bytes})
      f->write(out);
  }
  format_federation(in, per_object, out);
  return out;
}

} // namespace flotilla::management
