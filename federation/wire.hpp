#pragma once

// Messages that cross the fabric (CAF middleman/BASP) between two brokers.
// Every type here is serializable (an inspect overload) and registered with
// add_wire_types(); anything else sent to a remote actor would be dropped by
// BASP. Plain data: no shared pointers, no local actor state.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

namespace flotilla::federation {

// Atoms of the fabric protocol (at most 10 characters in CAF 0.17).
using hello_atom = caf::atom_constant<caf::atom("fedhello")>;
using subscribe_atom = caf::atom_constant<caf::atom("fedsub")>;
using interest_atom = caf::atom_constant<caf::atom("fedint")>;
using forward_atom = caf::atom_constant<caf::atom("fedfwd")>;
using push_atom = caf::atom_constant<caf::atom("fedpush")>;
using duplex_atom = caf::atom_constant<caf::atom("fedduplex")>;
/// An export tells its bridge, every stats_interval, how many messages wait
/// for the route and the age of the oldest in ms: (fed_stats_atom,
/// uint64_t backlog, int64_t lag_ms). Builtin types only: no new wire type.
using fed_stats_atom = caf::atom_constant<caf::atom("fedstats")>;

/// A link introduces itself to a remote gatekeeper.
struct hello {
  std::string user;
  std::string password;
  std::string broker_id; ///< The connecting broker's federation id.
  std::string node_name; ///< Its --name, for people.
  caf::actor link;       ///< The link actor; the session monitors it.
};

/// The gatekeeper's answer: a session, or why not.
struct welcome {
  bool ok = false;
  std::string error;
  caf::actor session;
  std::string broker_id;
  std::string node_name;
  /// The answering broker's AMQP port (0: not listening yet), so that
  /// tools can reach it through a link that is not named after its AMQP
  /// address (a connector's): `route map` follows host:amqp_port.
  uint16_t amqp_port = 0;
};

/// A bridge asks the remote session for messages: from an exchange (bound
/// with `key`, or with the keys of its interest for dynamic routes) or from
/// an existing queue (`queue` set).
struct subscription {
  std::string vhost;
  std::string exchange;
  std::string key;
  bool dynamic = false;
  std::string queue;
  uint32_t credit = 0;   ///< Messages in flight (unacked) at most.
  uint32_t max_hops = 0; ///< Messages that crossed more brokers are dropped.
  std::string bridge_name;
  std::string dest_broker_id; ///< Never forward a message it already saw.
  std::string dest_node_name;
  caf::actor bridge; ///< Receives forward_batch requests.
  /// A durable route: the export's queue is durable, named after the
  /// destination's node name and the bridge, and outlives the link.
  bool durable = false;
};

/// The answer to a subscription.
struct subscribed {
  bool ok = false;
  std::string error;
  caf::actor source; ///< The export actor serving the bridge.
};

/// The answer to a push request (routes made with --src-local: the link and
/// the bridge live on the source, which asks the destination's session,
/// with a subscription naming the destination exchange, for an importer).
struct pushed {
  bool ok = false;
  std::string error;
  caf::actor importer;   ///< Takes forward_batch requests on the destination.
  std::string broker_id; ///< The destination's federation id and node name.
  std::string node_name;
};

/// One binding key somebody downstream wants, with the brokers its interest
/// crossed, the broker that has the binding first (path-vector: no broker
/// accepts an item whose path names it, so interest never loops).
struct interest_item {
  std::string key;
  std::vector<std::string> path;
};

inline bool operator==(const interest_item& a, const interest_item& b) {
  return a.key == b.key && a.path == b.path;
}
inline bool operator<(const interest_item& a, const interest_item& b) {
  return a.key != b.key ? a.key < b.key : a.path < b.path;
}

/// The full interest of a dynamic bridge (replaces the previous one).
struct interest {
  std::vector<interest_item> items;
};

/// One message crossing a link.
struct fed_message {
  std::string origin;             ///< Federation id of the first broker.
  uint64_t origin_seq = 0;        ///< Its number there (dedup).
  std::vector<std::string> trace; ///< Brokers it left, origin first.
  std::string payload;            ///< actors/store_codec encode_message.
  /// Delivered before by the source queue (its ack may not have arrived):
  /// the destination's queues deliver it with the redelivered flag.
  bool redelivered = false;
};

/// Messages from an export to its bridge; answered with forward_ack once the
/// destination has enqueued them (and fsynced, for persistent messages on
/// durable queues).
struct forward_batch {
  std::vector<fed_message> messages;
};

struct forward_ack {
  uint32_t accepted = 0;
  uint32_t dropped = 0; ///< Loops, duplicates, hop limit.
  /// Positions (in the batch) of messages a destination queue refused (full
  /// with reject-publish, a failed journal write): the source requeues them
  /// and forwards them again later. The others are acknowledged.
  std::vector<uint32_t> refused;
};

/// A duplex connector's link, once operational, asks the source broker to
/// pull the same routes back over the same connection: `session` (on the
/// connecting broker) serves the source's bridges, as a gatekeeper's
/// session would.
struct duplex_offer {
  std::string name; ///< The connector's name.
  std::string vhost;
  std::vector<std::string> exchanges; ///< Dynamic routes.
  std::vector<std::string> static_exchanges;
  std::vector<std::string> static_keys; ///< Same length as static_exchanges.
  std::vector<std::string> include;     ///< Key patterns (config/connectors).
  std::vector<std::string> exclude;
  uint32_t max_hops = 0;
  uint32_t credit = 0;
  caf::actor session;
  std::string remote_name; ///< The link's name there; empty: the default.
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, duplex_offer& x) {
  return f(caf::meta::type_name("flotilla.fed.duplex_offer"), x.name, x.vhost,
           x.exchanges, x.static_exchanges, x.static_keys, x.include, x.exclude,
           x.max_hops, x.credit, x.session, x.remote_name);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello& x) {
  return f(caf::meta::type_name("flotilla.fed.hello"), x.user, x.password,
           x.broker_id, x.node_name, x.link);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, welcome& x) {
  return f(caf::meta::type_name("flotilla.fed.welcome"), x.ok, x.error,
           x.session, x.broker_id, x.node_name, x.amqp_port);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscription& x) {
  return f(caf::meta::type_name("flotilla.fed.subscription"), x.vhost,
           x.exchange, x.key, x.dynamic, x.queue, x.credit, x.max_hops,
           x.bridge_name, x.dest_broker_id, x.dest_node_name, x.bridge,
           x.durable);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscribed& x) {
  return f(caf::meta::type_name("flotilla.fed.subscribed"), x.ok, x.error,
           x.source);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, pushed& x) {
  return f(caf::meta::type_name("flotilla.fed.pushed"), x.ok, x.error,
           x.importer, x.broker_id, x.node_name);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, interest_item& x) {
  return f(caf::meta::type_name("flotilla.fed.interest_item"), x.key, x.path);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, interest& x) {
  return f(caf::meta::type_name("flotilla.fed.interest"), x.items);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, fed_message& x) {
  return f(caf::meta::type_name("flotilla.fed.message"), x.origin, x.origin_seq,
           x.trace, x.payload, x.redelivered);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, forward_batch& x) {
  return f(caf::meta::type_name("flotilla.fed.forward_batch"), x.messages);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, forward_ack& x) {
  return f(caf::meta::type_name("flotilla.fed.forward_ack"), x.accepted,
           x.dropped, x.refused);
}

/// Registers every type above (call before the actor_system exists).
void add_wire_types(caf::actor_system_config& cfg);

} // namespace flotilla::federation
