#include "actors/connection_actor.hpp"

#include <chrono>

#include "actors/atoms.hpp"
#include "actors/connection_state.hpp"
#include "actors/log.hpp"
#include "actors/stats.hpp"
#include "config/users.hpp"
#include "protocol/properties.hpp"

namespace flotilla {

namespace pr = protocol;

namespace {

constexpr auto handshake_timeout = std::chrono::seconds(10);

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch())
    .count();
}

/// Feeds the rate window; cheap unless a period (1 s) has passed.
void sample_rates(connection_state& st) {
  st.rates.sample(steady_ms(), {st.published_count, st.delivered_count});
}
constexpr auto close_ok_timeout = std::chrono::seconds(2);

pr::field_table server_properties(const broker& b) {
  pr::field_table caps;
  for (auto* cap :
       {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
        "consumer_cancel_notify", "connection.blocked", "consumer_priorities",
        "authentication_failure_close", "per_consumer_qos"})
    caps.set(cap, pr::field_value{true});
  pr::field_table props;
  props.set("capabilities", pr::field_value{std::move(caps)});
  props.set("cluster_name",
            pr::field_value{std::string{b.limits().cluster_name}});
  props.set("product", pr::field_value{std::string{"Flotilla"}});
  props.set("version", pr::field_value{std::string{"0.1.0"}});
  props.set("platform", pr::field_value{std::string{"C++17 / CAF 0.17"}});
  props.set("information",
            pr::field_value{std::string{"AMQP 0-9-1 broker, see docs/"}});
  return props;
}

std::string client_text(const pr::field_table& props, const char* key) {
  if (auto* v = props.find(key))
    if (auto* s = v->as_string())
      return *s;
  return {};
}

bool client_capability(const pr::field_table& client_props, const char* cap) {
  if (auto* v = client_props.find("capabilities"))
    if (auto* t = v->as_table())
      if (auto* c = t->find(cap))
        return c->as_bool().value_or(false);
  return false;
}

} // namespace

void connection_state::flush() {
  if ((!out.empty() || !out_slices.empty()) && sink) {
    sink->write(outbound{std::move(out), std::move(out_slices)});
    out.clear();
    out_slices.clear();
  }
}

void connection_state::connection_error(errc code, const std::string& text,
                                        uint16_t class_id, uint16_t method_id) {
  if (ph == phase::closing || ph == phase::closed)
    return;
  FLOTILLA_LOG(warning, "connection " << info.peer << " closed: " << text);
  flush_publishes();
  flush_settles();
  pr::connection_close close;
  close.reply_code = reply_code(code);
  close.reply_text = text.substr(0, 255);
  close.failing_class_id = class_id;
  close.failing_method_id = method_id;
  pr::append_method_frame(out, 0, close);
  flush();
  std::vector<uint16_t> open;
  for (auto& kv : channels)
    open.push_back(kv.first);
  for (auto ch : open)
    release_channel(ch);
  ph = phase::closing;
  self->delayed_send(self, close_ok_timeout, timeout_atom::value);
}

void connection_state::channel_error(uint16_t ch, errc code,
                                     const std::string& text, uint16_t class_id,
                                     uint16_t method_id) {
  if (is_connection_error(code)) {
    connection_error(code, text, class_id, method_id);
    return;
  }
  auto i = channels.find(ch);
  if (i == channels.end() || i->second.closing)
    return;
  FLOTILLA_LOG(debug,
               "channel " << ch << " of " << info.peer << " closed: " << text);
  pr::channel_close close;
  close.reply_code = reply_code(code);
  close.reply_text = text.substr(0, 255);
  close.failing_class_id = class_id;
  close.failing_method_id = method_id;
  pr::append_method_frame(out, ch, close);
  release_channel(ch);
  auto& c = channels[ch];
  c.closing = true;
}

void connection_state::release_channel(uint16_t ch) {
  auto i = channels.find(ch);
  if (i == channels.end())
    return;
  // Settlements the client sent before must reach the queues before the
  // close, or acked messages would be requeued.
  flush_publishes();
  flush_settles();
  auto& c = i->second;
  // Queues requeue everything this channel had unacked (held deliveries
  // included) and drop its consumers.
  for (auto& q : c.queues)
    self->send(q, closed_atom::value, owner_of(ch));
  for (auto& kv : c.consumers)
    consumers.erase(kv.second);
  auto epoch = next_epoch++;
  c = channel_state{};
  c.epoch = epoch;
}

