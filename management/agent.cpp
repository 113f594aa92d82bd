#include "management/agent.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <unordered_map>

#include <caf/all.hpp>
#include <google/protobuf/util/json_util.h>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/events.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "actors/resource_monitor.hpp"
#include "actors/stats.hpp"
#include "config/broker_options.hpp"
#include "config/users.hpp"
#include "management/convert.hpp"
#include "management/metrics.hpp"
#include "management/service.hpp"
#include "protocol/management.pb.h"

namespace flotilla::management {
namespace {
/// What the service door sends to an agent (see management/service.hpp).
struct door_request {
  std::string json;
  std::string user;
  /// The node asks (healthz): no user, every vhost.
  bool internal = false;
  service::response_handler done;
};
struct metrics_request {
  bool per_object = false;
  service::text_handler done;
};
} // namespace
} // namespace flotilla::management

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::broker_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(
  std::shared_ptr<flotilla::management::door_request>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(
  std::shared_ptr<flotilla::management::metrics_request>)

namespace flotilla::management {

namespace {

namespace gp = google::protobuf;
namespace pr = flotilla::protocol;

/// How long a statistics query waits for one actor.
constexpr auto stats_timeout = std::chrono::seconds(10);
constexpr uint32_t default_page_size = 100;
constexpr uint32_t max_page_size = 1000;
/// Rough memory cost of one queued message beyond its body (memory_bytes).
constexpr uint64_t per_message_overhead = 256;
constexpr const char* json_type = "application/json";
constexpr const char* protobuf_type = "application/x-protobuf";

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

using door_atom = caf::atom_constant<caf::atom("door")>;
using metrics_atom = caf::atom_constant<caf::atom("metrics")>;

/// vhost name -> its agent; filled by install_agents before any request.
using agent_map = std::unordered_map<std::string, caf::actor>;

struct agent_state {
  static inline const char* name = "management";
  broker* node = nullptr;
  const vhost_ref* home = nullptr; ///< The vhost this agent serves.
  int64_t started_at = 0;
  std::shared_ptr<const agent_map> agents;
};

using agent_self = caf::stateful_actor<agent_state>*;

/// One request in progress: replies happen after asynchronous queries.
struct call {
  agent_self self = nullptr;
  std::string reply_to;
  std::optional<std::string> correlation_id;
  bool binary = false;
  std::string user;
  bool admin = false;
  const config::user* account = nullptr;
  const vhost_ref* vhost = nullptr; ///< The vhost the request targets.
  Request req;
  Response resp;
  /// Set for the service door: receives the response instead of reply_to.
  std::function<void(Response&)> deliver;
  /// Internal callers (metrics): one page holds every object.
  bool unlimited = false;
};

using call_ptr = std::shared_ptr<call>;

// -- publishing ---------------------------------------------------------------

/// Routes a message the agent makes (reply or event) in `vh`.
void publish(agent_self self, const vhost_ref& vh, const std::string& exchange,
             const std::string& key, pr::basic_properties props,
             std::string body) {
  std::vector<caf::actor> targets;
  vh.table->route(exchange, key, nullptr, targets);
  if (targets.empty())
    return;
  auto msg = std::make_shared<message>();
  msg->exchange = exchange;
  msg->routing_key = key;
  msg->properties = std::move(props);
  msg->body = std::move(body);
  msg->published_at = now_ms();
  message_ptr m = std::move(msg);
  for (auto& t : targets)
    if (t != self) // An exchange-to-exchange loop back into an agent.
      self->send(t, enqueue_atom::value, enqueue_batch{{m}, {}});
}

std::string to_json(const gp::Message& m) {
  gp::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  auto st = gp::util::MessageToJsonString(m, &out, o);
  if (!st.ok())
    FLOTILLA_LOG(error, "management: cannot print JSON: " << st.ToString());
  return out;
}

/// Sends the response of `c` (status 200 unless set).
void finish(const call_ptr& c) {
  auto& st = c->self->state;
  if (c->resp.status() == 0)
    c->resp.set_status(200);
  if (c->deliver) {
    c->deliver(c->resp);
    return;
  }
  std::string body;
  pr::basic_properties props;
  if (c->binary) {
    c->resp.SerializeToString(&body);
    props.content_type = protobuf_type;
  } else {
    body = to_json(c->resp);
    props.content_type = json_type;
  }
  props.correlation_id = c->correlation_id;
  props.app_id = "flotilla";
  props.type = "response";
  pr::field_table headers;
  headers.set("status",
              pr::field_value{static_cast<int32_t>(c->resp.status())});
  props.headers = std::move(headers);
  // Qpid's "EXCHANGE/KEY" reply address, for requesters on another broker:
  // the reply crosses back over a route on that exchange.
  auto slash = c->reply_to.find('/');
  if (slash != std::string::npos && slash > 0
      && st.home->table->find_exchange(c->reply_to.substr(0, slash))) {
    publish(c->self, *st.home, c->reply_to.substr(0, slash),
            c->reply_to.substr(slash + 1), std::move(props), std::move(body));
    return;
  }
  publish(c->self, *st.home, "", c->reply_to, std::move(props),
          std::move(body));
}

void fail(const call_ptr& c, uint32_t status, const std::string& text) {
  c->resp.Clear();
  c->resp.set_status(status);
  c->resp.set_error(text);
  finish(c);
}

uint32_t status_of(errc e) {
  switch (e) {
    case errc::none:
      return 200;
    case errc::not_found:
      return 404;
    case errc::access_refused:
      return 403;
    case errc::precondition_failed:
      return 406;
    case errc::resource_locked:
      return 409;
    case errc::command_invalid:
    case errc::syntax_error:
      return 400;
    case errc::not_allowed:
      return 405;
    case errc::not_implemented:
      return 501;
    default:
      return 500;
  }
}

// -- names
// ----------------------------------------------------------------------

const char* kind_name(Kind k) {
  switch (k) {
    case BROKER:
      return "broker";
    case VHOST:
      return "vhost";
    case EXCHANGE:
      return "exchange";
    case QUEUE:
      return "queue";
    case BINDING:
      return "binding";
    case CONNECTION:
      return "connection";
    case CHANNEL:
      return "channel";
    case CONSUMER:
      return "consumer";
    case USER:
      return "user";
    case LINK:
      return "link";
    case BRIDGE:
      return "bridge";
    case HA_REPLICATOR:
      return "ha_replicator";
    case CLUSTER_MEMBER:
      return "cluster_member";
    case ACTOR:
      return "actor";
    default:
      return "(no kind)";
  }
}

std::string method_name(Method m) {
  auto s = Method_Name(m);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return std::tolower(c);
  });
  return s;
}

std::string in_vhost(const call_ptr& c) {
  return "in vhost '" + c->vhost->name + "'";
}

bool builtin_exchange(const std::string& name) {
  return name.empty() || name.compare(0, 4, "amq.") == 0
         || name == "qmf.default.direct" || name == "qmf.default.topic";
}

/// Bindings of the agents (destination name "") are not shown.
bool agent_binding(const binding& b) {
  return !b.dest.to_exchange && b.dest.name.empty();
}

bool matches(const std::string& pattern, const std::string& name) {
  return pattern.empty() || fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::string string_arg(const pr::field_table& args, const char* key) {
  if (auto* v = args.find(key))
    if (auto* s = v->as_string())
      return *s;
  return {};
}

// -- fan-out
// --------------------------------------------------------------------

/// Asks every actor in `targets` for its statistics (mgmt_atom) and calls
/// `done` with the replies, parallel to `targets` (nullopt for an actor that
/// died or timed out).
template<class Reply>
void gather(agent_self self, const std::vector<caf::actor>& targets,
            std::function<void(std::vector<std::optional<Reply>>&)> done) {
  if (targets.empty()) {
    std::vector<std::optional<Reply>> none;
    done(none);
    return;
  }
  struct pending {
    std::vector<std::optional<Reply>> replies;
    size_t left;
    std::function<void(std::vector<std::optional<Reply>>&)> done;
  };
  auto p = std::make_shared<pending>();
  p->replies.resize(targets.size());
  p->left = targets.size();
  p->done = std::move(done);
  for (size_t i = 0; i < targets.size(); ++i) {
    self->request(targets[i], stats_timeout, mgmt_atom::value)
      .then(
        [p, i](Reply& r) {
          p->replies[i] = std::move(r);
          if (--p->left == 0)
            p->done(p->replies);
        },
        [p](caf::error&) {
          if (--p->left == 0)
            p->done(p->replies);
        });
  }
}

using queue_replies = std::vector<std::optional<queue_stats>>;
using connection_replies = std::vector<std::optional<connection_stats>>;

/// Collects the statistics of every connection open on `vhost` (all vhosts
/// when null), with their actors.
void gather_connections(
  agent_self self, const vhost_ref* vhost,
  std::function<void(std::vector<std::pair<caf::actor, connection_stats>>&)>
    done) {
  auto actors = self->state.node->connections();
  gather<connection_stats>(
    self, actors, [actors, vhost, done](connection_replies& replies) {
      std::vector<std::pair<caf::actor, connection_stats>> result;
      for (size_t i = 0; i < replies.size(); ++i) {
        if (!replies[i] || replies[i]->vhost.empty())
          continue;
        if (vhost != nullptr && replies[i]->vhost != vhost->name)
          continue;
        result.emplace_back(actors[i], std::move(*replies[i]));
      }
      std::sort(result.begin(), result.end(), [](auto& a, auto& b) {
        return a.second.id < b.second.id;
      });
      done(result);
    });
}

// -- objects
// --------------------------------------------------------------------

void fill(const vhost_ref& vh, const exchange_entry& x, Exchange& out) {
  out.set_vhost(vh.name);
  out.set_name(x.name);
  out.set_type(to_string(x.kind));
  out.set_durable(x.durable);
  out.set_auto_delete(x.auto_delete);
  out.set_internal(x.internal);
  out.set_alternate_exchange(x.alternate_exchange);
  to_struct(x.arguments, *out.mutable_arguments());
  out.set_replicate(string_arg(x.arguments, "qpid.replicate"));
  out.set_bindings(x.binding_count());
  out.set_builtin(builtin_exchange(x.name));
  out.set_messages_in(x.messages_in.load(std::memory_order_relaxed));
  out.set_messages_out(x.messages_out.load(std::memory_order_relaxed));
  out.set_unroutable(x.unroutable.load(std::memory_order_relaxed));
}

void fill(const vhost_ref& vh, const queue_entry& q, Queue& out) {
  out.set_vhost(vh.name);
  out.set_name(q.name);
  out.set_durable(q.durable);
  out.set_auto_delete(q.auto_delete);
  out.set_exclusive(q.exclusive);
  out.set_owner_connection(q.owner_connection);
  to_struct(q.arguments, *out.mutable_arguments());
  out.set_alternate_exchange(string_arg(q.arguments, "x-dead-letter-exchange"));
  out.set_replicate(string_arg(q.arguments, "qpid.replicate"));
}

void fill_rates(double publish, double deliver, double ack, double window,
                Rates& out) {
  out.set_publish(publish);
  out.set_deliver(deliver);
  out.set_ack(ack);
  out.set_window_seconds(window);
}

void fill(const queue_stats& s, Queue& out) {
  out.set_messages(s.messages_ready + s.messages_unacked);
  out.set_messages_ready(s.messages_ready);
  out.set_messages_unacked(s.messages_unacked);
  out.set_consumers(s.consumers);
  out.set_bytes_ready(s.bytes_ready);
  out.set_memory_bytes(s.bytes_ready
                       + (s.messages_ready + s.messages_unacked)
                           * per_message_overhead);
  auto& m = *out.mutable_stats();
  m.set_published(s.published);
  m.set_delivered(s.delivered);
  m.set_redelivered(s.redelivered);
  m.set_acked(s.acked);
  m.set_rejected(s.rejected);
  m.set_dead_lettered(s.dead_lettered);
  m.set_expired(s.expired);
  m.set_purged(s.purged);
  m.set_overflowed(s.overflowed);
  m.set_discarded(s.discarded);
  m.set_requeued(s.requeued);
  fill_rates(s.publish_rate, s.deliver_rate, s.ack_rate, s.rate_window_seconds,
             *m.mutable_rates());
}

void fill(const connection_stats& s, Connection& out) {
  out.set_id(s.id);
  out.set_peer(s.peer);
  out.set_user(s.user);
  out.set_vhost(s.vhost);
  out.set_connected_at_ms(s.connected_at_ms);
  out.set_channels(static_cast<uint32_t>(s.channels.size()));
  out.set_consumers(static_cast<uint32_t>(s.consumers.size()));
  out.set_heartbeat(s.heartbeat);
  out.set_frame_max(s.frame_max);
  out.set_published(s.published);
  out.set_delivered(s.delivered);
  out.set_published_bytes(s.published_bytes);
  out.set_delivered_bytes(s.delivered_bytes);
  fill_rates(s.publish_rate, s.deliver_rate, 0, s.rate_window_seconds,
             *out.mutable_rates());
  out.set_client_name(s.client_name);
  out.set_client_product(s.client_product);
}

void fill(const config::user& u, User& out) {
  out.set_name(u.name);
  for (auto& t : u.tags)
    out.add_tags(t);
  if (u.vhosts.empty())
    out.add_vhosts("*");
  for (auto& v : u.vhosts)
    out.add_vhosts(v);
}

void fill_broker(agent_self self, Broker& out) {
  auto& st = self->state;
  out.set_node(st.node->limits().node_name);
  out.set_cluster(st.node->limits().cluster_name);
  out.set_version(std::string{config::version()});
  out.set_uptime_ms(static_cast<uint64_t>(now_ms() - st.started_at));
  out.set_memory_bytes(resident_bytes());
  for (auto* vh : st.node->vhosts())
    out.add_vhosts(vh->name);
  out.set_fabric_port(st.node->limits().fabric_port);
  out.set_fabric_interface(st.node->limits().fabric_interface);
  out.set_federation_id(st.node->limits().federation_id);
}

// -- paging
// ---------------------------------------------------------------------

struct window {
  size_t begin = 0;
  size_t end = 0;
};

/// Validates the paging options, fills the paging fields of the response
/// and returns the slice of `total` objects to return.
window paginate(const call_ptr& c, size_t total) {
  auto& o = c->req.list();
  uint32_t size = o.page_size() == 0 ? default_page_size
                                     : std::min(o.page_size(), max_page_size);
  if (c->unlimited)
    size = static_cast<uint32_t>(std::max<size_t>(total, 1));
  uint32_t page = o.page() == 0 ? 1 : o.page();
  auto& r = c->resp;
  r.set_total(total);
  r.set_page(page);
  r.set_page_size(size);
  r.set_page_count(static_cast<uint32_t>((total + size - 1) / size));
  window w;
  w.begin = std::min<size_t>(total, size_t{page - 1} * size);
  w.end = std::min<size_t>(total, w.begin + size);
  return w;
}

std::string sort_key(const call_ptr& c) {
  return c->req.list().sort().empty() ? "name" : c->req.list().sort();
}

/// Sorts `items` by `less`, reversed on request (stable: ties keep `items`'
/// order, which callers make the name order).
template<class T, class Less>
void sort_items(const call_ptr& c, std::vector<T>& items, Less less) {
  if (c->req.list().sort_reverse())
    std::stable_sort(items.begin(), items.end(), [&](const T& a, const T& b) {
      return less(b, a);
    });
  else
    std::stable_sort(items.begin(), items.end(), less);
}

// -- list
// -------------------------------------------------------------------------

/// Returns the value of queue statistic `key`, or nullopt if unknown.
std::optional<double> queue_metric(const std::string& key,
                                   const queue_stats& s) {
  if (key == "messages")
    return static_cast<double>(s.messages_ready + s.messages_unacked);
  if (key == "messages_ready")
    return static_cast<double>(s.messages_ready);
  if (key == "messages_unacked")
    return static_cast<double>(s.messages_unacked);
  if (key == "consumers")
    return static_cast<double>(s.consumers);
  if (key == "bytes")
    return static_cast<double>(s.bytes_ready);
  if (key == "publish_rate")
    return s.publish_rate;
  if (key == "deliver_rate")
    return s.deliver_rate;
  if (key == "ack_rate")
    return s.ack_rate;
  return std::nullopt;
}

void list_queues(const call_ptr& c) {
  auto all = c->vhost->table->queues();
  auto& pattern = c->req.list().pattern();
  std::vector<queue_entry_ptr> items;
  items.reserve(all.size());
  for (auto& q : all)
    if (matches(pattern, q->name))
      items.push_back(std::move(q));
  all.clear();
  std::sort(items.begin(), items.end(), [](auto& a, auto& b) {
    return a->name < b->name;
  });
  auto key = sort_key(c);
  auto emit = [c](const queue_entry_ptr& q, const queue_stats* s) {
    auto& out = *c->resp.add_objects()->mutable_queue();
    fill(*c->vhost, *q, out);
    if (s != nullptr)
      fill(*s, out);
  };
  if (key == "name") {
    if (c->req.list().sort_reverse())
      std::reverse(items.begin(), items.end());
    auto w = paginate(c, items.size());
    std::vector<queue_entry_ptr> page(items.begin() + w.begin,
                                      items.begin() + w.end);
    std::vector<caf::actor> actors;
    for (auto& q : page)
      actors.push_back(q->actor);
    gather<queue_stats>(c->self, actors,
                        [c, page, emit](queue_replies& replies) {
                          for (size_t i = 0; i < page.size(); ++i)
                            emit(page[i], replies[i] ? &*replies[i] : nullptr);
                          finish(c);
                        });
    return;
  }
  if (!queue_metric(key, queue_stats{})) {
    fail(c, 400,
         "unknown sort key '" + key
           + "' for queues; expected name, messages, messages_ready, "
             "messages_unacked, consumers, bytes, publish_rate, "
             "deliver_rate or ack_rate");
    return;
  }
  // Sorting by a statistic needs every matching queue's statistics.
  std::vector<caf::actor> actors;
  actors.reserve(items.size());
  for (auto& q : items)
    actors.push_back(q->actor);
  gather<queue_stats>(
    c->self, actors, [c, items, key, emit](queue_replies& replies) {
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
      auto metric = [&](size_t i) {
        return replies[i] ? *queue_metric(key, *replies[i]) : -1.0;
      };
      sort_items(c, order, [&](size_t a, size_t b) {
        return metric(a) < metric(b);
      });
      auto w = paginate(c, order.size());
      for (size_t k = w.begin; k < w.end; ++k) {
        auto i = order[k];
        emit(items[i], replies[i] ? &*replies[i] : nullptr);
      }
      finish(c);
    });
}

void list_exchanges(const call_ptr& c) {
  auto key = sort_key(c);
  if (key != "name" && key != "type" && key != "bindings") {
    fail(c, 400,
         "unknown sort key '" + key
           + "' for exchanges; expected name, type or bindings");
    return;
  }
  std::vector<exchange_entry_ptr> items;
  for (auto& x : c->vhost->table->exchanges())
    if (matches(c->req.list().pattern(), x->name))
      items.push_back(std::move(x));
  std::sort(items.begin(), items.end(), [](auto& a, auto& b) {
    return a->name < b->name;
  });
  if (key == "name")
    sort_items(c, items, [](auto& a, auto& b) {
      return a->name < b->name;
    });
  else if (key == "type")
    sort_items(c, items, [](auto& a, auto& b) {
      return std::string{to_string(a->kind)} < to_string(b->kind);
    });
  else
    sort_items(c, items, [](auto& a, auto& b) {
      return a->binding_count() < b->binding_count();
    });
  auto w = paginate(c, items.size());
  for (size_t i = w.begin; i < w.end; ++i)
    fill(*c->vhost, *items[i], *c->resp.add_objects()->mutable_exchange());
  finish(c);
}

struct binding_row {
  std::string source;
  binding b;
};

std::vector<binding_row> all_bindings(const vhost_ref& vh) {
  std::vector<binding_row> rows;
  for (auto& x : vh.table->exchanges())
    for (auto& b : x->bindings())
      if (!agent_binding(b))
        rows.push_back(binding_row{x->name, std::move(b)});
  return rows;
}

void fill(const vhost_ref& vh, const binding_row& r, Binding& out) {
  out.set_vhost(vh.name);
  out.set_source(r.source);
  out.set_destination(r.b.dest.name);
  out.set_destination_type(r.b.dest.to_exchange ? "exchange" : "queue");
  out.set_routing_key(r.b.key);
  to_struct(r.b.arguments, *out.mutable_arguments());
}

void list_bindings(const call_ptr& c) {
  auto key = sort_key(c);
  if (key != "name" && key != "source" && key != "destination") {
    fail(c, 400,
         "unknown sort key '" + key
           + "' for bindings; expected name, source or destination");
    return;
  }
  auto& pattern = c->req.list().pattern();
  std::vector<binding_row> items;
  for (auto& r : all_bindings(*c->vhost))
    if (matches(pattern, r.source) || matches(pattern, r.b.dest.name))
      items.push_back(std::move(r));
  auto by_source = [](const binding_row& a, const binding_row& b) {
    return std::tie(a.source, a.b.dest.name, a.b.key)
           < std::tie(b.source, b.b.dest.name, b.b.key);
  };
  auto by_dest = [](const binding_row& a, const binding_row& b) {
    return std::tie(a.b.dest.name, a.source, a.b.key)
           < std::tie(b.b.dest.name, b.source, b.b.key);
  };
  if (key == "destination")
    sort_items(c, items, by_dest);
  else
    sort_items(c, items, by_source);
  auto w = paginate(c, items.size());
  for (size_t i = w.begin; i < w.end; ++i)
    fill(*c->vhost, items[i], *c->resp.add_objects()->mutable_binding());
  finish(c);
}

void list_connections(const call_ptr& c) {
  auto key = sort_key(c);
  if (key != "name" && key != "id" && key != "published" && key != "delivered"
      && key != "channels") {
    fail(c, 400,
         "unknown sort key '" + key
           + "' for connections; expected name, id, published, delivered or "
             "channels");
    return;
  }
  gather_connections(c->self, c->vhost, [c, key](auto& all) {
    std::vector<connection_stats> items;
    for (auto& kv : all)
      if (matches(c->req.list().pattern(), kv.second.peer)
          || matches(c->req.list().pattern(), kv.second.client_name))
        items.push_back(std::move(kv.second));
    using cs = connection_stats;
    if (key == "published")
      sort_items(c, items, [](const cs& a, const cs& b) {
        return a.published < b.published;
      });
    else if (key == "delivered")
      sort_items(c, items, [](const cs& a, const cs& b) {
        return a.delivered < b.delivered;
      });
    else if (key == "channels")
      sort_items(c, items, [](const cs& a, const cs& b) {
        return a.channels.size() < b.channels.size();
      });
    else
      sort_items(c, items, [](const cs& a, const cs& b) {
        return a.id < b.id;
      });
    auto w = paginate(c, items.size());
    for (size_t i = w.begin; i < w.end; ++i)
      fill(items[i], *c->resp.add_objects()->mutable_connection());
    finish(c);
  });
}

void list_channels(const call_ptr& c) {
  gather_connections(c->self, c->vhost, [c](auto& all) {
    std::vector<Channel> items;
    for (auto& kv : all) {
      auto& s = kv.second;
      if (!matches(c->req.list().pattern(), s.peer))
        continue;
      for (auto& ch : s.channels) {
        Channel out;
        out.set_connection(s.id);
        out.set_number(ch.number);
        out.set_user(s.user);
        out.set_vhost(s.vhost);
        out.set_prefetch(ch.prefetch);
        out.set_global_prefetch(ch.global_prefetch);
        out.set_unacked(ch.unacked);
        out.set_consumers(ch.consumers);
        out.set_confirm(ch.confirm);
        out.set_transactional(ch.transactional);
        out.set_flow(ch.flow);
        items.push_back(std::move(out));
      }
    }
    sort_items(c, items, [](const Channel& a, const Channel& b) {
      return std::make_pair(a.connection(), a.number())
             < std::make_pair(b.connection(), b.number());
    });
    auto w = paginate(c, items.size());
    for (size_t i = w.begin; i < w.end; ++i)
      *c->resp.add_objects()->mutable_channel() = std::move(items[i]);
    finish(c);
  });
}

void list_consumers(const call_ptr& c) {
  gather_connections(c->self, c->vhost, [c](auto& all) {
    std::unordered_map<caf::actor, std::string> names;
    bool any = false;
    for (auto& kv : all)
      any = any || !kv.second.consumers.empty();
    if (any)
      for (auto& q : c->vhost->table->queues())
        names.emplace(q->actor, q->name);
    std::vector<Consumer> items;
    for (auto& kv : all) {
      auto& s = kv.second;
      for (auto& cons : s.consumers) {
        auto n = names.find(cons.queue);
        auto queue = n != names.end() ? n->second : std::string{};
        if (!matches(c->req.list().pattern(), queue)
            && !matches(c->req.list().pattern(), cons.tag))
          continue;
        Consumer out;
        out.set_connection(s.id);
        out.set_channel(cons.channel);
        out.set_tag(cons.tag);
        out.set_queue(queue);
        out.set_vhost(s.vhost);
        out.set_ack_required(!cons.no_ack);
        out.set_user(s.user);
        items.push_back(std::move(out));
      }
    }
    sort_items(c, items, [](const Consumer& a, const Consumer& b) {
      return std::make_pair(a.queue(), a.tag())
             < std::make_pair(b.queue(), b.tag());
    });
    auto w = paginate(c, items.size());
    for (size_t i = w.begin; i < w.end; ++i)
      *c->resp.add_objects()->mutable_consumer() = std::move(items[i]);
    finish(c);
  });
}

void list_vhosts(const call_ptr& c) {
  gather_connections(c->self, nullptr, [c](auto& all) {
    std::vector<const vhost_ref*> items;
    for (auto* vh : c->self->state.node->vhosts())
      if ((c->account == nullptr || c->account->may_access(vh->name))
          && matches(c->req.list().pattern(), vh->name))
        items.push_back(vh);
    sort_items(c, items, [](auto* a, auto* b) {
      return a->name < b->name;
    });
    auto w = paginate(c, items.size());
    for (size_t i = w.begin; i < w.end; ++i) {
      auto& out = *c->resp.add_objects()->mutable_vhost();
      out.set_name(items[i]->name);
      out.set_queues(items[i]->table->queue_count());
      out.set_exchanges(items[i]->table->exchange_count());
      out.set_connections(static_cast<uint64_t>(
        std::count_if(all.begin(), all.end(), [&](auto& kv) {
          return kv.second.vhost == items[i]->name;
        })));
    }
    finish(c);
  });
}

void list_users(const call_ptr& c) {
  std::vector<const config::user*> items;
  for (auto& u : c->self->state.node->users().users())
    if (matches(c->req.list().pattern(), u.name))
      items.push_back(&u);
  sort_items(c, items, [](auto* a, auto* b) {
    return a->name < b->name;
  });
  auto w = paginate(c, items.size());
  for (size_t i = w.begin; i < w.end; ++i)
    fill(*items[i], *c->resp.add_objects()->mutable_user());
  finish(c);
}

// -- actors
// ------------------------------------------------------------------------

/// One row of LIST ACTOR before its statistics arrive.
struct actor_row {
  Actor out;
  caf::actor handle;
  bool is_queue = false;
};

bool actor_sort_key(const std::string& key) {
  return key == "name" || key == "kind" || key == "vhost" || key == "mailbox"
         || key == "messages" || key == "in_rate" || key == "out_rate";
}

double actor_metric(const std::string& key, const Actor& a) {
  if (key == "mailbox")
    return static_cast<double>(a.mailbox());
  if (key == "messages")
    return static_cast<double>(a.messages());
  if (key == "in_rate")
    return a.in_rate();
  return a.out_rate();
}

void fill_actor(const queue_stats* s, Actor& out) {
  if (s == nullptr) {
    out.set_state("not answering");
    return;
  }
  out.set_state("running");
  out.set_mailbox(s->mailbox);
  out.set_messages(s->messages_ready + s->messages_unacked);
  out.set_in_rate(s->publish_rate);
  out.set_out_rate(s->deliver_rate);
  out.set_in_total(s->published);
  out.set_out_total(s->delivered);
}

/// LIST ACTOR: every actor of the vhosts the user may open, plus the
/// node-wide ones. Statistics come from the queues and connections
/// themselves (mgmt_atom); a name sort asks only the queues of the page.
void list_actors(const call_ptr& c) {
  auto key = sort_key(c);
  if (!actor_sort_key(key)) {
    fail(c, 400,
         "unknown sort key '" + key
           + "' for actors; expected name, kind, vhost, mailbox, messages, "
             "in_rate or out_rate");
    return;
  }
  gather_connections(c->self, nullptr, [c, key](auto& conns) {
    auto* node = c->self->state.node;
    auto& node_name = node->limits().node_name;
    auto& pattern = c->req.list().pattern();
    std::vector<actor_row> rows;
    auto add = [&](const char* kind, const std::string& name,
                   const std::string& vhost, const caf::actor& h) {
      if (!matches(pattern, name) && !matches(pattern, kind))
        return static_cast<actor_row*>(nullptr);
      actor_row r;
      r.out.set_kind(kind);
      r.out.set_name(name);
      r.out.set_node(node_name);
      r.out.set_vhost(vhost);
      r.out.set_state("-");
      r.out.set_id(h ? h.id() : 0);
      r.handle = h;
      rows.push_back(std::move(r));
      return &rows.back();
    };
    if (node->store())
      add("store", "journal", "", node->store());
    for (auto* vh : node->vhosts()) {
      if (c->account != nullptr && !c->account->may_access(vh->name))
        continue;
      add("vhost", vh->name, vh->name, vh->actor);
      if (auto& agents = c->self->state.agents) {
        auto i = agents->find(vh->name);
        if (i != agents->end())
          if (auto* r
              = add("management", "agent " + vh->name, vh->name, i->second);
              r != nullptr
              && i->second == caf::actor_cast<caf::actor>(c->self)) {
            // The answering agent knows its own mailbox.
            r->out.set_state("running");
            r->out.set_mailbox(c->self->mailbox().size());
            r->out.add_measured("mailbox");
          }
      }
      for (auto& x : vh->table->exchanges())
        if (auto* r = add("exchange", x->name.empty() ? "(default)" : x->name,
                          vh->name, x->actor)) {
          r->out.set_messages(x->binding_count());
          r->out.add_measured("messages");
        }
      for (auto& q : vh->table->queues())
        if (auto* r = add("queue", q->name, vh->name, q->actor)) {
          r->is_queue = true;
          for (auto* m : {"mailbox", "messages", "rates", "totals"})
            r->out.add_measured(m);
        }
    }
    for (auto& [handle, s] : conns) {
      if (c->account != nullptr && !c->account->may_access(s.vhost))
        continue;
      auto name = s.peer + " (id " + std::to_string(s.id) + ")";
      if (auto* r = add("connection", name, s.vhost, handle)) {
        r->out.set_state("running");
        r->out.set_mailbox(s.mailbox);
        r->out.set_in_total(s.published);
        r->out.set_out_total(s.delivered);
        r->out.add_measured("mailbox");
        r->out.add_measured("totals");
      }
    }
    auto by_name = [](const actor_row& a, const actor_row& b) {
      return std::tie(a.out.name(), a.out.kind(), a.out.vhost())
             < std::tie(b.out.name(), b.out.kind(), b.out.vhost());
    };
    std::sort(rows.begin(), rows.end(), by_name);
    auto emit_page = [c](std::vector<actor_row>& rows) {
      auto w = paginate(c, rows.size());
      std::vector<size_t> asked;
      std::vector<caf::actor> handles;
      for (size_t i = w.begin; i < w.end; ++i)
        if (rows[i].is_queue && rows[i].out.state() == "-") {
          asked.push_back(i);
          handles.push_back(rows[i].handle);
        }
      auto shared = std::make_shared<std::vector<actor_row>>(std::move(rows));
      gather<queue_stats>(
        c->self, handles, [c, shared, asked, w](queue_replies& replies) {
          auto& rows = *shared;
          for (size_t k = 0; k < asked.size(); ++k)
            fill_actor(replies[k] ? &*replies[k] : nullptr, rows[asked[k]].out);
          for (size_t i = w.begin; i < w.end; ++i)
            *c->resp.add_objects()->mutable_actor() = std::move(rows[i].out);
          finish(c);
        });
    };
    if (key == "name" || key == "kind" || key == "vhost") {
      if (key == "kind")
        sort_items(c, rows, [](const actor_row& a, const actor_row& b) {
          return a.out.kind() < b.out.kind();
        });
      else if (key == "vhost")
        sort_items(c, rows, [](const actor_row& a, const actor_row& b) {
          return a.out.vhost() < b.out.vhost();
        });
      else if (c->req.list().sort_reverse())
        std::reverse(rows.begin(), rows.end());
      return emit_page(rows);
    }
    // Sorting by a statistic needs every queue's statistics first.
    std::vector<size_t> queues;
    std::vector<caf::actor> handles;
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].is_queue) {
        queues.push_back(i);
        handles.push_back(rows[i].handle);
      }
    auto shared = std::make_shared<std::vector<actor_row>>(std::move(rows));
    gather<queue_stats>(
      c->self, handles,
      [c, key, shared, queues, emit_page](queue_replies& replies) {
        auto& rows = *shared;
        for (size_t k = 0; k < queues.size(); ++k)
          fill_actor(replies[k] ? &*replies[k] : nullptr, rows[queues[k]].out);
        sort_items(c, rows, [&key](const actor_row& a, const actor_row& b) {
          return actor_metric(key, a.out) < actor_metric(key, b.out);
        });
        emit_page(rows);
      });
  });
}

