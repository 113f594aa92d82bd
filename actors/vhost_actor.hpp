#pragma once

#include <string>

#include <caf/fwd.hpp>

#include "actors/routing.hpp"

namespace flotilla {

/// Spawns the actor that owns the names of one virtual host: it creates and
/// deletes exchanges and queues (each an actor linked to it), checks every
/// declaration against the existing one, and keeps `table` current for
/// publishers. Spawned by broker::add_vhost at startup; stops with the node,
/// taking its exchanges and queues with it. Node-local.
///
/// Messages (see actors/messages.hpp); every request replies op_result:
/// - exchange_declare_req, queue_declare_req, bind_req, delete_req
/// - (closed_atom, uint64_t connection_id): deletes that connection's
///   exclusive queues (no reply)
/// - (autodel_atom, std::string queue): an auto-delete or x-expires queue
///   became unused (no reply)
caf::actor spawn_vhost(caf::actor_system& sys, vhost_table_ptr table);

} // namespace flotilla
