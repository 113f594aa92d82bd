#pragma once

// The federation's actors (node-local header; only federation/ includes it).
//
//   gatekeeper  published on the fabric port; checks a peer's user and
//               password, then hands the hello to the hub.
//   hub         one per broker, registered as "federation": owns the links
//               and bridges of this broker, answers management requests,
//               spawns a session per authenticated peer, and recomputes the
//               interest of dynamic routes.
//   link        one per remote broker this broker pulls from: connects to
//               its gatekeeper, keeps the state (Waiting, Connecting,
//               Operational, Failed, Closed) and reconnects with backoff.
//   bridge      one per route on the destination broker: subscribes through
//               its link's session and republishes what arrives into the
//               local exchange, answering only after the enqueue.
//   session     on the source broker, one per peer link: spawns exports.
//   export      on the source broker, one per bridge: a queue bound to the
//               source exchange (or an existing queue), consumed with credit,
//               forwarded to the bridge; acked after the bridge's answer.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include "config/connectors.hpp"
#include "federation/core.hpp"
#include "federation/wire.hpp"

namespace flotilla {
class broker;
namespace config {
class user_db;
} // namespace config
} // namespace flotilla

namespace flotilla::federation {

// Node-local atoms.
using hub_atom = caf::atom_constant<caf::atom("fedhub")>;
using link_state_atom = caf::atom_constant<caf::atom("linkstate")>;
using link_up_atom = caf::atom_constant<caf::atom("linkup")>;
using link_down_atom = caf::atom_constant<caf::atom("linkdown")>;
using export_atom = caf::atom_constant<caf::atom("fedexport")>;
using retry_atom = caf::atom_constant<caf::atom("fedretry")>;
using changed_atom = caf::atom_constant<caf::atom("fedchange")>;
/// Fault injection on a link: (fault_atom, true) cuts it (ends its session
/// and stops reconnecting), (fault_atom, false) heals it.
using fault_atom = caf::atom_constant<caf::atom("fedfault")>;
/// Management requests from the agent: (fed_mgmt_atom, Request bytes,
/// vhost) -> Response bytes. Registry key of the hub: "federation".
using fed_mgmt_atom = caf::atom_constant<caf::atom("fedmgmt")>;
/// A connector of the config file, created at boot: (connector_atom,
/// config::connector_spec).
using connector_atom = caf::atom_constant<caf::atom("fedconn")>;
/// An importer of a peer's push route started: (importer_atom,
/// importer_info, the importer); the hub lists it while it lives.
using importer_atom = caf::atom_constant<caf::atom("fedimport")>;

/// The states of a link, as Qpid names them.
enum class link_state { waiting, connecting, operational, failed, closed };

const char* to_string(link_state x);

/// What a link actor shares with the hub (read by management).
struct link_status {
  mutable std::mutex mtx;
  link_state state = link_state::waiting;
  std::string last_error;
  std::string remote_id;
  std::string remote_node;
  uint16_t remote_amqp_port = 0; ///< As the remote said in its welcome.
  uint64_t connects = 0;         ///< Successful connections so far.
  int64_t next_attempt_ms = 0;
  bool cut = false; ///< Cut by fault injection (flotilla link cut).
};

/// Counters of a bridge or an export (atomics: written by its actor, read by
/// the hub for management).
struct route_counters {
  std::atomic<uint64_t> messages_in{0};  ///< Accepted into the local exchange.
  std::atomic<uint64_t> messages_out{0}; ///< Forwarded over the link.
  std::atomic<uint64_t> dropped_loop{0};
  std::atomic<uint64_t> dropped_duplicate{0};
  std::atomic<uint64_t> dropped_hops{0};
  std::atomic<uint64_t> unroutable{0};
  /// Refused by a destination queue and requeued on the source (counted on
  /// both sides; the same message may be refused more than once).
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> in_flight{0}; ///< Forwarded, not acked yet.
  std::atomic<uint64_t> bytes_in{0};  ///< Body bytes of messages_in.
  std::atomic<uint64_t> bytes_out{0}; ///< Body bytes of messages_out.
  /// Waiting for the route: ready in the export's queue plus in flight.
  /// Sampled by the export every stats_interval; a bridge stores what its
  /// export last reported.
  std::atomic<uint64_t> backlog{0};
  /// Age of the oldest waiting message (ms), sampled like backlog.
  std::atomic<int64_t> lag_ms{0};
};

/// How often an export samples its backlog and lag and reports them to its
/// bridge.
constexpr auto stats_interval = std::chrono::seconds(1);

/// State of a bridge, shared with the hub.
struct bridge_status {
  mutable std::mutex mtx;
  std::string state = "waiting"; ///< waiting, subscribing, active, failed
  std::string last_error;
  route_counters counters;
  std::vector<std::string> keys; ///< Dynamic: the keys sent to the source.
};

/// What an export tells the hub when it starts.
struct export_info {
  caf::actor_id id = 0;
  std::string peer_id; ///< The destination broker.
  std::string peer_node;
  std::string bridge_name;
  std::string vhost;
  std::string exchange;
  std::string queue; ///< The queue it consumes.
  bool dynamic = false;
  /// Spawned by a push bridge (--src-local) of this broker, not by a
  /// session: its counters are that bridge's.
  bool local = false;
  std::shared_ptr<route_counters> counters;
};

/// What a session tells the hub when it starts an importer for a peer's
/// push route (--src-local): listed on this broker as a route in.
struct importer_info {
  std::string peer_node;
  std::string route; ///< The route's name on the peer (the source).
  std::string vhost;
  std::string exchange;
  uint32_t max_hops = 0;
  std::shared_ptr<bridge_status> status;
};

/// Shared by the actors of one broker.
struct federation_context {
  broker* node = nullptr;
  std::string broker_id;
  std::string node_name;
  std::shared_ptr<const config::user_db> users;
  std::shared_ptr<dedup_window> seen = std::make_shared<dedup_window>();
  std::shared_ptr<origin_numbers> numbers = std::make_shared<origin_numbers>();
  std::chrono::milliseconds maintenance_interval{2000};
  /// The routes file of durable links and routes (routes_file.hpp); empty
  /// without a data dir (then --durable is refused).
  std::string routes_path;
  bool tls = false; ///< Links connect with caf::openssl.
  /// This broker's AMQP port, told to peers in the welcome; set once the
  /// AMQP listener is up (fabric::set_amqp_port).
  std::shared_ptr<std::atomic<uint16_t>> amqp_port
    = std::make_shared<std::atomic<uint16_t>>(0);
};
using context_ptr = std::shared_ptr<const federation_context>;

/// Returns why connecting the fabric to `where` failed with `e`, and sets
/// `handshake` if the peer hung up during the (TLS) handshake: wrong CA, no
/// certificate, or TLS on one side only (retrying soon does not help).
std::string connect_error_text(caf::actor_system& sys, const caf::error& e,
                               const std::string& where, bool tls,
                               bool& handshake);

/// Returns true if libcaf_openssl's TLS calls go through the wrappers of
/// tls_error_queue.cpp, which empty OpenSSL's error queue first (without
/// them an error on one fabric connection drops another; see there).
bool tls_error_queue_guarded();

caf::actor spawn_gatekeeper(caf::actor_system& sys,
                            std::shared_ptr<const config::user_db> users);
/// `initial`: the durable links and routes of the routes file, started at
/// once.
caf::actor spawn_hub(caf::actor_system& sys, context_ptr ctx,
                     durable_routes initial);
caf::actor spawn_link(caf::actor_system& sys, link_config cfg,
                      std::shared_ptr<link_status> status, caf::actor hub,
                      context_ptr ctx);
caf::actor spawn_bridge(caf::actor_system& sys, bridge_config cfg,
                        std::shared_ptr<bridge_status> status, caf::actor hub,
                        context_ptr ctx);
/// An export on this broker (answers one subscribe_atom) for a push bridge
/// (--src-local) here; sessions spawn the exports of remote bridges
/// themselves. Its export_info says `local`.
caf::actor spawn_export(caf::actor_system& sys, caf::actor hub,
                        context_ptr ctx);
/// Spawned by the hub for an authenticated peer; quits when `peer_link`
/// goes down (its exports with it).
caf::actor spawn_session(caf::actor_system& sys, caf::actor peer_link,
                         std::string peer_id, std::string peer_node,
                         caf::actor hub, context_ptr ctx);

} // namespace flotilla::federation

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::federation::export_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::federation::importer_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::federation::link_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::config::connector_spec)