// -- federation (links and bridges live in the federation hub) ----------------

using fed_mgmt_atom = caf::atom_constant<caf::atom("fedmgmt")>;

bool federation_kind(const call_ptr& c) {
  return c->req.kind() == LINK || c->req.kind() == BRIDGE;
}

/// Hands a link or bridge request to the federation hub (federation/), which
/// answers a Response; protobuf bytes keep the two libraries independent.
void ask_federation(const call_ptr& c) {
  auto hub = c->self->system().registry().get(caf::atom("federation"));
  if (!hub) {
    if (c->req.method() == LIST) {
      paginate(c, 0);
      return finish(c);
    }
    return fail(c, 503, "federation is not running on this node");
  }
  std::string bytes;
  c->req.SerializeToString(&bytes);
  c->self
    ->request(caf::actor_cast<caf::actor>(hub), stats_timeout,
              fed_mgmt_atom::value, std::move(bytes), c->vhost->name)
    .then(
      [c](std::string& out) {
        Response r;
        if (!r.ParseFromString(out))
          return fail(c, 500, "bad answer from the federation hub");
        c->resp = std::move(r);
        finish(c);
      },
      [c](caf::error& e) {
        fail(c, 503, "federation hub: " + c->self->system().render(e));
      });
}

void list(const call_ptr& c) {
  if (federation_kind(c))
    return ask_federation(c);
  switch (c->req.kind()) {
    case QUEUE:
      return list_queues(c);
    case EXCHANGE:
      return list_exchanges(c);
    case BINDING:
      return list_bindings(c);
    case CONNECTION:
      return list_connections(c);
    case CHANNEL:
      return list_channels(c);
    case CONSUMER:
      return list_consumers(c);
    case VHOST:
      return list_vhosts(c);
    case USER:
      return list_users(c);
    case BROKER:
      paginate(c, 1);
      fill_broker(c->self, *c->resp.add_objects()->mutable_broker());
      return finish(c);
    case ACTOR:
      return list_actors(c);
    case HA_REPLICATOR:
    case CLUSTER_MEMBER:
      // HA and clustering do not exist yet: nothing to list.
      paginate(c, 0);
      return finish(c);
    default:
      return fail(c, 400,
                  "list needs a kind: queue, exchange, binding, connection, "
                  "channel, consumer, vhost, user, broker, actor, link, "
                  "bridge, ha_replicator or cluster_member");
  }
}

