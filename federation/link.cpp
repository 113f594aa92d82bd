// The link actor: keeps one connection to a remote broker's gatekeeper.
//
//            spawn
//              |
//              v
//   +-----> Waiting --timer--> Connecting --welcome--> Operational
//   |          ^                  |   |                     |
//   |          +--- error --------+   +-- refused --> Failed |
//   |          +------------- session down -----------------+
//   |                                                        (Failed retries
//   +-- delete: Closed (the actor quits)                      every 64 s)
//
// Each attempt asks CAF's middleman to connect (asynchronously: the actor
// never blocks), then sends a hello with the user and password to the
// remote gatekeeper. Delays between attempts start at the maintenance
// interval and double up to 64 s; a refused login or a failed (TLS)
// handshake waits the longest delay (no hot retry loop). The session handle is
// monitored: a BASP connection that dies (or misses heartbeats) turns into a
// down message. After such a loss the broker with the greater federation id
// waits half a delay longer (reconnect_delay in core.hpp): when the peer has
// a link back to us, the peer dials first and our link then logs in over that
// connection (CAF closes our own dial as redundant) instead of racing it.

#include <chrono>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/log.hpp"
#include "federation/actors.hpp"

namespace flotilla::federation {

const char* to_string(link_state x) {
  switch (x) {
    case link_state::waiting:
      return "Waiting";
    case link_state::connecting:
      return "Connecting";
    case link_state::operational:
      return "Operational";
    case link_state::failed:
      return "Failed";
    default:
      return "Closed";
  }
}

std::string connect_error_text(caf::actor_system& sys, const caf::error& e,
                               const std::string& where, bool tls,
                               bool& handshake) {
  handshake = e == caf::sec::disconnect_during_handshake;
  if (!handshake)
    return "cannot connect to " + where + ": " + sys.render(e);
  // The peer hung up during the handshake: with TLS, its CA did not sign
  // our certificate (or ours did not sign its), or only one side uses TLS.
  return "fabric handshake with " + where + " failed"
         + (tls ? " (TLS: the peer's certificate is not signed by our "
                  "fabric-ca-file, ours not by its CA, or the peer has no "
                  "TLS)"
                : " (the peer may require TLS)")
         + ": " + sys.render(e);
}

namespace {

constexpr auto attempt_timeout = std::chrono::seconds(10);
constexpr auto longest_delay = std::chrono::milliseconds(64000);

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

struct link_actor_state {
  static inline const char* name = "link";
  link_config cfg;
  std::shared_ptr<link_status> status;
  caf::actor hub;
  context_ptr ctx;
  backoff delays{std::chrono::milliseconds(2000), longest_delay};
  caf::actor session;
  uint64_t attempt = 0; ///< Ignores answers and timers of older attempts.
  bool cut = false;     ///< Fault injection: no session, no attempts.
};

using link_self = caf::stateful_actor<link_actor_state>*;

void set_state(link_self self, link_state s, const std::string& error,
               int64_t next_attempt_ms = 0) {
  auto& st = self->state;
  bool changed;
  {
    std::lock_guard<std::mutex> guard{st.status->mtx};
    changed = st.status->state != s || st.status->last_error != error;
    st.status->state = s;
    if (!error.empty() || s == link_state::operational)
      st.status->last_error = error;
    st.status->next_attempt_ms = next_attempt_ms;
    if (s == link_state::operational)
      ++st.status->connects;
  }
  if (changed)
    self->send(st.hub, link_state_atom::value, st.cfg.name, s, error,
               st.session);
}

void schedule(link_self self, std::chrono::milliseconds delay, link_state s,
              const std::string& error) {
  auto& st = self->state;
  set_state(self, s, error, now_ms() + delay.count());
  FLOTILLA_LOG(info, "federation: link " << st.cfg.name << " " << to_string(s)
                                         << (error.empty() ? "" : ": ") << error
                                         << "; next attempt in "
                                         << delay.count() << " ms");
  self->delayed_send(self, delay, retry_atom::value, st.attempt);
}

void failed_attempt(link_self self, const std::string& error) {
  schedule(self, self->state.delays.next(), link_state::waiting, error);
}

void attempt(link_self self) {
  auto& st = self->state;
  auto id = ++st.attempt;
  set_state(self, link_state::connecting, {});
  auto mm = st.ctx->tls ? self->system().openssl_manager().actor_handle()
                        : self->system().middleman().actor_handle();
  self
    ->request(mm, attempt_timeout, caf::connect_atom::value, st.cfg.host,
              st.cfg.port)
    .then(
      [=](caf::node_id&, caf::strong_actor_ptr& gk, std::set<std::string>&) {
        auto& st = self->state;
        if (id != st.attempt)
          return;
        if (!gk) {
          failed_attempt(self, "no gatekeeper at " + st.cfg.host + ":"
                                 + std::to_string(st.cfg.port));
          return;
        }
        hello h;
        h.user = st.cfg.user;
        h.password = st.cfg.password;
        h.broker_id = st.ctx->broker_id;
        h.node_name = st.ctx->node_name;
        h.link = caf::actor_cast<caf::actor>(self);
        self
          ->request(caf::actor_cast<caf::actor>(gk), attempt_timeout,
                    hello_atom::value, std::move(h))
          .then(
            [=](welcome& w) {
              auto& st = self->state;
              if (id != st.attempt)
                return;
              if (!w.ok) {
                // Wrong credentials do not fix themselves quickly: wait
                // the longest delay, stay Failed with the reason.
                schedule(self, longest_delay, link_state::failed, w.error);
                return;
              }
              st.delays.reset();
              st.session = w.session;
              self->monitor(st.session);
              {
                std::lock_guard<std::mutex> guard{st.status->mtx};
                st.status->remote_id = w.broker_id;
                st.status->remote_node = w.node_name;
                st.status->remote_amqp_port = w.amqp_port;
              }
              FLOTILLA_LOG(notice, "federation: link "
                                     << st.cfg.name << " operational (peer "
                                     << w.node_name << " " << w.broker_id
                                     << ")");
              set_state(self, link_state::operational, {});
            },
            [=](caf::error& e) {
              if (id != self->state.attempt)
                return;
              failed_attempt(self, "hello: " + self->system().render(e));
            });
      },
      [=](caf::error& e) {
        auto& st = self->state;
        if (id != st.attempt)
          return;
        auto where = st.cfg.host + ":" + std::to_string(st.cfg.port);
        bool handshake = false;
        auto text = connect_error_text(self->system(), e, where, st.ctx->tls,
                                       handshake);
        if (handshake) {
          // Retrying soon would not help: Failed, longest delay, as a
          // refused login.
          schedule(self, longest_delay, link_state::failed, text);
          return;
        }
        failed_attempt(self, text);
      });
}

caf::behavior link_impl(link_self self, link_config cfg,
                        std::shared_ptr<link_status> status, caf::actor hub,
                        context_ptr ctx) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.status = std::move(status);
  st.hub = std::move(hub);
  st.delays = backoff{ctx->maintenance_interval, longest_delay};
  st.ctx = std::move(ctx);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    if (msg.source != st.session.address())
      return;
    st.session = nullptr;
    ++st.attempt;
    std::string remote_id;
    {
      std::lock_guard<std::mutex> guard{st.status->mtx};
      remote_id = st.status->remote_id;
    }
    // Tie-break with a link of the peer back to us (core.hpp): the greater
    // broker id redials half a delay later.
    auto delay
      = reconnect_delay(st.delays.next(), st.ctx->broker_id, remote_id);
    schedule(self, delay, link_state::waiting,
             "connection lost: " + self->system().render(msg.reason));
  });
  self->attach_functor([status = st.status] {
    std::lock_guard<std::mutex> guard{status->mtx};
    status->state = link_state::closed;
  });
  self->send(self, retry_atom::value, st.attempt);
  return {
    [=](retry_atom, uint64_t which) {
      auto& st = self->state;
      if (which == st.attempt && !st.session && !st.cut)
        attempt(self);
    },
    [=](fault_atom, bool cut) {
      auto& st = self->state;
      if (cut == st.cut)
        return;
      st.cut = cut;
      ++st.attempt; // Answers and timers of earlier attempts are void.
      if (cut) {
        if (st.session) {
          // The remote session ends its exports, as for a lost connection.
          self->demonitor(st.session);
          self->send(st.session, link_down_atom::value);
          st.session = nullptr;
        }
        set_state(self, link_state::waiting,
                  "cut by fault injection (flotilla link heal to reconnect)");
        return;
      }
      st.delays.reset();
      self->send(self, retry_atom::value, st.attempt);
    },
  };
}

} // namespace

caf::actor spawn_link(caf::actor_system& sys, link_config cfg,
                      std::shared_ptr<link_status> status, caf::actor hub,
                      context_ptr ctx) {
  return sys.spawn(link_impl, std::move(cfg), std::move(status), std::move(hub),
                   std::move(ctx));
}

} // namespace flotilla::federation
