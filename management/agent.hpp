#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>

namespace flotilla {
class broker;
} // namespace flotilla

/// The management agent: the server side of docs/management.md.
namespace flotilla::management {

class service;

/// What install_agents() made.
struct installation {
  /// The agents, one per vhost, to be stopped (exit) at shutdown.
  std::vector<caf::actor> agents;
  /// The in-process door to the same agents (for the web inspector).
  std::shared_ptr<service> door;
};

/// Spawns one management agent per vhost of `node` and binds it to that
/// vhost's qmf.default.direct exchange with the keys "broker" and the node
/// name; sets the node's event sink so that broker events are published on
/// each vhost's qmf.default.topic. Call once at startup, after restore and
/// before the listener starts (the vhost list is fixed by then).
///
/// An agent is a destination of routed messages like a queue: it accepts
/// (enqueue_atom, enqueue_batch) and (enqueue_atom, enqueue_batch, bool) from
/// publishing connections, decodes each message as a management Request
/// (protocol/management.proto; JSON or binary protobuf by content type),
/// checks the sender's validated user_id against the users file, runs the
/// request (asking vhost, queue and connection actors; never blocking) and
/// publishes a Response to the default exchange with the request's reply_to
/// as routing key and its correlation_id. Node-local; stops with the node.
///
/// LIST ACTOR (the inspector's actors view) is served by the same code.
///
/// Returns the agents and the service door (management/service.hpp).
installation install_agents(broker& node);

} // namespace flotilla::management