// -- get
// ----------------------------------------------------------------------------

/// Parses a connection id; returns 0 if `text` is not one.
uint64_t parse_id(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  return std::strtoull(text.c_str(), nullptr, 10);
}

void get(const call_ptr& c) {
  if (federation_kind(c))
    return ask_federation(c);
  auto& name = c->req.name();
  switch (c->req.kind()) {
    case QUEUE: {
      auto q = c->vhost->table->find_queue(name);
      if (!q)
        return fail(c, 404, "no queue '" + name + "' " + in_vhost(c));
      gather<queue_stats>(c->self, {q->actor}, [c, q](queue_replies& r) {
        auto& out = *c->resp.add_objects()->mutable_queue();
        fill(*c->vhost, *q, out);
        if (r[0])
          fill(*r[0], out);
        finish(c);
      });
      return;
    }
    case EXCHANGE: {
      auto x = c->vhost->table->find_exchange(name);
      if (!x)
        return fail(c, 404, "no exchange '" + name + "' " + in_vhost(c));
      fill(*c->vhost, *x, *c->resp.add_objects()->mutable_exchange());
      return finish(c);
    }
    case CONNECTION: {
      auto id = parse_id(name);
      if (id == 0)
        return fail(c, 400,
                    "a connection is named by its id, a number; got '" + name
                      + "'");
      gather_connections(c->self, c->vhost, [c, id](auto& all) {
        for (auto& kv : all)
          if (kv.second.id == id) {
            fill(kv.second, *c->resp.add_objects()->mutable_connection());
            return finish(c);
          }
        fail(c, 404, "no connection " + std::to_string(id) + " " + in_vhost(c));
      });
      return;
    }
    case VHOST: {
      auto* vh = c->self->state.node->find_vhost(name);
      if (!vh || (c->account && !c->account->may_access(name)))
        return fail(c, 404, "no vhost '" + name + "'");
      auto& out = *c->resp.add_objects()->mutable_vhost();
      out.set_name(vh->name);
      out.set_queues(vh->table->queue_count());
      out.set_exchanges(vh->table->exchange_count());
      return finish(c);
    }
    case USER: {
      auto* u = c->self->state.node->users().find(name);
      if (!u)
        return fail(c, 404, "no user '" + name + "'");
      fill(*u, *c->resp.add_objects()->mutable_user());
      return finish(c);
    }
    case BROKER:
      fill_broker(c->self, *c->resp.add_objects()->mutable_broker());
      return finish(c);
    default:
      return fail(c, 400,
                  std::string{"get is not supported for "}
                    + kind_name(c->req.kind())
                    + "; use list (with a pattern) instead");
  }
}

