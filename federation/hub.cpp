// The federation hub: one per broker, registered as "federation". It owns
// the links and bridges configured on this broker, hands a session to every
// authenticated peer, keeps what each export's bridge wants (dynamic routes)
// and recomputes the interest of this broker's dynamic bridges whenever a
// binding, an export or a link changes. Management requests for links and
// bridges arrive here as protobuf bytes from the management agent.

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/events.hpp"
#include "actors/log.hpp"
#include "federation/actors.hpp"
#include "protocol/management.pb.h"

namespace flotilla::federation {

namespace {

namespace mg = flotilla::management;

constexpr auto recompute_interval = std::chrono::seconds(2);
/// Each step of a link test (the agent waits 10 s for the whole answer).
constexpr auto test_step_timeout = std::chrono::seconds(4);

/// A route not running for this many link maintenance intervals raises its
/// alarm.
constexpr int64_t alarm_intervals = 3;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
    .count();
}

struct link_rec {
  link_config cfg;
  std::shared_ptr<link_status> status;
  caf::actor actor;
  caf::actor session; ///< Set while operational.
  bool tls = false;
  /// Links of config-file connectors.
  std::optional<config::connector_spec> connector;
  /// Duplex connector: the session on this broker that serves the peer's
  /// reverse bridges while the link is operational.
  caf::actor reverse;
  /// A peer's duplex connector: the session of that peer's link (the link
  /// has no actor of its own and goes when that session ends).
  caf::actor_addr duplex_of;
};

struct bridge_rec {
  bridge_config cfg;
  std::shared_ptr<bridge_status> status;
  caf::actor actor;
  std::vector<interest_item> sent;
  bool sent_once = false;
  /// Raised after alarm_intervals maintenance intervals not running.
  route_alarm alarm;
};

struct export_rec {
  export_info info;
  std::vector<interest_item> items;
};

struct importer_rec {
  importer_info info;
  caf::actor_addr actor;
};

struct hub_state {
  static inline const char* name = "federation";
  context_ptr ctx;
  std::map<std::string, link_rec> links;
  std::map<std::string, bridge_rec> bridges;
  std::map<caf::actor_id, export_rec> exports;
  /// Importers of the peers' push routes (direction in, src_local).
  std::map<caf::actor_id, importer_rec> importers;
  std::set<caf::actor_addr> sessions;
  /// Durable bridges deleting their source queue, per link: their link
  /// (and its session) must live until they are done.
  std::map<std::string, size_t> deleting;
  /// Deleted links that wait for those bridges before they stop.
  std::map<std::string, caf::actor> doomed_links;
};

using hub_self = caf::stateful_actor<hub_state>*;

void publish_event(hub_self self, const std::string& kind,
                   const std::string& action, const std::string& name,
                   std::vector<std::pair<std::string, std::string>> details) {
  if (auto* sink = self->state.ctx->node->events())
    sink->publish(broker_event{kind, action, {}, name, std::move(details)});
}

/// The binding keys of local consumers on `exchange` (not the queues of
/// exports, which carry interest that came from elsewhere; of the management
/// agent's bindings only its node name).
std::vector<std::string> local_keys(hub_self self, const std::string& vhost,
                                    const std::string& exchange) {
  std::vector<std::string> out;
  auto* vh = self->state.ctx->node->find_vhost(vhost);
  if (vh == nullptr)
    return out;
  auto x = vh->table->find_exchange(exchange);
  if (!x)
    return out;
  std::string prefix = export_queue_prefix;
  auto& node_name = self->state.ctx->node_name;
  for (auto& b : x->bindings()) {
    // The management agent's node-name binding is interest like any other
    // (requests addressed to this broker by name cross routes on
    // qmf.default.direct); its "broker" binding is not.
    bool agent = !b.dest.to_exchange && b.dest.name.empty();
    if (agent && (b.key != node_name || b.key == "broker"))
      continue;
    if (!b.dest.to_exchange && !agent
        && b.dest.name.compare(0, prefix.size(), prefix) == 0)
      continue;
    out.push_back(b.key);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string remote_id_of(hub_self self, const std::string& link) {
  auto i = self->state.links.find(link);
  if (i == self->state.links.end() || !i->second.session)
    return {};
  std::lock_guard<std::mutex> guard{i->second.status->mtx};
  return i->second.status->remote_id;
}

/// Sends every dynamic bridge its interest if it changed.
void recompute(hub_self self) {
  auto& st = self->state;
  for (auto& [name, b] : st.bridges) {
    if (!b.cfg.dynamic)
      continue;
    auto peer = remote_id_of(self, b.cfg.link);
    if (peer.empty())
      continue;
    std::vector<received_interest> received;
    for (auto& [id, e] : st.exports)
      if (e.info.dynamic && e.info.vhost == b.cfg.vhost
          && e.info.exchange == b.cfg.exchange)
        received.push_back(received_interest{e.info.peer_id, e.items});
    auto keys = local_keys(self, b.cfg.vhost, b.cfg.exchange);
    if (!b.cfg.filter.empty()) {
      // A connector's include/exclude patterns: other keys do not propagate.
      auto& f = b.cfg.filter;
      keys.erase(std::remove_if(keys.begin(), keys.end(),
                                [&](auto& k) {
                                  return !f.allows(k);
                                }),
                 keys.end());
      for (auto& r : received)
        r.items.erase(std::remove_if(r.items.begin(), r.items.end(),
                                     [&](auto& i) {
                                       return !f.allows(i.key);
                                     }),
                      r.items.end());
    }
    auto items = interest_for_peer(st.ctx->broker_id, peer, keys, received,
                                   b.cfg.max_hops);
    if (b.sent_once && items == b.sent)
      continue;
    b.sent = items;
    b.sent_once = true;
    self->send(b.actor, interest_atom::value, interest{std::move(items)});
  }
}

// -- management ---------------------------------------------------------------

/// Sums of the counters of a link's bridges (in: pulled into this broker;
/// out: pushed by its push bridges' exports).
struct link_totals {
  size_t bridges = 0;
  uint64_t messages_in = 0;
  uint64_t bytes_in = 0;
  uint64_t messages_out = 0;
  uint64_t bytes_out = 0;
};

void fill(const link_rec& l, const link_totals& t, mg::Link& out) {
  out.set_name(l.cfg.name);
  out.set_host(l.cfg.host);
  out.set_port(l.cfg.port);
  out.set_transport(l.duplex_of ? "duplex" : l.tls ? "tls" : "tcp");
  out.set_user(l.cfg.user);
  out.set_bridges(static_cast<uint32_t>(t.bridges));
  out.set_messages_in(t.messages_in);
  out.set_bytes_in(t.bytes_in);
  out.set_messages_out(t.messages_out);
  out.set_bytes_out(t.bytes_out);
  std::lock_guard<std::mutex> guard{l.status->mtx};
  out.set_state(to_string(l.status->state));
  out.set_last_error(l.status->last_error);
  out.set_remote_node(l.status->remote_node);
  out.set_remote_id(l.status->remote_id);
  out.set_remote_amqp_port(l.status->remote_amqp_port);
  out.set_connects(l.status->connects);
  out.set_next_attempt_ms(l.status->next_attempt_ms);
  out.set_durable(l.cfg.durable);
  if (l.status->cut)
    out.set_fault("cut");
}

void fill_counters(const route_counters& c, mg::Bridge& out) {
  out.set_messages_in(c.messages_in.load());
  out.set_messages_out(c.messages_out.load());
  out.set_backlog(c.backlog.load());
  out.set_in_flight(c.in_flight.load());
  out.set_lag_ms(c.lag_ms.load());
  out.set_bytes_in(c.bytes_in.load());
  out.set_bytes_out(c.bytes_out.load());
  out.set_dropped_loop(c.dropped_loop.load());
  out.set_dropped_duplicate(c.dropped_duplicate.load());
  out.set_dropped_hops(c.dropped_hops.load());
  out.set_unroutable(c.unroutable.load());
  out.set_refused(c.refused.load());
}

/// The counters of a bridge. A push bridge (--src-local) forwards through a
/// local export of its own: its counters are that export's.
const route_counters& counters_of(const hub_state& st, const bridge_rec& b) {
  if (b.cfg.src_local)
    for (auto& [id, e] : st.exports)
      if (e.info.bridge_name == b.cfg.name && e.info.vhost == b.cfg.vhost
          && e.info.local)
        return *e.info.counters;
  return b.status->counters;
}

void fill(const hub_state& st, const bridge_rec& b, mg::Bridge& out) {
  out.set_name(b.cfg.name);
  out.set_link(b.cfg.link);
  out.set_vhost(b.cfg.vhost);
  out.set_direction(b.cfg.src_local ? "push" : "in");
  out.set_src_local(b.cfg.src_local);
  out.set_source(b.cfg.queue.empty() ? b.cfg.exchange : b.cfg.queue);
  out.set_destination(b.cfg.exchange);
  out.set_key(b.cfg.key);
  out.set_dynamic(b.cfg.dynamic);
  out.set_queue_route(!b.cfg.queue.empty());
  out.set_queue(b.cfg.queue);
  out.set_credit(b.cfg.credit);
  out.set_max_hops(b.cfg.max_hops);
  out.set_durable(b.cfg.durable);
  out.set_alarm(b.alarm.raised());
  auto& c = counters_of(st, b);
  fill_counters(c, out);
  out.set_forwarded(b.cfg.src_local ? c.messages_out.load()
                                    : c.messages_in.load());
  std::lock_guard<std::mutex> guard{b.status->mtx};
  out.set_state(b.status->state);
  out.set_last_error(b.status->last_error);
  for (auto& k : b.status->keys)
    out.add_keys(k);
}

void fill(const export_rec& e, mg::Bridge& out) {
  out.set_name(e.info.bridge_name);
  out.set_vhost(e.info.vhost);
  out.set_direction("out");
  out.set_state("active");
  out.set_peer(e.info.peer_node);
  out.set_source(e.info.exchange);
  out.set_destination(e.info.exchange);
  out.set_dynamic(e.info.dynamic);
  out.set_queue(e.info.queue);
  fill_counters(*e.info.counters, out);
  out.set_forwarded(e.info.counters->messages_out.load());
  for (auto& k : keys_of(e.items))
    out.add_keys(k);
}

/// The importer of a peer's push route: a route in, named as on the peer,
/// its link the peer's (there is none here).
void fill(const importer_rec& r, mg::Bridge& out) {
  auto& i = r.info;
  out.set_name(i.route);
  out.set_vhost(i.vhost);
  out.set_direction("in");
  out.set_src_local(true);
  out.set_peer(i.peer_node);
  out.set_destination(i.exchange);
  out.set_max_hops(i.max_hops);
  auto& c = i.status->counters;
  fill_counters(c, out);
  out.set_forwarded(c.messages_in.load());
  std::lock_guard<std::mutex> guard{i.status->mtx};
  out.set_state(i.status->state);
  out.set_last_error(i.status->last_error);
}

bool matches(const std::string& pattern, const std::string& name) {
  return pattern.empty() || fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

void page(const mg::Request& req, mg::Response& resp,
          std::vector<mg::Object> all) {
  auto& o = req.list();
  uint32_t size
    = o.page_size() == 0 ? 100 : std::min<uint32_t>(o.page_size(), 1000);
  uint32_t number = o.page() == 0 ? 1 : o.page();
  if (o.sort_reverse())
    std::reverse(all.begin(), all.end());
  resp.set_total(all.size());
  resp.set_page(number);
  resp.set_page_size(size);
  resp.set_page_count(static_cast<uint32_t>((all.size() + size - 1) / size));
  size_t begin = std::min<size_t>(all.size(), size_t{number - 1} * size);
  size_t end = std::min<size_t>(all.size(), begin + size);
  for (size_t i = begin; i < end; ++i)
    *resp.add_objects() = std::move(all[i]);
}

link_totals bridges_of(hub_self self, const std::string& link) {
  auto& st = self->state;
  link_totals t;
  for (auto& [name, b] : st.bridges) {
    if (b.cfg.link != link)
      continue;
    ++t.bridges;
    auto& c = counters_of(st, b);
    if (b.cfg.src_local) {
      t.messages_out += c.messages_out.load();
      t.bytes_out += c.bytes_out.load();
    } else {
      t.messages_in += c.messages_in.load();
      t.bytes_in += c.bytes_in.load();
    }
  }
  return t;
}

void fail(mg::Response& resp, uint32_t status, std::string text) {
  resp.Clear();
  resp.set_status(status);
  resp.set_error(std::move(text));
}

void start_bridge(hub_self self, bridge_rec& b) {
  auto& st = self->state;
  b.actor = spawn_bridge(self->system(), b.cfg, b.status,
                         caf::actor_cast<caf::actor>(self), st.ctx);
  self->link_to(b.actor);
  auto l = st.links.find(b.cfg.link);
  if (l != st.links.end() && l->second.session)
    self->send(b.actor, link_up_atom::value, l->second.session);
}

/// Stops a deleted bridge. A durable bridge first asks its source to delete
/// the durable queue (if the link is up), then quits by itself.
void deletion_done(hub_self self, const std::string& link) {
  auto& st = self->state;
  auto i = st.deleting.find(link);
  if (i == st.deleting.end() || --i->second > 0)
    return;
  st.deleting.erase(i);
  auto j = st.doomed_links.find(link);
  if (j != st.doomed_links.end()) {
    self->send_exit(j->second, caf::exit_reason::user_shutdown);
    st.doomed_links.erase(j);
  }
}

void stop_bridge(hub_self self, bridge_rec& b) {
  self->unlink_from(b.actor);
  if (b.cfg.durable) {
    auto link = b.cfg.link;
    ++self->state.deleting[link];
    self->request(b.actor, std::chrono::seconds(15), caf::delete_atom::value)
      .then(
        [=](bool) {
          deletion_done(self, link);
        },
        [=](caf::error&) {
          deletion_done(self, link);
        });
  } else {
    self->send_exit(b.actor, caf::exit_reason::user_shutdown);
  }
  if (b.alarm.raised())
    self->state.ctx->node->set_named_alarm("route:" + b.cfg.name, false);
}

/// Writes the durable links and bridges to the routes file. Returns an
/// error text, or an empty string.
std::string save_durable(hub_self self) {
  auto& st = self->state;
  durable_routes r;
  for (auto& [name, l] : st.links)
    if (l.cfg.durable)
      r.links.push_back(l.cfg);
  for (auto& [name, b] : st.bridges)
    if (b.cfg.durable)
      r.bridges.push_back(b.cfg);
  std::string error;
  if (!save_routes_file(st.ctx->routes_path, r, error)) {
    FLOTILLA_LOG(error, "federation: cannot save durable routes: " << error);
    return error;
  }
  return {};
}

link_rec& add_link(hub_self self, link_config cfg) {
  auto& st = self->state;
  link_rec rec;
  rec.cfg = std::move(cfg);
  rec.tls = st.ctx->tls;
  rec.status = std::make_shared<link_status>();
  rec.actor = spawn_link(self->system(), rec.cfg, rec.status,
                         caf::actor_cast<caf::actor>(self), st.ctx);
  self->link_to(rec.actor);
  FLOTILLA_LOG(notice, "federation: link "
                         << rec.cfg.name << " to " << rec.cfg.host << ":"
                         << rec.cfg.port << " added"
                         << (rec.cfg.durable ? " (durable)" : ""));
  auto name = rec.cfg.name;
  return st.links.emplace(name, std::move(rec)).first->second;
}

bridge_rec& add_bridge(hub_self self, bridge_config cfg) {
  auto& st = self->state;
  bridge_rec rec;
  rec.cfg = std::move(cfg);
  rec.status = std::make_shared<bridge_status>();
  // Counted from its creation: a route that never runs raises it too.
  rec.alarm.update(false, now_ms(), 0);
  auto name = rec.cfg.name;
  auto& stored = st.bridges.emplace(name, std::move(rec)).first->second;
  start_bridge(self, stored);
  FLOTILLA_LOG(notice, "federation: bridge "
                         << name << " added"
                         << (stored.cfg.durable ? " (durable)" : ""));
  return stored;
}

/// Raises the alarm of every route that has not been running (link not
/// Operational or bridge not active) for alarm_intervals maintenance
/// intervals, and clears it once the route runs again.
void check_alarms(hub_self self) {
  auto& st = self->state;
  auto now = now_ms();
  auto limit = alarm_intervals * st.ctx->maintenance_interval.count();
  for (auto& [name, b] : st.bridges) {
    bool running = false;
    std::string why;
    auto l = st.links.find(b.cfg.link);
    if (l != st.links.end()) {
      std::lock_guard<std::mutex> guard{l->second.status->mtx};
      running = l->second.status->state == link_state::operational;
      why = std::string{"link "} + to_string(l->second.status->state);
      if (!l->second.status->last_error.empty())
        why += ": " + l->second.status->last_error;
    }
    if (running) {
      std::lock_guard<std::mutex> guard{b.status->mtx};
      running = b.status->state == "active";
      why = "bridge " + b.status->state;
      if (!b.status->last_error.empty())
        why += ": " + b.status->last_error;
    }
    if (!b.alarm.update(running, now, limit))
      continue;
    bool alarm = b.alarm.raised();
    auto alarm_name = "route:" + name;
    st.ctx->node->set_named_alarm(alarm_name, alarm);
    if (alarm)
      FLOTILLA_LOG(warning, "federation: alarm: route "
                              << name << " is not running (" << why << ")");
    else
      FLOTILLA_LOG(notice, "federation: route " << name
                                                << " runs again; alarm "
                                                   "cleared");
    publish_event(
      self, "alarm", alarm ? "raised" : "cleared", alarm_name,
      {{"description", alarm ? "federation route not running: " + why
                             : "federation route running"},
       {"publishers_blocked", "false"}});
  }
}

void link_fault(hub_self self, const mg::Link& spec, mg::Response& resp) {
  auto& st = self->state;
  auto i = st.links.find(spec.name());
  if (i == st.links.end())
    return fail(resp, 404, "no link '" + spec.name() + "'");
  if (spec.fault() != "cut" && spec.fault() != "heal")
    return fail(resp, 400, "a link fault is 'cut' or 'heal'");
  bool cut = spec.fault() == "cut";
  FLOTILLA_LOG(warning, "federation: fault injection: link "
                          << spec.name() << (cut ? " cut" : " healed"));
  {
    // Set here too, so that an answer right after the request shows it.
    std::lock_guard<std::mutex> guard{i->second.status->mtx};
    i->second.status->cut = cut;
  }
  self->send(i->second.actor, fault_atom::value, cut);
  resp.set_status(200);
  fill(i->second, bridges_of(self, spec.name()),
       *resp.add_objects()->mutable_link());
}

void create_link(hub_self self, const mg::Link& spec, mg::Response& resp) {
  auto& st = self->state;
  if (!spec.fault().empty())
    return link_fault(self, spec, resp);
  if (spec.host().empty() || spec.port() == 0 || spec.port() > 65535)
    return fail(resp, 400,
                "a link needs host and port (the remote fabric "
                "port, see 'flotilla overview')");
  if (spec.durable() && st.ctx->routes_path.empty())
    return fail(resp, 400,
                "durable links need a data dir (this broker runs with "
                "--no-data-dir)");
  if (!st.ctx->tls && !is_loopback(spec.host()))
    return fail(resp, 400,
                "links without TLS are only allowed to loopback addresses "
                "(give flotillad fabric-certificate, fabric-key and "
                "fabric-ca-file)");
  auto name = spec.name().empty()
                ? spec.host() + ":" + std::to_string(spec.port())
                : spec.name();
  auto i = st.links.find(name);
  if (i != st.links.end()) {
    auto& c = i->second.cfg;
    if (c.host == spec.host() && c.port == spec.port()
        && c.user == spec.user()) {
      if (spec.durable() && !c.durable) {
        // Made durable later (route add --durable on an existing link).
        c.durable = true;
        if (auto err = save_durable(self); !err.empty()) {
          c.durable = false;
          return fail(resp, 500, "cannot save the durable link: " + err);
        }
      }
      resp.set_status(200);
      fill(i->second, bridges_of(self, name),
           *resp.add_objects()->mutable_link());
      return;
    }
    return fail(resp, 409,
                "link '" + name
                  + "' exists with another address "
                    "or user");
  }
  link_config cfg;
  cfg.name = name;
  cfg.host = spec.host();
  cfg.port = static_cast<uint16_t>(spec.port());
  cfg.user = spec.user();
  cfg.password = spec.password();
  cfg.durable = spec.durable();
  if (cfg.durable) {
    // Saved before it starts: an answer 201 means it survives a restart.
    link_rec placeholder;
    placeholder.cfg = cfg;
    st.links.emplace(name, std::move(placeholder));
    auto err = save_durable(self);
    st.links.erase(name);
    if (!err.empty())
      return fail(resp, 500, "cannot save the durable link: " + err);
  }
  auto& stored = add_link(self, std::move(cfg));
  resp.set_status(201);
  fill(stored, link_totals{}, *resp.add_objects()->mutable_link());
}

/// Stops a link, its bridges and its reverse session, and forgets them.
void remove_link(hub_self self, std::map<std::string, link_rec>::iterator i) {
  auto& st = self->state;
  auto name = i->first;
  bool durable = i->second.cfg.durable;
  for (auto j = st.bridges.begin(); j != st.bridges.end();) {
    if (j->second.cfg.link == name) {
      durable = durable || j->second.cfg.durable;
      stop_bridge(self, j->second);
      j = st.bridges.erase(j);
    } else {
      ++j;
    }
  }
  if (i->second.actor) {
    // A durable bridge asks its source to delete its queue before it
    // quits: then the link (and its session) stay until it is done.
    self->unlink_from(i->second.actor);
    if (st.deleting.count(name) > 0)
      st.doomed_links[name] = i->second.actor;
    else
      self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
  }
  if (i->second.reverse)
    self->send_exit(i->second.reverse, caf::exit_reason::user_shutdown);
  publish_event(self, "link", "state", name, {{"state", "Closed"}});
  st.links.erase(i);
  if (durable)
    (void)save_durable(self);
  FLOTILLA_LOG(notice, "federation: link " << name << " deleted");
}

void delete_link(hub_self self, const std::string& name, mg::Response& resp) {
  auto i = self->state.links.find(name);
  if (i == self->state.links.end())
    return fail(resp, 404, "no link '" + name + "'");
  remove_link(self, i);
  resp.set_status(200);
}

std::string bridge_name_of(const mg::Bridge& spec) {
  if (!spec.name().empty())
    return spec.name();
  if (spec.src_local() && spec.queue_route())
    return spec.link() + "/push/queue/" + spec.source();
  if (spec.src_local())
    return spec.link() + "/push/" + spec.source() + "/" + spec.key();
  if (spec.queue_route())
    return spec.link() + "/queue/" + spec.source();
  if (spec.dynamic())
    return spec.link() + "/dynamic/" + spec.source();
  return spec.link() + "/" + spec.source() + "/" + spec.key();
}

void create_bridge(hub_self self, const std::string& vhost,
                   const mg::Bridge& spec, mg::Response& resp,
                   const config::key_filter& filter = {}) {
  auto& st = self->state;
  if (spec.durable() && st.ctx->routes_path.empty())
    return fail(resp, 400,
                "durable routes need a data dir (this broker runs with "
                "--no-data-dir)");
  if (spec.source().empty())
    return fail(resp, 400, "a bridge needs a source (exchange or queue)");
  if (st.links.count(spec.link()) == 0)
    return fail(resp, 404, "no link '" + spec.link() + "'");
  auto* vh = st.ctx->node->find_vhost(vhost);
  if (vh == nullptr)
    return fail(resp, 404, "no vhost '" + vhost + "'");
  bridge_config cfg;
  cfg.name = bridge_name_of(spec);
  cfg.link = spec.link();
  cfg.vhost = vhost;
  cfg.dynamic = spec.dynamic();
  cfg.src_local = spec.src_local();
  if (cfg.src_local && cfg.dynamic)
    return fail(resp, 400,
                "dynamic routes are pulled by the destination (no "
                "--src-local)");
  if (spec.queue_route()) {
    cfg.queue = spec.source();
    cfg.exchange = spec.destination();
    if (cfg.exchange.empty())
      return fail(resp, 400, "a queue route needs a destination exchange");
  } else {
    cfg.exchange = spec.source();
    cfg.key = spec.key();
  }
  if (cfg.src_local && !cfg.queue.empty()) {
    // A push queue route: the queue is here, the exchange is remote.
    if (!vh->table->find_queue(cfg.queue))
      return fail(resp, 404,
                  "no queue '" + cfg.queue + "' in vhost '" + vhost
                    + "' (the source of the route)");
  } else if (!vh->table->find_exchange(cfg.exchange)) {
    return fail(resp, 404,
                "no exchange '" + cfg.exchange + "' in vhost '" + vhost
                  + (cfg.src_local ? "' (the source of the route)"
                                   : "' (the destination of the route)"));
  }
  cfg.credit = spec.credit() == 0 ? 100 : spec.credit();
  cfg.max_hops = spec.max_hops() == 0 ? default_max_hops : spec.max_hops();
  cfg.durable = spec.durable();
  cfg.filter = filter;
  auto i = st.bridges.find(cfg.name);
  if (i != st.bridges.end()) {
    auto& c = i->second.cfg;
    if (c.link == cfg.link && c.exchange == cfg.exchange && c.key == cfg.key
        && c.dynamic == cfg.dynamic && c.queue == cfg.queue
        && c.durable == cfg.durable && c.src_local == cfg.src_local) {
      resp.set_status(200);
      fill(st, i->second, *resp.add_objects()->mutable_bridge());
      return;
    }
    return fail(resp, 409,
                "bridge '" + cfg.name
                  + "' exists with another source, durability or "
                    "direction (delete it first)");
  }
  if (cfg.durable) {
    // A durable route needs a durable link; saved before it starts.
    auto& l = st.links.at(cfg.link);
    bool was = l.cfg.durable;
    l.cfg.durable = true;
    auto name = cfg.name;
    st.bridges.emplace(name, bridge_rec{cfg, nullptr, {}, {}, false, {}});
    auto err = save_durable(self);
    st.bridges.erase(name);
    if (!err.empty()) {
      l.cfg.durable = was;
      return fail(resp, 500, "cannot save the durable route: " + err);
    }
  }
  auto& stored = add_bridge(self, std::move(cfg));
  recompute(self);
  resp.set_status(201);
  fill(st, stored, *resp.add_objects()->mutable_bridge());
}

void delete_bridge(hub_self self, const mg::Request& req, mg::Response& resp) {
  auto& st = self->state;
  auto name = req.name().empty() ? bridge_name_of(req.bridge()) : req.name();
  auto i = st.bridges.find(name);
  if (i == st.bridges.end())
    return fail(resp, 404, "no bridge '" + name + "'");
  bool durable = i->second.cfg.durable;
  stop_bridge(self, i->second);
  st.bridges.erase(i);
  if (durable)
    (void)save_durable(self);
  FLOTILLA_LOG(notice, "federation: bridge " << name << " deleted");
  resp.set_status(200);
}

std::string handle_management(hub_self self, const std::string& bytes,
                              const std::string& vhost) {
  auto& st = self->state;
  mg::Request req;
  mg::Response resp;
  if (!req.ParseFromString(bytes)) {
    fail(resp, 400, "bad federation request");
  } else if (req.kind() != mg::LINK && req.kind() != mg::BRIDGE) {
    fail(resp, 400, "the federation hub manages links and bridges only");
  } else {
    bool link = req.kind() == mg::LINK;
    switch (req.method()) {
      case mg::LIST: {
        std::vector<mg::Object> all;
        if (link) {
          for (auto& [name, l] : st.links)
            if (matches(req.list().pattern(), name))
              fill(l, bridges_of(self, name),
                   *all.emplace_back().mutable_link());
        } else {
          for (auto& [name, b] : st.bridges)
            if (b.cfg.vhost == vhost && matches(req.list().pattern(), name))
              fill(st, b, *all.emplace_back().mutable_bridge());
          for (auto& [id, e] : st.exports)
            if (e.info.vhost == vhost
                && matches(req.list().pattern(), e.info.bridge_name))
              fill(e, *all.emplace_back().mutable_bridge());
          for (auto& [id, r] : st.importers)
            if (r.info.vhost == vhost
                && matches(req.list().pattern(), r.info.route))
              fill(r, *all.emplace_back().mutable_bridge());
        }
        page(req, resp, std::move(all));
        resp.set_status(200);
        break;
      }
      case mg::GET: {
        if (link) {
          auto i = st.links.find(req.name());
          if (i == st.links.end()) {
            fail(resp, 404, "no link '" + req.name() + "'");
            break;
          }
          fill(i->second, bridges_of(self, req.name()),
               *resp.add_objects()->mutable_link());
        } else {
          auto i = st.bridges.find(req.name());
          if (i == st.bridges.end()) {
            fail(resp, 404, "no bridge '" + req.name() + "'");
            break;
          }
          fill(st, i->second, *resp.add_objects()->mutable_bridge());
        }
        resp.set_status(200);
        break;
      }
      case mg::CREATE:
        if (link)
          create_link(self, req.link(), resp);
        else
          create_bridge(self, vhost, req.bridge(), resp);
        break;
      case mg::DELETE:
        if (link)
          delete_link(self, req.name().empty() ? req.link().name() : req.name(),
                      resp);
        else
          delete_bridge(self, req, resp);
        break;
      default:
        fail(resp, 400,
             "links and bridges take list, get, create and "
             "delete");
    }
  }
  std::string out;
  resp.SerializeToString(&out);
  return out;
}

// -- link test
// ------------------------------------------------------------------

/// Stands in for a link during a test: the source's session monitors it and
/// ends when it quits. (The argument: CAF 0.17 trips UBSan on function
/// actors spawned without arguments.)
caf::behavior test_link_stand_in(caf::event_based_actor*, int /* unused */) {
  return {[](int) {}};
}

/// Connects to the fabric port of `spec` and logs in once, as a link would,
/// creating nothing here. Delivers a Response whose link has state
/// Operational (with the remote's name and id) or Failed with last_error
/// "fabric: ..." (no connection, TLS) or "login: ..." (credentials).
void test_link(hub_self self, const mg::Link& spec, caf::response_promise rp) {
  auto reply = [rp](mg::Response resp) mutable {
    std::string out;
    resp.SerializeToString(&out);
    rp.deliver(std::move(out));
  };
  auto& st = self->state;
  mg::Response resp;
  if (spec.host().empty() || spec.port() == 0 || spec.port() > 65535) {
    fail(resp, 400, "a link test needs host and port (the remote fabric port)");
    return reply(std::move(resp));
  }
  resp.set_status(200);
  auto& l = *resp.add_objects()->mutable_link();
  l.set_name(spec.name());
  l.set_host(spec.host());
  l.set_port(spec.port());
  l.set_user(spec.user());
  l.set_transport(st.ctx->tls ? "tls" : "tcp");
  auto failed = [reply, resp](std::string why) mutable {
    auto& l = *resp.mutable_objects(0)->mutable_link();
    l.set_state(to_string(link_state::failed));
    l.set_last_error(std::move(why));
    reply(std::move(resp));
  };
  if (!st.ctx->tls && !is_loopback(spec.host()))
    return failed("fabric: links without TLS are only allowed to loopback "
                  "addresses");
  auto where = spec.host() + ":" + std::to_string(spec.port());
  auto mm = st.ctx->tls ? self->system().openssl_manager().actor_handle()
                        : self->system().middleman().actor_handle();
  self
    ->request(mm, test_step_timeout, caf::connect_atom::value, spec.host(),
              static_cast<uint16_t>(spec.port()))
    .then(
      [=](caf::node_id&, caf::strong_actor_ptr& gk,
          std::set<std::string>&) mutable {
        if (!gk)
          return failed("fabric: no gatekeeper at " + where);
        auto stand_in = self->spawn(test_link_stand_in, 0);
        hello h;
        h.user = spec.user();
        h.password = spec.password();
        h.broker_id = self->state.ctx->broker_id;
        h.node_name = self->state.ctx->node_name;
        h.link = stand_in;
        self
          ->request(caf::actor_cast<caf::actor>(gk), test_step_timeout,
                    hello_atom::value, std::move(h))
          .then(
            [=](welcome& w) mutable {
              self->send_exit(stand_in, caf::exit_reason::user_shutdown);
              if (!w.ok)
                return failed("login: " + w.error);
              auto ok = resp;
              auto& l = *ok.mutable_objects(0)->mutable_link();
              l.set_state(to_string(link_state::operational));
              l.set_remote_node(w.node_name);
              l.set_remote_id(w.broker_id);
              reply(std::move(ok));
            },
            [=](caf::error& e) mutable {
              self->send_exit(stand_in, caf::exit_reason::user_shutdown);
              failed("login: no answer from " + where + ": "
                     + self->system().render(e));
            });
      },
      [=](caf::error& e) mutable {
        bool handshake = false;
        failed("fabric: "
               + connect_error_text(self->system(), e, where,
                                    self->state.ctx->tls, handshake));
      });
}

// -- connectors (config file) and duplex links
// ---------------------------------

/// Creates the routes of a connector, or of a peer's duplex offer, on
/// `link`. A route that cannot be created (no such exchange) is logged and
/// skipped: the other routes still work.
void add_routes(hub_self self, const std::string& link,
                const std::string& vhost,
                const std::vector<std::string>& exchanges,
                const std::vector<config::static_route>& statics,
                const config::key_filter& filter, uint32_t max_hops,
                uint32_t credit) {
  auto add = [&](const std::string& exchange, const std::string* key) {
    mg::Bridge b;
    b.set_link(link);
    b.set_source(exchange);
    b.set_dynamic(key == nullptr);
    if (key != nullptr)
      b.set_key(*key);
    b.set_credit(credit);
    b.set_max_hops(max_hops);
    mg::Response resp;
    create_bridge(self, vhost, b, resp, filter);
    if (resp.status() >= 300)
      FLOTILLA_LOG(warning, "federation: link " << link << ": no route on "
                                                << exchange << ": "
                                                << resp.error());
  };
  for (auto& x : exchanges)
    add(x, nullptr);
  for (auto& r : statics)
    add(r.exchange, &r.key);
}

void add_connector(hub_self self, const config::connector_spec& spec) {
  mg::Link l;
  l.set_name(spec.name);
  l.set_host(spec.host);
  l.set_port(spec.port);
  l.set_user(spec.user);
  l.set_password(spec.password);
  mg::Response resp;
  create_link(self, l, resp);
  if (resp.status() >= 300) {
    FLOTILLA_LOG(warning,
                 "federation: connector " << spec.name << ": " << resp.error());
    return;
  }
  self->state.links[spec.name].connector = spec;
  add_routes(self, spec.name, spec.vhost, spec.exchanges, spec.statics,
             spec.filter, spec.max_hops, spec.credit);
}

duplex_offer make_offer(const config::connector_spec& c, caf::actor session) {
  duplex_offer o;
  o.name = c.name;
  o.vhost = c.vhost;
  o.exchanges = c.exchanges;
  for (auto& r : c.statics) {
    o.static_exchanges.push_back(r.exchange);
    o.static_keys.push_back(r.key);
  }
  o.include = c.filter.include;
  o.exclude = c.filter.exclude;
  o.max_hops = c.max_hops;
  o.credit = c.credit;
  o.session = std::move(session);
  o.remote_name = c.remote_name;
  return o;
}

/// A duplex connector's link went up (or down): serve the peer's reverse
/// bridges through a session of our own, and offer the routes.
void update_reverse(hub_self self, link_rec& l, bool up) {
  if (l.reverse) {
    self->send_exit(l.reverse, caf::exit_reason::user_shutdown);
    l.reverse = nullptr;
  }
  if (!up || !l.connector || !l.connector->duplex)
    return;
  std::string peer_id;
  std::string peer_node;
  {
    std::lock_guard<std::mutex> guard{l.status->mtx};
    peer_id = l.status->remote_id;
    peer_node = l.status->remote_node;
  }
  auto& st = self->state;
  l.reverse = spawn_session(self->system(), l.session, peer_id, peer_node,
                            caf::actor_cast<caf::actor>(self), st.ctx);
  self->link_to(l.reverse);
  st.sessions.insert(l.reverse.address());
  self->send(l.session, duplex_atom::value,
             make_offer(*l.connector, l.reverse));
}

/// A peer's duplex connector: a link without an actor of its own (the
/// peer's connection carries it), named "duplex:PEER/CONNECTOR", and its
/// routes. It goes when `from` (our session of the peer's link) ends.
void accept_duplex(hub_self self, const std::string& peer_id,
                   const std::string& peer_node, duplex_offer& offer,
                   const caf::actor& from) {
  auto& st = self->state;
  auto name = offer.remote_name.empty()
                ? "duplex:" + peer_node + "/" + offer.name
                : offer.remote_name;
  if (auto i = st.links.find(name); i != st.links.end()) {
    if (!i->second.duplex_of) {
      // Never replace a link of our own by a peer's duplex link.
      FLOTILLA_LOG(warning, "federation: duplex link from "
                              << peer_node << " refused: a link named " << name
                              << " exists");
      return;
    }
    remove_link(self, i);
  }
  if (offer.static_exchanges.size() != offer.static_keys.size()
      || !offer.session)
    return;
  link_rec rec;
  rec.cfg.name = name;
  rec.status = std::make_shared<link_status>();
  rec.status->state = link_state::operational;
  rec.status->remote_id = peer_id;
  rec.status->remote_node = peer_node;
  rec.status->connects = 1;
  rec.session = offer.session;
  rec.duplex_of = from.address();
  st.links.emplace(name, std::move(rec));
  publish_event(self, "link", "state", name, {{"state", "Operational"}});
  FLOTILLA_LOG(notice,
               "federation: duplex link " << name << " from " << peer_node);
  std::vector<config::static_route> statics;
  for (size_t i = 0; i < offer.static_keys.size(); ++i)
    statics.push_back({offer.static_exchanges[i], offer.static_keys[i]});
  config::key_filter filter{offer.include, offer.exclude};
  add_routes(self, name, offer.vhost.empty() ? "/" : offer.vhost,
             offer.exchanges, statics, filter,
             offer.max_hops == 0 ? default_max_hops : offer.max_hops,
             offer.credit == 0 ? 100 : offer.credit);
}

caf::behavior hub_impl(hub_self self, context_ptr ctx, durable_routes initial) {
  self->state.ctx = std::move(ctx);
  self->delayed_send(self, recompute_interval, tick_atom::value);
  // The durable links and routes of the routes file, as they were.
  for (auto& l : initial.links)
    add_link(self, std::move(l));
  for (auto& b : initial.bridges) {
    if (self->state.links.count(b.link) == 0) {
      FLOTILLA_LOG(error, "federation: durable route "
                            << b.name << " names no durable link '" << b.link
                            << "'; not started");
      continue;
    }
    add_bridge(self, std::move(b));
  }
  // Importers of push routes are monitored: listed while they live.
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& imp = self->state.importers;
    for (auto i = imp.begin(); i != imp.end(); ++i)
      if (i->second.actor == msg.source) {
        imp.erase(i);
        return;
      }
  });
  // Links, bridges and sessions are linked to the hub: they stop with it.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    for (auto& [name, l] : st.links)
      if (l.actor.address() == msg.source) {
        FLOTILLA_LOG(error, "federation: link "
                              << name << " failed: "
                              << self->system().render(msg.reason));
        return;
      }
    for (auto& [name, b] : st.bridges)
      if (b.actor.address() == msg.source) {
        FLOTILLA_LOG(error, "federation: bridge "
                              << name << " failed: "
                              << self->system().render(msg.reason));
        return;
      }
    // A session ends when its peer goes away; anything else from outside
    // (shutdown) stops the hub.
    if (st.sessions.erase(msg.source) > 0) {
      for (auto i = st.links.begin(); i != st.links.end();) {
        auto next = std::next(i);
        if (i->second.duplex_of == msg.source)
          remove_link(self, i);
        i = next;
      }
      return;
    }
    self->quit(msg.reason);
  });
  return {
    [=](hello_atom, hello& h) -> welcome {
      auto& st = self->state;
      welcome w;
      if (h.broker_id == st.ctx->broker_id) {
        w.error = "a broker cannot link to itself";
        return w;
      }
      auto session
        = spawn_session(self->system(), h.link, h.broker_id, h.node_name,
                        caf::actor_cast<caf::actor>(self), st.ctx);
      self->link_to(session);
      st.sessions.insert(session.address());
      FLOTILLA_LOG(notice, "federation: link from " << h.node_name << " ("
                                                    << h.broker_id << ") as "
                                                    << h.user);
      w.ok = true;
      w.session = session;
      w.broker_id = st.ctx->broker_id;
      w.node_name = st.ctx->node_name;
      w.amqp_port = st.ctx->amqp_port->load();
      return w;
    },
    [=](link_state_atom, const std::string& name, link_state s,
        const std::string& error, caf::actor& session) {
      auto& st = self->state;
      auto i = st.links.find(name);
      if (i == st.links.end())
        return;
      auto& l = i->second;
      publish_event(self, "link", "state", name,
                    {{"state", to_string(s)},
                     {"last_error", error},
                     {"host", l.cfg.host},
                     {"port", std::to_string(l.cfg.port)}});
      bool up = s == link_state::operational;
      l.session = up ? session : caf::actor{};
      for (auto& [bname, b] : st.bridges) {
        if (b.cfg.link != name)
          continue;
        if (up)
          self->send(b.actor, link_up_atom::value, session);
        else
          self->send(b.actor, link_down_atom::value);
      }
      update_reverse(self, l, up);
      if (up)
        recompute(self);
    },
    [=](connector_atom, const config::connector_spec& spec) {
      add_connector(self, spec);
    },
    [=](duplex_atom, const std::string& peer_id, const std::string& peer_node,
        duplex_offer& offer, const caf::actor& from) {
      accept_duplex(self, peer_id, peer_node, offer, from);
    },
    [=](export_atom, export_info& info) {
      auto id = info.id;
      self->state.exports[id] = export_rec{std::move(info), {}};
    },
    [=](export_atom, caf::actor_id id) {
      if (self->state.exports.erase(id) > 0)
        recompute(self);
    },
    [=](importer_atom, importer_info& info, caf::actor& importer) {
      self->monitor(importer);
      self->state.importers[importer.id()]
        = importer_rec{std::move(info), importer.address()};
    },
    [=](interest_atom, caf::actor_id id, interest& in) {
      auto i = self->state.exports.find(id);
      if (i == self->state.exports.end())
        return;
      i->second.items = std::move(in.items);
      recompute(self);
    },
    [=](changed_atom) {
      recompute(self);
    },
    [=](tick_atom) {
      recompute(self);
      check_alarms(self);
      self->delayed_send(self, recompute_interval, tick_atom::value);
    },
    [=](fed_mgmt_atom, const std::string& bytes,
        const std::string& vhost) -> caf::result<std::string> {
      mg::Request req;
      if (req.ParseFromString(bytes) && req.kind() == mg::LINK
          && req.method() == mg::TEST) {
        auto rp = self->make_response_promise();
        test_link(self, req.link(), rp);
        return rp;
      }
      return handle_management(self, bytes, vhost);
    },
  };
}

} // namespace

caf::actor spawn_hub(caf::actor_system& sys, context_ptr ctx,
                     durable_routes initial) {
  return sys.spawn(hub_impl, std::move(ctx), std::move(initial));
}

} // namespace flotilla::federation
