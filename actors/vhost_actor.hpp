#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "actors/message.hpp"
#include "actors/routing.hpp"
#include "actors/store_codec.hpp"

namespace flotilla {

class page_out_hook; // actors/message_pager.hpp

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
/// - (restore_atom, vhost_restore): recreates recovered durable entities
///   (startup only); replies op_result
///
/// Durable exchanges, durable non-exclusive queues and bindings between
/// durable ends are written to the store; their declare-ok (bind-ok) is
/// sent after the fsync.
/// Durable state of one vhost, recovered from the journal at startup.
struct vhost_restore {
  std::vector<stored_exchange> exchanges;
  std::vector<
    std::pair<stored_queue, std::vector<std::pair<uint64_t, message_ptr>>>>
    queues; ///< With their messages (store id, message), in order.
  std::vector<stored_binding> bindings;
};

/// What a vhost needs to persist durable entities.
struct vhost_durability {
  caf::actor store; ///< Null: nothing is persisted (--no-data-dir).
  /// Node-wide source of queue ids for the journal (never reused).
  std::shared_ptr<std::atomic<uint32_t>> queue_ids;
  /// Where queues page long backlogs out to (empty: they never page), and
  /// the message bytes each keeps in memory first.
  std::string paging_dir;
  uint64_t page_limit = 0;
  std::shared_ptr<const page_out_hook> page_hook; ///< Null: none.
};

caf::actor spawn_vhost(caf::actor_system& sys, vhost_table_ptr table,
                       vhost_durability durability);

} // namespace flotilla

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::vhost_restore)