// -- changes
// ----------------------------------------------------------------------

/// Sends `req` to the target vhost actor and answers with its outcome:
/// `ok_status` on success, else the error's status and text.
template<class Req>
void ask_vhost(const call_ptr& c, Req req, uint32_t ok_status,
               bool report_count = false) {
  c->self->request(c->vhost->actor, stats_timeout, std::move(req))
    .then(
      [c, ok_status, report_count](op_result& r) {
        if (!r.ok())
          return fail(c, status_of(r.code), r.text);
        c->resp.set_status(ok_status);
        if (report_count)
          c->resp.set_message_count(r.message_count);
        finish(c);
      },
      [c](caf::error& e) {
        fail(c, 503,
             "the vhost did not answer: " + c->self->system().render(e));
      });
}

/// Reads the arguments of a create request, adding the Qpid-style options.
bool arguments_of(const call_ptr& c, const gp::Struct& in,
                  const std::string& alternate, const char* alternate_key,
                  const std::string& replicate, pr::field_table& out) {
  std::string error;
  if (!from_struct(in, out, error)) {
    fail(c, 400, error);
    return false;
  }
  if (!alternate.empty())
    out.set(alternate_key, pr::field_value{alternate});
  if (!replicate.empty()) {
    if (replicate != "none" && replicate != "configuration"
        && replicate != "all") {
      fail(c, 400,
           "replicate must be none, configuration or all; got '" + replicate
             + "'");
      return false;
    }
    out.set("qpid.replicate", pr::field_value{replicate});
  }
  return true;
}

