#pragma once

// Internal to the connection actor (connection_actor.cpp, channel_ops.cpp):
// the state of one client connection and its channels.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/broker.hpp"
#include "actors/connection_actor.hpp"
#include "actors/messages.hpp"
#include "actors/rate_window.hpp"
#include "protocol/methods.hpp"

namespace flotilla {

/// A delivery the client has not acknowledged yet.
struct unacked_ref {
  caf::actor queue;
  uint64_t id = 0;
  bool from_consumer = false; ///< Counts against the global prefetch.
};

/// A delivery held back by channel.flow or a global (per-channel) prefetch.
struct held_delivery {
  caf::actor queue;
  delivery_item item;
};

/// One consumer of this connection.
struct consumer_ref {
  uint16_t channel = 0;
  std::string tag;
  caf::actor queue;
  bool no_ack = false;
  bool announced = false; ///< basic.consume-ok was written.
  bool no_wait = false;
};

/// A publisher confirm not yet sent: how many queues still have to accept.
struct pending_confirm {
  uint32_t outstanding = 0;
  bool nack = false;
};

/// An acknowledgement held by a transaction until commit.
struct tx_settle {
  uint64_t tag = 0;
  unacked_ref ref;
  bool ack = true;
  bool requeue = false;
};

struct channel_state {
  uint32_t epoch = 0;   ///< Distinguishes reopened channels in async replies.
  bool closing = false; ///< Sent channel.close, awaiting close-ok.
  bool busy = false;    ///< Awaiting an actor reply; later commands wait.
  std::deque<protocol::command> backlog;

  bool confirm = false;
  uint64_t next_seq = 1;
  std::map<uint64_t, pending_confirm> confirms;

  bool tx = false;
  std::vector<std::pair<message_ptr, bool>> tx_publishes; ///< msg, mandatory
  std::vector<tx_settle> tx_settles;

  uint32_t prefetch_consumer = 0; ///< basic.qos global=false
  uint32_t prefetch_global = 0;   ///< basic.qos global=true
  uint64_t next_tag = 1;
  std::map<uint64_t, unacked_ref> unacked;
  uint32_t consumer_unacked = 0;
  std::unordered_map<std::string, uint64_t> consumers; ///< tag -> key
  std::vector<caf::actor> queues; ///< Queues that hold state for us.
  bool flow = true;
  std::deque<held_delivery> held;
};

enum class phase { start_ok, tune_ok, open, running, closing, closed };

/// Messages routed to one queue while processing one input batch.
struct pending_enqueue {
  caf::actor queue;
  enqueue_batch batch;
  std::vector<std::pair<uint16_t, uint64_t>> confirms; ///< (channel, seq)
  bool any_confirm = false;
};

enum class settle_kind { ack, requeue, drop, release };

/// Acks (or rejections) for one queue and channel, sent at the end of the
/// current input batch as one message.
struct pending_settle {
  caf::actor queue;
  uint64_t owner = 0;
  settle_kind kind = settle_kind::ack;
  std::vector<uint64_t> ids;
};

struct connection_state;
using connection_self = caf::stateful_actor<connection_state>*;

struct connection_state {
  static inline const char* name = "connection";

  connection_self self = nullptr;
  broker* node = nullptr;
  std::shared_ptr<connection_sink> sink;
  connection_info info;
  uint64_t id = 0;
  phase ph = phase::start_ok;
  std::string user;
  const vhost_ref* vhost = nullptr;
  uint16_t channel_max = 0;
  uint32_t frame_max = protocol::frame_min_size;
  uint16_t heartbeat = 0;
  bool cap_cancel_notify = false;

  // Management (actors/stats.hpp).
  int64_t connected_at_ms = 0;
  uint64_t published_count = 0; ///< Messages received from the client.
  uint64_t delivered_count = 0; ///< Messages sent to the client.
  uint64_t published_bytes = 0; ///< Their body bytes.
  uint64_t delivered_bytes = 0;
  /// Publish and deliver rates (sampled when input or deliveries arrive).
  rate_window<2> rates;
  std::string client_name;    ///< client property connection_name.
  std::string client_product; ///< client property product.
  bool cap_blocked = false;   ///< Client understands connection.blocked.

  /// Input held while a resource alarm blocks this connection (it tried to
  /// publish). The transport stops reading once enough batches are held.
  std::deque<input_batch_ptr> held_input;
  bool blocked = false;
  bool blocked_sent = false; ///< connection.blocked was written.

  std::unordered_map<uint16_t, channel_state> channels;
  uint32_t next_epoch = 1;
  std::unordered_map<uint64_t, consumer_ref> consumers;
  uint64_t next_consumer_key = 1;

  std::string out; ///< Encoded frames not yet handed to the sink.
  /// Large bodies to write between the bytes of `out` (not copied).
  std::vector<outbound::slice> out_slices;
  std::vector<pending_enqueue> pending;
  std::vector<pending_settle> pending_settles;
  std::vector<caf::actor> route_buf;

  // -- helpers (connection_actor.cpp) ----------------------------------------

  uint64_t owner_of(uint16_t ch) const {
    return (id << 16) | ch;
  }
  void flush();
  void connection_error(errc code, const std::string& text,
                        uint16_t class_id = 0, uint16_t method_id = 0);
  void channel_error(uint16_t ch, errc code, const std::string& text,
                     uint16_t class_id = 0, uint16_t method_id = 0);
  void release_channel(uint16_t ch);
  void shutdown(const std::string& reason);
  void finish();

  // -- commands (channel_ops.cpp) --------------------------------------------

  /// Processes one command on an open channel (or queues it when busy).
  void on_channel_command(uint16_t ch, protocol::command& cmd);
  void run_command(uint16_t ch, protocol::command& cmd);
  void resume(uint16_t ch, uint32_t epoch);
  void flush_publishes();
  void flush_settles();
  void settle_later(const caf::actor& queue, uint64_t owner, settle_kind kind,
                    uint64_t msg_id);
  void on_deliveries(delivery_batch& batch);
  void on_cancelled(uint64_t key);
  void emit_confirms(uint16_t ch);
  void emit_delivery(uint16_t ch, const caf::actor& queue,
                     const std::string& tag, bool no_ack, delivery_item& item);
  void release_held(uint16_t ch);
  /// Appends the header and body frames of `msg`.
  void write_content(uint16_t ch, const message_ptr& msg);
};

} // namespace flotilla