void connection_state::finish() {
  if (ph == phase::closed)
    return;
  std::vector<uint16_t> open;
  for (auto& kv : channels)
    open.push_back(kv.first);
  for (auto ch : open)
    release_channel(ch);
  channels.clear();
  if (vhost) {
    self->send(vhost->actor, closed_atom::value, id);
    if (vhost->table->has_event_sink())
      vhost->table->notify(broker_event{"connection",
                                        "closed",
                                        {},
                                        std::to_string(id),
                                        {{"user", user}, {"peer", info.peer}}});
  }
  ph = phase::closed;
  flush();
  sink->close_after_flush();
  node->remove_connection(caf::actor_cast<caf::actor>(self));
  self->quit();
}

void connection_state::shutdown(const std::string& reason) {
  connection_error(errc::connection_forced,
                   "CONNECTION_FORCED - broker forced connection closure "
                   "with reason '"
                     + reason + "'");
  // Do not wait for close-ok during shutdown.
  finish();
}

namespace {

void on_start_ok(connection_state& st, pr::connection_start_ok& m) {
  std::string user;
  std::string pass;
  bool parsed = false;
  if (m.mechanism == "PLAIN")
    parsed = config::parse_sasl_plain(m.response, user, pass);
  else if (m.mechanism == "AMQPLAIN")
    parsed = config::parse_amqplain(m.response, user, pass);
  else {
    st.connection_error(errc::access_refused,
                        "ACCESS_REFUSED - unsupported authentication "
                        "mechanism '"
                          + m.mechanism + "'");
    return;
  }
  auto refuse = [&](const std::string& why) {
    FLOTILLA_LOG(warning, "login refused for user '" << user << "' from "
                                                     << st.info.peer << ": "
                                                     << why);
    st.connection_error(errc::access_refused,
                        "ACCESS_REFUSED - Login was refused using "
                        "authentication mechanism "
                          + m.mechanism
                          + ". For details see the broker logfile.");
  };
  if (!parsed) {
    refuse("malformed SASL response");
    return;
  }
  auto& users = st.node->users();
  if (st.node->limits().auth) {
    auto* u = users.find(user);
    if (u == nullptr || !users.check_password(*u, pass)) {
      refuse("invalid credentials");
      return;
    }
    if (users.loopback_only(user) && !st.info.peer_is_loopback) {
      refuse("user '" + user + "' can only connect via localhost");
      return;
    }
  }
  st.user = user;
  st.client_name = client_text(m.client_properties, "connection_name");
  st.client_product = client_text(m.client_properties, "product");
  st.cap_cancel_notify
    = client_capability(m.client_properties, "consumer_cancel_notify");
  st.cap_blocked = client_capability(m.client_properties, "connection.blocked");
  auto& lim = st.node->limits();
  pr::connection_tune tune;
  tune.channel_max = lim.channel_max;
  tune.frame_max = lim.frame_max;
  tune.heartbeat = lim.heartbeat;
  pr::append_method_frame(st.out, 0, tune);
  st.ph = phase::tune_ok;
}

void on_tune_ok(connection_state& st, pr::connection_tune_ok& m) {
  auto& lim = st.node->limits();
  if (m.frame_max != 0 && m.frame_max < pr::frame_min_size) {
    st.connection_error(errc::not_allowed,
                        "NOT_ALLOWED - frame_max=" + std::to_string(m.frame_max)
                          + " < " + std::to_string(pr::frame_min_size)
                          + " min size");
    return;
  }
  if (m.frame_max > lim.frame_max) {
    st.connection_error(errc::not_allowed,
                        "NOT_ALLOWED - frame_max=" + std::to_string(m.frame_max)
                          + " > " + std::to_string(lim.frame_max)
                          + " max size");
    return;
  }
  if (m.channel_max > lim.channel_max) {
    st.connection_error(errc::not_allowed, "NOT_ALLOWED - channel_max="
                                             + std::to_string(m.channel_max)
                                             + " > "
                                             + std::to_string(lim.channel_max));
    return;
  }
  st.frame_max = m.frame_max == 0 ? lim.frame_max : m.frame_max;
  st.channel_max = m.channel_max == 0 ? lim.channel_max : m.channel_max;
  st.heartbeat = m.heartbeat;
  st.sink->tune(st.frame_max, st.heartbeat);
  st.ph = phase::open;
}

void on_open(connection_state& st, pr::connection_open& m) {
  auto* vh = st.node->find_vhost(m.virtual_host);
  if (vh == nullptr) {
    st.connection_error(errc::not_allowed,
                        "NOT_ALLOWED - vhost " + m.virtual_host + " not found",
                        10, 40);
    return;
  }
  if (st.node->limits().auth) {
    auto* u = st.node->users().find(st.user);
    if (u == nullptr || !u->may_access(m.virtual_host)) {
      st.connection_error(errc::not_allowed,
                          "NOT_ALLOWED - access to vhost '" + m.virtual_host
                            + "' refused for user '" + st.user + "'",
                          10, 40);
      return;
    }
  }
  st.vhost = vh;
  pr::append_method_frame(st.out, 0, pr::connection_open_ok{});
  st.ph = phase::running;
  FLOTILLA_LOG(info, "connection " << st.info.peer << " opened (user '"
                                   << st.user << "', vhost '" << m.virtual_host
                                   << "')");
  if (vh->table->has_event_sink())
    vh->table->notify(
      broker_event{"connection",
                   "opened",
                   {},
                   std::to_string(st.id),
                   {{"user", st.user}, {"peer", st.info.peer}}});
}

/// Returns the management snapshot of this connection.
connection_stats management_stats(const connection_state& st) {
  connection_stats r;
  r.id = st.id;
  r.peer = st.info.peer;
  r.user = st.user;
  if (st.vhost)
    r.vhost = st.vhost->name;
  r.connected_at_ms = st.connected_at_ms;
  r.heartbeat = st.heartbeat;
  r.frame_max = st.frame_max;
  r.published = st.published_count;
  r.delivered = st.delivered_count;
  r.published_bytes = st.published_bytes;
  r.delivered_bytes = st.delivered_bytes;
  auto rates
    = st.rates.rates(steady_ms(), {st.published_count, st.delivered_count},
                     r.rate_window_seconds);
  r.publish_rate = rates[0];
  r.deliver_rate = rates[1];
  r.client_name = st.client_name;
  r.client_product = st.client_product;
  for (auto& [number, c] : st.channels) {
    if (c.closing)
      continue;
    channel_stats cs;
    cs.number = number;
    cs.prefetch = c.prefetch_consumer;
    cs.global_prefetch = c.prefetch_global;
    cs.unacked = static_cast<uint32_t>(c.unacked.size());
    cs.consumers = static_cast<uint32_t>(c.consumers.size());
    cs.confirm = c.confirm;
    cs.transactional = c.tx;
    cs.flow = c.flow;
    r.channels.push_back(cs);
  }
  for (auto& kv : st.consumers)
    r.consumers.push_back(consumer_stats{kv.second.channel, kv.second.tag,
                                         kv.second.queue, kv.second.no_ack});
  return r;
}

/// Handles a method on channel 0 or the handshake.
void on_connection_method(connection_state& st, pr::command& cmd) {
  auto unexpected = [&] {
    st.connection_error(errc::command_invalid,
                        std::string{"COMMAND_INVALID - unexpected method "}
                          + pr::name_of(cmd.m) + " on channel 0",
                        pr::class_id_of(cmd.m), pr::method_id_of(cmd.m));
  };
  switch (st.ph) {
    case phase::start_ok:
      if (auto* m = std::get_if<pr::connection_start_ok>(&cmd.m))
        on_start_ok(st, *m);
      else
        unexpected();
      return;
    case phase::tune_ok:
      if (auto* m = std::get_if<pr::connection_tune_ok>(&cmd.m))
        on_tune_ok(st, *m);
      else
        unexpected();
      return;
    case phase::open:
      if (auto* m = std::get_if<pr::connection_open>(&cmd.m))
        on_open(st, *m);
      else
        unexpected();
      return;
    case phase::running:
      break;
    case phase::closing:
      if (std::holds_alternative<pr::connection_close_ok>(cmd.m)
          || std::holds_alternative<pr::connection_close>(cmd.m))
        st.finish();
      return;
    case phase::closed:
      return;
  }
  if (std::holds_alternative<pr::connection_close>(cmd.m)) {
    st.flush_publishes();
    st.flush_settles();
    pr::append_method_frame(st.out, 0, pr::connection_close_ok{});
    st.finish();
  } else if (std::holds_alternative<pr::connection_close_ok>(cmd.m)) {
    st.finish();
  } else if (std::holds_alternative<pr::connection_update_secret>(cmd.m)) {
    pr::append_method_frame(st.out, 0, pr::connection_update_secret_ok{});
  } else if (std::holds_alternative<pr::connection_blocked>(cmd.m)
             || std::holds_alternative<pr::connection_unblocked>(cmd.m)) {
    // Client-sent blocked notifications carry no meaning for the broker.
  } else {
    unexpected();
  }
}

void on_channel_level(connection_state& st, pr::command& cmd) {
  auto ch = cmd.channel;
  if (st.ph != phase::running) {
    if (st.ph == phase::closing || st.ph == phase::closed)
      return; // Everything but close-ok is ignored while closing.
    st.connection_error(errc::channel_error,
                        "CHANNEL_ERROR - channel used before connection.open",
                        pr::class_id_of(cmd.m), pr::method_id_of(cmd.m));
    return;
  }
  if (ch > st.channel_max) {
    st.connection_error(errc::not_allowed,
                        "NOT_ALLOWED - channel " + std::to_string(ch)
                          + " exceeds the negotiated channel_max ("
                          + std::to_string(st.channel_max) + ")",
                        pr::class_id_of(cmd.m), pr::method_id_of(cmd.m));
    return;
  }
  auto i = st.channels.find(ch);
  if (std::holds_alternative<pr::channel_open>(cmd.m)) {
    if (i != st.channels.end()) {
      st.connection_error(errc::channel_error,
                          "CHANNEL_ERROR - second 'channel.open' seen", 20, 10);
      return;
    }
    auto& c = st.channels[ch];
    c.epoch = st.next_epoch++;
    pr::append_method_frame(st.out, ch, pr::channel_open_ok{});
    return;
  }
  if (i == st.channels.end()) {
    st.connection_error(errc::channel_error,
                        "CHANNEL_ERROR - expected 'channel.open'",
                        pr::class_id_of(cmd.m), pr::method_id_of(cmd.m));
    return;
  }
  auto& c = i->second;
  if (c.closing) {
    // After our channel.close only close / close-ok matter.
    if (std::holds_alternative<pr::channel_close_ok>(cmd.m)) {
      st.channels.erase(i);
    } else if (std::holds_alternative<pr::channel_close>(cmd.m)) {
      pr::append_method_frame(st.out, ch, pr::channel_close_ok{});
    }
    return;
  }
  if (std::holds_alternative<pr::channel_close>(cmd.m)) {
    st.flush_publishes();
    st.flush_settles();
    st.release_channel(ch);
    st.channels.erase(ch);
    pr::append_method_frame(st.out, ch, pr::channel_close_ok{});
    return;
  }
  if (std::holds_alternative<pr::channel_close_ok>(cmd.m))
    return; // Stray close-ok: ignore as RabbitMQ does.
  st.on_channel_command(ch, cmd);
}

void on_input(connection_state& st, input_batch& batch) {
  for (auto& cmd : batch.commands) {
    if (st.ph == phase::closed)
      break;
    auto cls = pr::class_id_of(cmd.m);
    if (cmd.channel == 0) {
      if (cls != 10) {
        if (st.ph == phase::closing)
          continue;
        st.connection_error(errc::command_invalid,
                            std::string{"COMMAND_INVALID - "}
                              + pr::name_of(cmd.m) + " on channel 0",
                            cls, pr::method_id_of(cmd.m));
        continue;
      }
      on_connection_method(st, cmd);
    } else if (cls == 10) {
      if (st.ph == phase::closing)
        continue;
      st.connection_error(errc::command_invalid,
                          std::string{"COMMAND_INVALID - "} + pr::name_of(cmd.m)
                            + " on channel " + std::to_string(cmd.channel),
                          cls, pr::method_id_of(cmd.m));
    } else {
      on_channel_level(st, cmd);
    }
  }
  st.flush_publishes();
  st.flush_settles();
  if (batch.error != errc::none && st.ph != phase::closed) {
    if (!is_connection_error(batch.error) && batch.error_channel != 0
        && st.channels.count(batch.error_channel) > 0) {
      // The transport already drops the rest of that message's frames.
      st.channel_error(batch.error_channel, batch.error, batch.error_text);
    } else {
      st.connection_error(batch.error, batch.error_text);
      st.finish(); // The input stream is unusable: do not wait for close-ok.
    }
  }
  if (batch.closed && st.ph != phase::closed) {
    FLOTILLA_LOG(debug, "connection " << st.info.peer << " closed by peer");
    st.finish();
  }
  st.flush();
}

/// Returns true if `batch` publishes a message.
bool publishes(const input_batch& batch) {
  for (auto& cmd : batch.commands)
    if (std::holds_alternative<pr::basic_publish>(cmd.m))
      return true;
  return false;
}

/// Processes `batch`, unless a resource alarm is set and it publishes: then
/// it is held (with everything after it) until the alarm clears, as
/// RabbitMQ blocks a publishing connection. A client that announced the
/// capability hears connection.blocked.
void on_input_batch(connection_state& st, input_batch_ptr batch) {
  if (batch->closed) {
    // The peer is gone: what was held will never be answered.
    for (size_t i = 0; i < st.held_input.size(); ++i)
      st.sink->batch_done();
    st.held_input.clear();
  } else if (st.blocked
             || (st.ph == phase::running && st.node->publishing_blocked()
                 && publishes(*batch))) {
    if (!st.blocked) {
      st.blocked = true;
      FLOTILLA_LOG(info, "connection " << st.info.peer << " blocked: "
                                       << st.node->blocked_reason());
      if (st.cap_blocked) {
        pr::append_method_frame(
          st.out, 0, pr::connection_blocked{st.node->blocked_reason()});
        st.blocked_sent = true;
        st.flush();
      }
    }
    st.held_input.push_back(std::move(batch));
    return;
  }
  on_input(st, *batch);
  st.sink->batch_done();
}

/// The alarms cleared: processes what was held, in order.
void on_unblock(connection_state& st) {
  if (!st.blocked)
    return;
  st.blocked = false;
  if (st.blocked_sent && st.ph != phase::closed) {
    pr::append_method_frame(st.out, 0, pr::connection_unblocked{});
    st.blocked_sent = false;
    st.flush();
  }
  FLOTILLA_LOG(info, "connection " << st.info.peer << " unblocked");
  auto held = std::move(st.held_input);
  st.held_input.clear();
  while (!held.empty()) {
    auto batch = std::move(held.front());
    held.pop_front();
    if (st.blocked) {
      // Blocked again on the way (a new alarm): keep the order.
      st.held_input.push_back(std::move(batch));
      continue;
    }
    on_input_batch(st, std::move(batch));
  }
}

caf::behavior connection_impl(connection_self self, broker* node,
                              std::shared_ptr<connection_sink> sink,
                              connection_info info) {
  auto& st = self->state;
  st.self = self;
  st.node = node;
  st.sink = std::move(sink);
  st.info = std::move(info);
  st.id = node->next_connection_id();
  st.connected_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  pr::connection_start start;
  start.server_properties = server_properties(*node);
  start.mechanisms = "PLAIN AMQPLAIN";
  start.locales = "en_US";
  pr::append_method_frame(st.out, 0, start);
  st.flush();
  self->delayed_send(self, handshake_timeout, timeout_atom::value);
  return {
    [=](input_atom, input_batch_ptr& batch) {
      on_input_batch(self->state, std::move(batch));
      sample_rates(self->state);
    },
    [=](unblock_atom) {
      on_unblock(self->state);
    },
    [=](deliver_atom, delivery_batch& batch) {
      auto& st = self->state;
      st.on_deliveries(batch);
      st.flush_settles();
      st.flush();
      sample_rates(st);
    },
    [=](cancelled_atom, uint64_t key) {
      self->state.on_cancelled(key);
      self->state.flush();
    },
    [=](shutdown_atom, const std::string& reason) {
      self->state.shutdown(reason);
    },
    [=](mgmt_atom) -> connection_stats {
      auto s = management_stats(self->state);
      s.mailbox = self->mailbox().size();
      return s;
    },
    [=](timeout_atom) {
      auto& st = self->state;
      if (st.ph == phase::closing) {
        st.finish();
      } else if (st.ph != phase::running && st.ph != phase::closed) {
        FLOTILLA_LOG(warning,
                     "connection " << st.info.peer << ": handshake timeout");
        st.finish();
      }
    },
  };
}

} // namespace

caf::actor spawn_connection(broker& b, std::shared_ptr<connection_sink> sink,
                            connection_info info) {
  auto a
    = b.system().spawn(connection_impl, &b, std::move(sink), std::move(info));
  b.add_connection(a);
  return a;
}

} // namespace flotilla