void create(const call_ptr& c) {
  if (federation_kind(c))
    return ask_federation(c);
  switch (c->req.kind()) {
    case QUEUE: {
      auto& spec = c->req.queue();
      auto name = spec.name().empty() ? c->req.name() : spec.name();
      if (name.empty())
        return fail(c, 400, "create queue needs a name");
      if (spec.exclusive())
        return fail(c, 400,
                    "an exclusive queue belongs to the connection that "
                    "declares it and is deleted with it; declare it with "
                    "queue.declare on that connection");
      queue_declare_req req;
      req.name = name;
      req.durable = spec.durable();
      req.auto_delete = spec.auto_delete();
      if (!arguments_of(c, spec.arguments(), spec.alternate_exchange(),
                        "x-dead-letter-exchange", spec.replicate(),
                        req.arguments))
        return;
      bool existed = c->vhost->table->find_queue(name) != nullptr;
      return ask_vhost(c, std::move(req), existed ? 200 : 201);
    }
    case EXCHANGE: {
      auto& spec = c->req.exchange();
      auto name = spec.name().empty() ? c->req.name() : spec.name();
      if (name.empty())
        return fail(c, 400, "create exchange needs a name");
      if (spec.type().empty())
        return fail(c, 400,
                    "create exchange needs a type: direct, fanout, topic or "
                    "headers");
      exchange_declare_req req;
      req.name = name;
      req.type = spec.type();
      req.durable = spec.durable();
      req.auto_delete = spec.auto_delete();
      req.internal = spec.internal();
      if (!arguments_of(c, spec.arguments(), spec.alternate_exchange(),
                        "alternate-exchange", spec.replicate(), req.arguments))
        return;
      bool existed = c->vhost->table->find_exchange(name) != nullptr;
      return ask_vhost(c, std::move(req), existed ? 200 : 201);
    }
    case BINDING: {
      auto& spec = c->req.binding();
      auto& type = spec.destination_type();
      if (!type.empty() && type != "queue" && type != "exchange")
        return fail(c, 400,
                    "destination_type must be queue or exchange; got '" + type
                      + "'");
      if (spec.source().empty() || spec.destination().empty())
        return fail(c, 400, "a binding needs a source and a destination");
      bind_req req;
      req.to_exchange = type == "exchange";
      req.source = spec.source();
      req.destination = spec.destination();
      req.key = spec.routing_key();
      std::string error;
      if (!from_struct(spec.arguments(), req.arguments, error))
        return fail(c, 400, error);
      if (!req.to_exchange)
        if (auto q = c->vhost->table->find_queue(req.destination))
          req.connection_id = q->owner_connection;
      return ask_vhost(c, std::move(req), 201);
    }
    default:
      return fail(c, 400,
                  std::string{"cannot create a "} + kind_name(c->req.kind())
                    + "; create takes queue, exchange or binding");
  }
}

