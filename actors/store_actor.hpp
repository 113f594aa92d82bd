#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include "store/journal.hpp"

namespace flotilla {

/// One change to the durable state, as queues and vhosts send it.
struct store_op {
  enum kind_t : uint8_t { publish, ack, drop_queue, meta_put, meta_del };
  kind_t kind = publish;
  uint32_t queue_id = 0;
  uint64_t msg_id = 0;
  std::string key;     ///< meta_put, meta_del
  std::string payload; ///< publish, meta_put
};

/// A batch of changes; applied in order.
struct store_ops {
  std::vector<store_op> ops;
};

/// What recovery found, grouped for the vhosts (see broker::restore).
struct recovered_state {
  std::map<std::string, std::string> meta; ///< key -> payload
  /// Live messages per queue id, in msg_id order.
  std::map<uint32_t, std::vector<std::pair<uint64_t, std::string>>> messages;
};

/// Opens the journal in `dir`, fills `state`, and returns it (nullptr and
/// `error` on failure). `report` says what was recovered, cut or lost.
std::unique_ptr<store::journal> open_journal(const store::journal_options& opts,
                                             recovered_state& state,
                                             store::recovery_report& report,
                                             std::string& error);

/// Called by the store actor (on its thread) when journal writes start
/// failing (true) and when they work again (false).
using store_failure_handler = std::function<void(bool failing)>;

/// Spawns the store actor, the only user of the journal. Queues and vhosts
/// send it store_ops; it appends them and, once its mailbox holds no more
/// changes, calls journal::sync() once for all of them (group commit) and
/// only then answers the requests: a publisher confirm or a declare-ok for
/// durable state is sent after the fsync that covers it. Node-local.
///
/// When a sync fails (disk full, I/O error) nothing is nacked or dropped:
/// the store calls `on_failure(true)`, keeps every op since the last good
/// sync, appends them again and retries once a second; requests wait. The
/// first sync that works answers them and calls `on_failure(false)`.
///
/// Messages:
/// - (persist_atom, store_ops)        append, no reply
/// - (persist_atom, store_ops, bool)  append; replies bool (true: durable)
caf::actor spawn_store(caf::actor_system& sys,
                       std::unique_ptr<store::journal> journal,
                       store_failure_handler on_failure = {});

} // namespace flotilla

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::store_ops)
