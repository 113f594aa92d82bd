#include "federation/fabric.hpp"

#include <unistd.h>

#include <stdexcept>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/broker.hpp"
#include "actors/events.hpp"
#include "actors/log.hpp"
#include "actors/message_pager.hpp"
#include "federation/actors.hpp"

namespace flotilla::federation {

void add_wire_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<hello>("flotilla.fed.hello");
  cfg.add_message_type<welcome>("flotilla.fed.welcome");
  cfg.add_message_type<subscription>("flotilla.fed.subscription");
  cfg.add_message_type<subscribed>("flotilla.fed.subscribed");
  cfg.add_message_type<pushed>("flotilla.fed.pushed");
  cfg.add_message_type<interest_item>("flotilla.fed.interest_item");
  cfg.add_message_type<interest>("flotilla.fed.interest");
  cfg.add_message_type<fed_message>("flotilla.fed.message");
  cfg.add_message_type<forward_batch>("flotilla.fed.forward_batch");
  cfg.add_message_type<forward_ack>("flotilla.fed.forward_ack");
  cfg.add_message_type<duplex_offer>("flotilla.fed.duplex_offer");
}

void configure(caf::actor_system_config& cfg, const fabric_settings& s) {
  cfg.load<caf::io::middleman>();
  // CAF's default is no heartbeats: a silent peer would stay "connected".
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{
            std::chrono::duration_cast<caf::timespan>(s.heartbeat_interval)});
  cfg.set("middleman.connection-timeout",
          caf::timespan{std::chrono::duration_cast<caf::timespan>(
            s.heartbeat_interval * 4)});
  if (s.tls()) {
    // caf::openssl wraps BASP in TLS; with the CA file it verifies peers
    // both ways (a peer without a certificate, or signed by another CA, is
    // refused during the handshake).
    cfg.load<caf::openssl::manager>();
    cfg.set("openssl.certificate", s.certificate);
    cfg.set("openssl.key", s.key);
    cfg.set("openssl.cafile", s.ca_file);
    if (!s.passphrase.empty())
      cfg.set("openssl.passphrase", s.passphrase);
  }
  add_wire_types(cfg);
}

std::string validate(const fabric_settings& s) {
  bool any = !s.certificate.empty() || !s.key.empty() || !s.ca_file.empty()
             || !s.passphrase.empty();
  if (any && (s.certificate.empty() || s.key.empty() || s.ca_file.empty()))
    return "fabric TLS needs fabric-certificate, fabric-key and "
           "fabric-ca-file together (without a certificate CAF would fall "
           "back to anonymous ciphers)";
  for (auto* f : {&s.certificate, &s.key, &s.ca_file})
    if (!f->empty() && ::access(f->c_str(), R_OK) != 0)
      return "cannot read fabric TLS file '" + *f + "'";
  if (!s.tls() && !is_loopback(s.interface))
    return "fabric-interface '" + s.interface
           + "': without TLS (fabric-certificate, fabric-key, fabric-ca-file) "
             "the fabric listens on loopback addresses only";
  if (s.maintenance_interval.count() <= 0 || s.heartbeat_interval.count() <= 0)
    return "link-maintenance-interval and link-heartbeat-interval must be "
           "positive";
  return {};
}

namespace {

/// Passes every broker event on, and tells the hub about changes that may
/// change the interest of dynamic routes (bindings, queues, exchanges).
class federation_events : public event_sink {
public:
  federation_events(std::shared_ptr<event_sink> inner, caf::actor hub)
    : inner_(std::move(inner)), hub_(std::move(hub)) {}

  void publish(broker_event e) override {
    if (e.kind == "binding" || e.kind == "queue" || e.kind == "exchange")
      caf::anon_send(hub_, changed_atom::value);
    if (inner_)
      inner_->publish(std::move(e));
  }

private:
  std::shared_ptr<event_sink> inner_;
  caf::actor hub_;
};

} // namespace

fabric::fabric(caf::actor_system& sys, fabric_settings s,
               std::shared_ptr<const config::user_db> users)
  : sys_(sys), settings_(std::move(s)), broker_id_(make_broker_id()) {
  if (settings_.tls() && !tls_error_queue_guarded())
    // A build in which libssl's definitions come first (a static libssl,
    // say): an error on one TLS connection may drop the others again.
    FLOTILLA_LOG(warning, "fabric: the TLS error queue guard is not in use; "
                          "one failed TLS connection may drop the others");
  gatekeeper_ = spawn_gatekeeper(sys_, std::move(users));
  auto port = settings_.tls()
                ? caf::openssl::publish(gatekeeper_, settings_.port,
                                        settings_.interface.c_str(), true)
                : sys_.middleman().publish(gatekeeper_, settings_.port,
                                           settings_.interface.c_str(), true);
  if (!port) {
    caf::anon_send_exit(gatekeeper_, caf::exit_reason::user_shutdown);
    throw std::runtime_error(
      "cannot open the fabric port " + settings_.interface + ":"
      + std::to_string(settings_.port) + ": " + sys_.render(port.error()));
  }
  port_ = *port;
}

fabric::~fabric() {
  stop();
}

bool fabric::start(broker& node, std::string& error) {
  durable_routes initial;
  if (!settings_.routes_path.empty()
      && !load_routes_file(settings_.routes_path, initial, error))
    return false;
  if (!initial.links.empty() || !initial.bridges.empty())
    FLOTILLA_LOG(notice, "federation: "
                           << initial.links.size() << " durable links and "
                           << initial.bridges.size() << " durable routes in "
                           << settings_.routes_path);
  auto ctx = std::make_shared<federation_context>();
  ctx->node = &node;
  ctx->broker_id = broker_id_;
  ctx->node_name = node.limits().node_name;
  ctx->maintenance_interval = settings_.maintenance_interval;
  ctx->routes_path = settings_.routes_path;
  ctx->tls = settings_.tls();
  ctx->amqp_port = amqp_port_;
  // Export queues number what they page out (federation/core.hpp).
  node.page_hook().set([self = broker_id_, numbers = ctx->numbers](
                         const std::string& queue, const message_ptr& m) {
    return number_for_paging(queue, m, self, *numbers);
  });
  hub_ = spawn_hub(sys_, std::move(ctx), std::move(initial));
  sys_.registry().put(caf::atom("federation"),
                      caf::actor_cast<caf::strong_actor_ptr>(hub_));
  caf::anon_send(gatekeeper_, hub_atom::value, hub_);
  node.set_event_sink(
    std::make_shared<federation_events>(node.shared_events(), hub_));
  return true;
}

void fabric::add_connector(const config::connector_spec& spec) {
  if (hub_)
    caf::anon_send(hub_, connector_atom::value, spec);
}

void fabric::stop() {
  if (hub_) {
    sys_.registry().erase(caf::atom("federation"));
    caf::anon_send_exit(hub_, caf::exit_reason::user_shutdown);
    hub_ = nullptr;
  }
  if (gatekeeper_) {
    if (settings_.tls())
      // caf/openssl/unpublish.hpp of 0.17.6 does not compile (it omits the
      // actor address the manager's interface expects): ask directly.
      caf::anon_send(sys_.openssl_manager().actor_handle(),
                     caf::unpublish_atom::value, gatekeeper_.address(), port_);
    else
      (void)sys_.middleman().unpublish(gatekeeper_, port_);
    caf::anon_send_exit(gatekeeper_, caf::exit_reason::user_shutdown);
    gatekeeper_ = nullptr;
  }
}

} // namespace flotilla::federation