void remove(const call_ptr& c) {
  if (federation_kind(c))
    return ask_federation(c);
  switch (c->req.kind()) {
    case QUEUE: {
      auto name = c->req.name().empty() ? c->req.queue().name() : c->req.name();
      auto q = c->vhost->table->find_queue(name);
      if (!q)
        return fail(c, 404, "no queue '" + name + "' " + in_vhost(c));
      delete_req req;
      req.name = name;
      req.if_unused = c->req.if_unused();
      req.if_empty = c->req.if_empty();
      // Administrators may delete another connection's exclusive queue.
      req.connection_id = q->owner_connection;
      return ask_vhost(c, std::move(req), 200, true);
    }
    case EXCHANGE: {
      auto name
        = c->req.name().empty() ? c->req.exchange().name() : c->req.name();
      if (!c->vhost->table->find_exchange(name))
        return fail(c, 404, "no exchange '" + name + "' " + in_vhost(c));
      delete_req req;
      req.exchange = true;
      req.name = name;
      req.if_unused = c->req.if_unused();
      return ask_vhost(c, std::move(req), 200);
    }
    case BINDING: {
      auto& spec = c->req.binding();
      bool to_exchange = spec.destination_type() == "exchange";
      pr::field_table args;
      std::string error;
      if (!from_struct(spec.arguments(), args, error))
        return fail(c, 400, error);
      auto x = c->vhost->table->find_exchange(spec.source());
      bool found = false;
      if (x)
        for (auto& b : x->bindings())
          found
            = found
              || (b.key == spec.routing_key()
                  && b.dest.to_exchange == to_exchange
                  && b.dest.name == spec.destination() && b.arguments == args);
      if (!found)
        return fail(c, 404,
                    "no binding from '" + spec.source() + "' to "
                      + (to_exchange ? "exchange '" : "queue '")
                      + spec.destination() + "' with key '" + spec.routing_key()
                      + "' " + in_vhost(c));
      bind_req req;
      req.unbind = true;
      req.to_exchange = to_exchange;
      req.source = spec.source();
      req.destination = spec.destination();
      req.key = spec.routing_key();
      req.arguments = std::move(args);
      if (!to_exchange)
        if (auto q = c->vhost->table->find_queue(req.destination))
          req.connection_id = q->owner_connection;
      return ask_vhost(c, std::move(req), 200);
    }
    default:
      return fail(c, 400,
                  std::string{"cannot delete a "} + kind_name(c->req.kind())
                    + "; delete takes queue, exchange or binding");
  }
}

void purge(const call_ptr& c) {
  if (c->req.kind() != QUEUE && c->req.kind() != KIND_UNSPECIFIED)
    return fail(c, 400, "only queues can be purged");
  auto& name = c->req.name();
  auto q = c->vhost->table->find_queue(name);
  if (!q)
    return fail(c, 404, "no queue '" + name + "' " + in_vhost(c));
  delete_req req;
  req.name = name;
  req.purge_only = true;
  req.connection_id = q->owner_connection;
  ask_vhost(c, std::move(req), 200, true);
}

void fill(const message& m, bool redelivered, PeekedMessage& out) {
  constexpr size_t max_body = 4096;
  out.set_exchange(m.exchange);
  out.set_routing_key(m.routing_key);
  out.set_redelivered(redelivered);
  out.set_body_size(m.body.size());
  out.set_body(m.body.substr(0, max_body));
  out.set_body_truncated(m.body.size() > max_body);
  auto& p = m.properties;
  auto& f = *out.mutable_properties()->mutable_fields();
  auto text = [&](const char* k, const std::optional<std::string>& v) {
    if (v)
      f[k].set_string_value(*v);
  };
  auto number = [&](const char* k, auto v) {
    if (v)
      f[k].set_number_value(static_cast<double>(*v));
  };
  text("content_type", p.content_type);
  text("content_encoding", p.content_encoding);
  number("delivery_mode", p.delivery_mode);
  number("priority", p.priority);
  text("correlation_id", p.correlation_id);
  text("reply_to", p.reply_to);
  text("expiration", p.expiration);
  text("message_id", p.message_id);
  number("timestamp", p.timestamp);
  text("type", p.type);
  text("user_id", p.user_id);
  text("app_id", p.app_id);
  text("cluster_id", p.cluster_id);
  if (p.headers)
    to_struct(*p.headers, *out.mutable_headers());
}

/// PEEK QUEUE: the next ready messages, left in place (like RabbitMQ's
/// "get messages" with requeue, but without redelivering anything).
void peek(const call_ptr& c) {
  if (c->req.kind() != QUEUE && c->req.kind() != KIND_UNSPECIFIED)
    return fail(c, 400, "only queues can be peeked at");
  auto& name = c->req.name();
  auto q = c->vhost->table->find_queue(name);
  if (!q)
    return fail(c, 404, "no queue '" + name + "' " + in_vhost(c));
  auto count = c->req.count() == 0 ? 10u : c->req.count();
  if (count > 100)
    return fail(c, 400, "peek shows at most 100 messages");
  c->self->request(q->actor, stats_timeout, peek_atom::value, count)
    .then(
      [c](queue_peek& p) {
        for (size_t i = 0; i < p.messages.size(); ++i)
          fill(*p.messages[i], p.redelivered[i], *c->resp.add_messages());
        c->resp.set_message_count(p.ready);
        finish(c);
      },
      [c, name](caf::error&) {
        fail(c, 404, "queue '" + name + "' did not answer (deleted?)");
      });
}

void close_connection(const call_ptr& c) {
  auto id = parse_id(c->req.name());
  if (id == 0)
    return fail(c, 400,
                "close_connection needs the connection id (a number) as name; "
                "got '"
                  + c->req.name() + "'");
  gather_connections(c->self, c->vhost, [c, id](auto& all) {
    for (auto& kv : all)
      if (kv.second.id == id) {
        auto reason
          = c->req.reason().empty()
              ? "closed by management request of user '" + c->user + "'"
              : c->req.reason();
        c->self->send(kv.first, shutdown_atom::value, reason);
        return finish(c);
      }
    fail(c, 404, "no connection " + std::to_string(id) + " " + in_vhost(c));
  });
}

// -- broker-level queries
// -----------------------------------------------------------

