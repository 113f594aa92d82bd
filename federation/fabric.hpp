#pragma once

// The inter-node fabric of a Flotilla broker and its federation: what
// flotillad starts. CAF io headers stay in the .cpp files.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

namespace flotilla {
class broker;
namespace config {
class user_db;
struct connector_spec;
} // namespace config
} // namespace flotilla

namespace flotilla::federation {

/// Options of the fabric (flotillad --fabric-*, --link-*).
struct fabric_settings {
  /// Address the fabric listens on. Without TLS (certificate) only
  /// loopback addresses are accepted.
  std::string interface = "127.0.0.1";
  /// 0 picks a free port.
  uint16_t port = 0;
  /// First reconnect delay of a link; doubles up to 64 s (Qpid's
  /// link-maintenance-interval).
  std::chrono::milliseconds maintenance_interval{2000};
  /// BASP heartbeat interval; a peer silent for four intervals is down.
  std::chrono::milliseconds heartbeat_interval{5000};
  /// The routes file of durable links and routes (DATA_DIR/federation.routes);
  /// empty without a data dir.
  std::string routes_path;
  /// TLS (caf::openssl): certificate, key and CA file (PEM), all or none.
  std::string certificate;
  std::string key;
  std::string ca_file;
  std::string passphrase;

  /// True if the fabric uses TLS.
  bool tls() const {
    return !certificate.empty();
  }
};

/// Prepares `cfg` for the fabric: loads CAF's middleman (BASP) with
/// heartbeats on and registers the federation's wire types. Call before the
/// actor_system is constructed.
void configure(caf::actor_system_config& cfg, const fabric_settings& s);

/// Returns an error text if `s` cannot be used (a non-loopback interface
/// without TLS, an incomplete TLS setting, unreadable files), else an empty
/// string. CAF's TLS without a certificate falls back to anonymous ciphers:
/// that is why TLS needs all three files.
std::string validate(const fabric_settings& s);

/// The fabric endpoint of one broker: publishes the gatekeeper on the fabric
/// port at construction; start() adds the federation hub once the broker
/// model exists. Owned by flotillad's main thread; stop() before the broker
/// stops.
class fabric {
public:
  /// Publishes the gatekeeper. Throws std::runtime_error if the port cannot
  /// be opened.
  fabric(caf::actor_system& sys, fabric_settings s,
         std::shared_ptr<const config::user_db> users);
  ~fabric();

  fabric(const fabric&) = delete;
  fabric& operator=(const fabric&) = delete;

  /// Returns the port the gatekeeper listens on.
  uint16_t port() const {
    return port_;
  }

  /// Returns this process's federation id (what traces name it by).
  const std::string& broker_id() const {
    return broker_id_;
  }

  /// Spawns the federation hub for `node` (after its vhosts exist and the
  /// management agents installed their event sink) and registers it in the
  /// actor registry as "federation" (management requests for links and
  /// bridges go there). Starts the durable links and routes of the routes
  /// file. Returns false, with a reason that names the file in `error`, if
  /// the file cannot be read or is corrupt (nothing is started then).
  bool start(broker& node, std::string& error);

  /// Creates the link and routes of a config-file connector (after
  /// start()). The link retries with backoff while the remote is down.
  void add_connector(const config::connector_spec& spec);

  /// Closes every link and bridge and the fabric port.
  void stop();

  /// The AMQP port, once it listens: peers' links learn it when they log
  /// in (their `route map` follows links of connectors with it).
  void set_amqp_port(uint16_t port) {
    amqp_port_->store(port);
  }

private:
  caf::actor_system& sys_;
  fabric_settings settings_;
  std::string broker_id_;
  uint16_t port_ = 0;
  std::shared_ptr<std::atomic<uint16_t>> amqp_port_
    = std::make_shared<std::atomic<uint16_t>>(0);
  caf::actor gatekeeper_;
  caf::actor hub_;
};

} // namespace flotilla::federation
