#pragma once

// Statistics snapshots that queue and connection actors give the management
// agent (management/). Node-local message types (they hold actor handles),
// never serialized.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "actors/message.hpp"

namespace flotilla {

/// Reply of a queue actor to (mgmt_atom): depths, counters and rates.
/// Asking does not count as using the queue (x-expires).
struct queue_stats {
  uint64_t messages_ready = 0;
  uint64_t messages_unacked = 0;
  uint64_t consumers = 0;
  uint64_t bytes_ready = 0;
  // Counters since creation (queue_model::counters).
  uint64_t published = 0;
  uint64_t rejected = 0;
  uint64_t delivered = 0;
  uint64_t redelivered = 0;
  uint64_t acked = 0;
  uint64_t requeued = 0;
  uint64_t dead_lettered = 0;
  uint64_t expired = 0;
  uint64_t overflowed = 0;
  uint64_t discarded = 0;
  uint64_t purged = 0;
  // Messages per second over `rate_window_seconds` (at most 10 s).
  double publish_rate = 0;
  double deliver_rate = 0;
  double ack_rate = 0;
  double rate_window_seconds = 0;
  /// Messages waiting in the queue actor's mailbox when it answered (CAF's
  /// approximation; the inspector shows it).
  uint64_t mailbox = 0;
};

/// One open channel, as its connection actor sees it.
struct channel_stats {
  uint16_t number = 0;
  uint32_t prefetch = 0;
  uint32_t global_prefetch = 0;
  uint32_t unacked = 0;
  uint32_t consumers = 0;
  bool confirm = false;
  bool transactional = false;
  bool flow = true;
};

/// One consumer of a connection.
struct consumer_stats {
  uint16_t channel = 0;
  std::string tag;
  caf::actor queue;
  bool no_ack = false;
};

/// Reply of a connection actor to (mgmt_atom).
struct connection_stats {
  uint64_t id = 0;
  std::string peer;
  std::string user;
  std::string vhost; ///< Empty before connection.open.
  int64_t connected_at_ms = 0;
  uint16_t heartbeat = 0;
  uint32_t frame_max = 0;
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t published_bytes = 0;
  uint64_t delivered_bytes = 0;
  /// Messages per second over `rate_window_seconds` (at most 10 s).
  double publish_rate = 0;
  double deliver_rate = 0;
  double rate_window_seconds = 0;
  std::string client_name;
  std::string client_product;
  std::vector<channel_stats> channels;
  std::vector<consumer_stats> consumers;
  /// Messages waiting in the connection actor's mailbox when it answered.
  uint64_t mailbox = 0;
};

/// Reply of a queue actor to (peek_atom, uint32_t count): its next ready
/// messages, in delivery order, left in place.
struct queue_peek {
  std::vector<message_ptr> messages;
  std::vector<bool> redelivered;
  uint64_t ready = 0; ///< All ready messages (in memory and paged).
};

} // namespace flotilla

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::queue_peek)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::queue_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::connection_stats)