void overview(const call_ptr& c) {
  auto* node = c->self->state.node;
  std::vector<const vhost_ref*> vhosts;
  for (auto* vh : node->vhosts())
    if (c->account == nullptr || c->account->may_access(vh->name))
      vhosts.push_back(vh);
  std::vector<caf::actor> queues;
  uint64_t exchanges = 0;
  uint64_t bindings = 0;
  for (auto* vh : vhosts) {
    for (auto& q : vh->table->queues())
      queues.push_back(q->actor);
    for (auto& x : vh->table->exchanges()) {
      ++exchanges;
      bindings += x->binding_count();
    }
  }
  gather<queue_stats>(
    c->self, queues, [c, vhosts, exchanges, bindings](queue_replies& qs) {
      auto& o = *c->resp.mutable_overview();
      fill_broker(c->self, *o.mutable_broker());
      o.set_vhosts(vhosts.size());
      o.set_exchanges(exchanges);
      // The agents' own bindings (two per vhost) are not counted.
      o.set_bindings(bindings
                     - std::min<uint64_t>(bindings, 2 * vhosts.size()));
      o.set_queues(qs.size());
      double publish = 0;
      double deliver = 0;
      double ack = 0;
      double window = 0;
      for (auto& s : qs) {
        if (!s)
          continue;
        o.set_messages_ready(o.messages_ready() + s->messages_ready);
        o.set_messages_unacked(o.messages_unacked() + s->messages_unacked);
        o.set_bytes_ready(o.bytes_ready() + s->bytes_ready);
        publish += s->publish_rate;
        deliver += s->deliver_rate;
        ack += s->ack_rate;
        window = std::max(window, s->rate_window_seconds);
      }
      fill_rates(publish, deliver, ack, window, *o.mutable_rates());
      auto alarms = c->self->state.node->alarms();
      if (alarms & broker::memory_alarm)
        o.add_alarms("memory");
      if (alarms & broker::disk_alarm)
        o.add_alarms("disk");
      if (alarms & broker::store_alarm)
        o.add_alarms("store");
      // Alarms that do not block publishers (federation routes).
      for (auto& name : c->self->state.node->named_alarms())
        o.add_alarms(name);
      gather_connections(c->self, nullptr, [c, vhosts](auto& all) {
        auto& o = *c->resp.mutable_overview();
        for (auto& kv : all) {
          bool visible
            = std::any_of(vhosts.begin(), vhosts.end(), [&](auto* v) {
                return v->name == kv.second.vhost;
              });
          if (!visible)
            continue;
          o.set_connections(o.connections() + 1);
          o.set_channels(o.channels() + kv.second.channels.size());
          o.set_consumers(o.consumers() + kv.second.consumers.size());
        }
        finish(c);
      });
    });
}

void health(const call_ptr& c) {
  auto* node = c->self->state.node;
  auto vhosts = node->vhosts();
  struct pending {
    size_t left = 0;
    Health health;
  };
  auto p = std::make_shared<pending>();
  auto done = [c, p] {
    bool ok = true;
    for (auto& check : p->health.checks())
      ok = ok && check.ok();
    p->health.set_status(ok ? "ok" : "failed");
    *c->resp.mutable_health() = p->health;
    if (!ok)
      c->resp.set_status(503);
    finish(c);
  };
  {
    auto alarms = node->alarms();
    auto& check = *p->health.add_checks();
    check.set_name("alarms");
    check.set_ok(alarms == 0);
    check.set_detail(alarms == 0
                       ? "no resource alarm"
                       : "publishers blocked: " + node->blocked_reason());
  }
  p->left = vhosts.size();
  if (vhosts.empty())
    return done();
  for (auto* vh : vhosts) {
    auto name = vh->name;
    auto on_answer = [p, done, name](bool ok, const std::string& detail) {
      auto& check = *p->health.add_checks();
      check.set_name("vhost " + name);
      check.set_ok(ok);
      check.set_detail(detail);
      if (--p->left == 0)
        done();
    };
    // A passive declaration of amq.direct: the vhost actor answers it
    // without side effects.
    exchange_declare_req req;
    req.name = "amq.direct";
    req.passive = true;
    c->self->request(vh->actor, std::chrono::seconds(5), std::move(req))
      .then(
        [on_answer](op_result& r) {
          on_answer(r.ok(), r.ok() ? "responding" : r.text);
        },
        [on_answer, c](caf::error& e) {
          on_answer(false, "not responding: " + c->self->system().render(e));
        });
  }
}

// -- requests
// -------------------------------------------------------------------------

bool is_change(Method m) {
  // TEST opens a fabric connection with the given credentials: as a change.
  return m == CREATE || m == DELETE || m == PURGE || m == CLOSE_CONNECTION
         || m == TEST;
}

/// Checks who may run `c->req` and runs it. `user_id` is the validated
/// user_id of an AMQP request, or the user the inspector authenticated.
void authorize_and_run(const call_ptr& c,
                       const std::optional<std::string>& user_id) {
  auto& st = c->self->state;
  auto& node = *st.node;
  auto target = c->req.vhost().empty() ? st.home->name : c->req.vhost();
  if (node.limits().auth) {
    if (!user_id)
      return fail(c, 401,
                  "management requests must carry the user_id property set "
                  "to your login name (the broker checks it)");
    c->user = *user_id;
    c->account = node.users().find(c->user);
    if (c->account == nullptr)
      return fail(c, 401, "unknown user '" + c->user + "'");
    c->admin = c->account->is_administrator();
    if (!c->account->may_access(target))
      return fail(
        c, 403, "user '" + c->user + "' may not access vhost '" + target + "'");
  } else {
    c->user = user_id.value_or("");
    c->admin = true; // --auth no: everyone may do everything.
  }
  c->vhost = node.find_vhost(target);
  if (c->vhost == nullptr)
    return fail(c, 404, "no vhost '" + target + "'");
  auto method = c->req.method();
  if (is_change(method) && !c->admin)
    return fail(c, 403,
                "user '" + c->user + "' may not " + method_name(method) + " "
                  + kind_name(c->req.kind())
                  + ": changes need the administrator tag");
  FLOTILLA_LOG(debug, "management: " << method_name(method) << " "
                                     << kind_name(c->req.kind()) << " by '"
                                     << c->user << "'");
  switch (method) {
    case OVERVIEW:
      return overview(c);
    case HEALTH:
      return health(c);
    case LIST:
      return list(c);
    case GET:
      return get(c);
    case CREATE:
      return create(c);
    case DELETE:
      return remove(c);
    case PURGE:
      return purge(c);
    case CLOSE_CONNECTION:
      return close_connection(c);
    case PEEK:
      return peek(c);
    case TEST:
      if (c->req.kind() != LINK)
        return fail(c, 400, "test takes kind link");
      return ask_federation(c);
    default:
      return fail(c, 400,
                  "missing or unknown method; expected overview, health, "
                  "list, get, create, delete, purge, close_connection, "
                  "peek or test");
  }
}

/// Parses a JSON Request into `c->req`; answers 400 and returns false if it
/// is not one.
bool parse_json_request(const call_ptr& c, const std::string& body) {
  gp::util::JsonParseOptions o;
  o.case_insensitive_enum_parsing = true;
  auto status = gp::util::JsonStringToMessage(body, &c->req, o);
  if (status.ok())
    return true;
  fail(c, 400,
       "the body is not a JSON management Request: "
         + std::string{status.message()});
  return false;
}

void on_request(agent_self self, const message_ptr& m) {
  auto& p = m->properties;
  if (!p.reply_to || p.reply_to->empty()) {
    FLOTILLA_LOG(debug, "management: request without reply_to ignored");
    return;
  }
  auto c = std::make_shared<call>();
  c->self = self;
  c->reply_to = *p.reply_to;
  c->correlation_id = p.correlation_id;
  auto type = p.content_type.value_or(json_type);
  if (type == protobuf_type) {
    c->binary = true;
    if (!c->req.ParseFromString(m->body))
      return fail(c, 400, "the body is not a binary management Request");
  } else if (type == json_type || type == "text/json" || type.empty()) {
    if (!parse_json_request(c, m->body))
      return;
  } else {
    return fail(c, 400,
                "unsupported content_type '" + type + "'; use "
                  + std::string{json_type} + " or " + protobuf_type);
  }
  authorize_and_run(c, p.user_id);
}

/// The service door (management/service.hpp): same checks, same code; the
/// response goes to a callback instead of a reply_to queue.
void on_door_request(agent_self self, door_request& r) {
  auto c = std::make_shared<call>();
  c->self = self;
  c->deliver = [done = std::move(r.done)](Response& resp) {
    done(resp.status(), to_json(resp));
  };
  if (!parse_json_request(c, r.json))
    return;
  if (r.internal) {
    c->admin = true;
    c->user = "(node)";
    c->vhost = self->state.home;
    return health(c);
  }
  authorize_and_run(c, r.user);
}

