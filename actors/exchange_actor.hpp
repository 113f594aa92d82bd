#pragma once

#include <caf/fwd.hpp>

#include "actors/routing.hpp"

namespace flotilla {

/// Spawns the actor of one exchange. Spawned by a vhost actor on
/// exchange.declare (and for the default amq.* exchanges) and linked to it;
/// quits on exchange.delete. It adds and removes the bindings of its
/// exchange_entry (the vhost also removes bindings to a deleted destination
/// and restores them at startup, under the same lock); publishers read them
/// under a shared lock, so routing costs no mailbox hop.
///
/// Messages (see actors/messages.hpp):
/// - (bind_atom, bind_req, binding_dest) replies op_result; message_count
///   holds 1 if the binding was new.
/// - (unbind_atom, bind_req, binding_dest) replies op_result; message_count
///   holds the number of bindings left (for auto-delete), consumer_count 1
///   if a binding was removed.
caf::actor spawn_exchange(caf::actor_system& sys, exchange_entry_ptr entry);

} // namespace flotilla
