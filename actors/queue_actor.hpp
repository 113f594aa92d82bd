#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include <utility>
#include <vector>

#include <caf/actor.hpp>

#include "actors/message.hpp"
#include "actors/queue_arguments.hpp"
#include "actors/routing.hpp"

namespace flotilla {

class page_out_hook; // actors/message_pager.hpp

/// Spawns the actor of one AMQP queue. Spawned by a vhost actor on
/// queue.declare and linked to it; quits when deleted (queue.delete,
/// auto-delete, x-expires, exclusive owner gone) or when the vhost stops.
/// Node-local. Holds its messages until acked (queue_model does the
/// semantics; this actor dispatches, batches deliveries per connection,
/// keeps TTL and x-expires timers, and routes dead letters).
///
/// Persistent messages on a durable queue go to the store actor; a publish
/// request is answered only after the store's fsync covers it.
///
/// Messages (see actors/messages.hpp):
/// - (enqueue_atom, enqueue_batch)             publish, no reply
/// - (enqueue_atom, enqueue_batch, bool)       publish; replies enqueue_reply
/// - (consume_atom, consumer_spec)             replies op_result
/// - (cancel_atom, owner, key)                 replies op_result
/// - (fetch_atom, owner, bool no_ack)          basic.get; replies get_reply
/// - (ack_atom, owner, vector<uint64_t>)
/// - (reject_atom, owner, vector<uint64_t>, bool requeue)
/// - (release_atom, owner, vector<uint64_t>)   never reached the client
/// - (closed_atom, owner)                      channel closed: requeue
/// - (stats_atom)                              replies op_result with counts
/// - (purge_atom)                              replies op_result with count
/// - (remove_atom, bool if_unused, bool if_empty) replies op_result; on
///   success cancels its consumers and quits.
/// How a durable queue persists its messages (default: it does not).
struct queue_durability {
  caf::actor store; ///< The store actor; null for transient queues.
  uint32_t queue_id = 0;
  /// Messages recovered from the journal, in order, with their store ids.
  std::vector<std::pair<uint64_t, message_ptr>> recovered;
  /// Directory for paging the backlog out of memory (empty: never page),
  /// and the message bytes kept in memory first (queue_model::set_pager).
  std::string paging_dir;
  uint64_t page_limit = 0;
  std::shared_ptr<const page_out_hook> page_hook; ///< Null: none.
};

caf::actor spawn_queue(caf::actor_system& sys, std::string name,
                       queue_config cfg, caf::actor vhost,
                       vhost_table_ptr table, queue_durability durability = {});

} // namespace flotilla