/// Gathers overview and every queue, exchange, connection and route of every
/// vhost, and the links, through the LIST code (unpaged), then formats
/// /metrics.
void on_metrics_request(agent_self self, metrics_request& r) {
  struct pending {
    size_t left = 0;
    Response overview;
    std::vector<Response> lists;
    bool per_object = false;
    service::text_handler done;
  };
  auto p = std::make_shared<pending>();
  p->per_object = r.per_object;
  p->done = std::move(r.done);
  auto vhosts = self->state.node->vhosts();
  constexpr size_t per_vhost = 4; // queues, exchanges, connections, routes
  p->lists.resize(vhosts.size() * per_vhost + 1);
  p->left = p->lists.size() + 1;
  auto step = [p] {
    if (--p->left > 0)
      return;
    metrics_input in;
    in.overview = &p->overview.overview();
    for (auto& l : p->lists)
      for (auto& o : l.objects()) {
        if (o.has_queue())
          in.queues.push_back(&o.queue());
        else if (o.has_exchange())
          in.exchanges.push_back(&o.exchange());
        else if (o.has_connection())
          in.connections.push_back(&o.connection());
        else if (o.has_link())
          in.links.push_back(&o.link());
        else if (o.has_bridge())
          in.bridges.push_back(&o.bridge());
      }
    p->done(format_metrics(in, p->per_object));
  };
  auto run
    = [self, step](Method m, Kind k, const std::string& vhost, Response* out) {
        auto c = std::make_shared<call>();
        c->self = self;
        c->admin = true;
        c->unlimited = true;
        c->user = "(metrics)";
        c->vhost = self->state.node->find_vhost(vhost);
        c->req.set_method(m);
        c->req.set_kind(k);
        if (k == LINK || k == BRIDGE)
          c->req.mutable_list()->set_page_size(1000); // The hub's largest.
        c->deliver = [out, step](Response& resp) {
          *out = std::move(resp);
          step();
        };
        switch (m) {
          case OVERVIEW:
            return overview(c);
          default:
            return list(c);
        }
      };
  run(OVERVIEW, KIND_UNSPECIFIED, vhosts.front()->name, &p->overview);
  for (size_t i = 0; i < vhosts.size(); ++i) {
    auto* out = &p->lists[per_vhost * i];
    run(LIST, QUEUE, vhosts[i]->name, out);
    run(LIST, EXCHANGE, vhosts[i]->name, out + 1);
    run(LIST, CONNECTION, vhosts[i]->name, out + 2);
    run(LIST, BRIDGE, vhosts[i]->name, out + 3);
  }
  // Links belong to the node, not to a vhost.
  run(LIST, LINK, vhosts.front()->name, &p->lists.back());
}

Event make_event(const broker_event& e, const std::string& node,
                 const std::string& vhost) {
  Event ev;
  ev.set_kind(e.kind);
  ev.set_action(e.action);
  ev.set_node(node);
  ev.set_vhost(vhost);
  ev.set_name(e.name);
  ev.set_timestamp_ms(now_ms());
  for (auto& [k, v] : e.details)
    (*ev.mutable_details())[k] = v;
  return ev;
}

void on_event(agent_self self, broker_event& e) {
  auto& home = *self->state.home;
  auto x = home.table->find_exchange("qmf.default.topic");
  if (!x || x->binding_count() == 0)
    return; // Nobody listens.
  auto ev = make_event(e, self->state.node->limits().node_name,
                       e.vhost.empty() ? home.name : e.vhost);
  pr::basic_properties props;
  props.content_type = json_type;
  props.app_id = "flotilla";
  props.type = "event";
  props.timestamp = static_cast<uint64_t>(now_ms() / 1000);
  publish(self, home, "qmf.default.topic", e.kind + "." + e.action,
          std::move(props), to_json(ev));
}

caf::behavior agent_impl(agent_self self, broker* node, const vhost_ref* home,
                         int64_t started_at,
                         std::shared_ptr<const agent_map> agents) {
  self->state.node = node;
  self->state.home = home;
  self->state.started_at = started_at;
  self->state.agents = std::move(agents);
  return {
    [=](enqueue_atom, enqueue_batch& batch) {
      for (auto& m : batch.messages)
        on_request(self, m);
    },
    [=](enqueue_atom, enqueue_batch& batch, bool) {
      enqueue_reply reply;
      reply.rejected.resize(batch.messages.size());
      for (auto& m : batch.messages)
        on_request(self, m);
      return reply;
    },
    [=](event_atom, broker_event& e) {
      on_event(self, e);
    },
    [=](door_atom, std::shared_ptr<door_request>& r) {
      on_door_request(self, *r);
    },
    [=](metrics_atom, std::shared_ptr<metrics_request>& r) {
      on_metrics_request(self, *r);
    },
  };
}

/// Posts broker events to the agent of their vhost (to every agent for
/// node-wide events).
class agent_events : public event_sink {
public:
  void publish(broker_event e) override {
    log->append(to_json(make_event(e, node_name, e.vhost)));
    if (e.vhost.empty()) {
      for (auto& kv : agents)
        caf::anon_send(kv.second, event_atom::value, e);
      return;
    }
    auto i = agents.find(e.vhost);
    if (i != agents.end())
      caf::anon_send(i->second, event_atom::value, std::move(e));
  }

  /// Written by install_agents before the sink is published.
  agent_map agents;
  std::string node_name;
  std::shared_ptr<event_log> log = std::make_shared<event_log>();
};

/// The service door: forwards to the agent of the default vhost.
class agent_service : public service {
public:
  agent_service(caf::actor agent, std::shared_ptr<event_log> log)
    : agent_(std::move(agent)), log_(std::move(log)) {}

  void execute(std::string request_json, std::string user,
               response_handler done) const override {
    auto r = std::make_shared<door_request>();
    r->json = std::move(request_json);
    r->user = std::move(user);
    r->done = std::move(done);
    caf::anon_send(agent_, door_atom::value, std::move(r));
  }

  void health(response_handler done) const override {
    auto r = std::make_shared<door_request>();
    r->json = R"({"method": "health"})";
    r->internal = true;
    r->done = std::move(done);
    caf::anon_send(agent_, door_atom::value, std::move(r));
  }

  void metrics(bool per_object, text_handler done) const override {
    auto r = std::make_shared<metrics_request>();
    r->per_object = per_object;
    r->done = std::move(done);
    caf::anon_send(agent_, metrics_atom::value, std::move(r));
  }

  const event_log& events() const override {
    return *log_;
  }

private:
  caf::actor agent_;
  std::shared_ptr<event_log> log_;
};

} // namespace

installation install_agents(broker& node) {
  auto sink = std::make_shared<agent_events>();
  sink->node_name = node.limits().node_name;
  auto agents = std::make_shared<agent_map>();
  installation result;
  auto started = now_ms();
  caf::scoped_actor sync{node.system()};
  for (auto* vh : node.vhosts()) {
    // The vhost actor creates its built-in exchanges when it first runs:
    // a passive declaration waits for that.
    exchange_declare_req probe;
    probe.name = "qmf.default.direct";
    probe.passive = true;
    sync->request(vh->actor, caf::infinite, std::move(probe))
      .receive([](op_result&) {},
               [&](caf::error& e) {
                 FLOTILLA_LOG(error, "management: vhost '"
                                       << vh->name << "' did not answer: "
                                       << node.system().render(e));
               });
    auto agent = node.system().spawn(agent_impl, &node, vh, started, agents);
    if (auto x = vh->table->find_exchange("qmf.default.direct"))
      for (auto& key : {std::string{"broker"}, node.limits().node_name}) {
        binding b;
        b.key = key;
        b.dest.to_exchange = false;
        b.dest.name = ""; // No queue can have this name (agent_binding).
        b.dest.queue = agent;
        x->add_binding(std::move(b));
      }
    sink->agents.emplace(vh->name, agent);
    agents->emplace(vh->name, agent);
    result.agents.push_back(agent);
  }
  auto home = agents->find("/");
  result.door = std::make_shared<agent_service>(
    home != agents->end() ? home->second : result.agents.front(), sink->log);
  node.set_event_sink(sink);
  return result;
}

} // namespace flotilla::management
