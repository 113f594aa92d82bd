#pragma once

// Message types exchanged between Flotilla's actors. All are node-local
// (they carry shared pointers and actor handles), so they are declared as
// unsafe message types: CAF never serializes them.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include "actors/message.hpp"
#include "actors/routing.hpp"
#include "protocol/command_assembler.hpp"
#include "protocol/errc.hpp"
#include "protocol/field_table.hpp"

namespace flotilla {

/// Outcome of a request to a vhost, exchange or queue actor.
struct op_result {
  errc code = errc::none;
  std::string text; ///< AMQP reply text, e.g. "NOT_FOUND - no queue 'q' ...".
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;
  std::string name; ///< The queue name (server-named queues).
  caf::actor actor; ///< The queue actor, when relevant.

  bool ok() const {
    return code == errc::none;
  }
};

/// Builds an error result with RabbitMQ's text convention "CODE - detail".
op_result make_op_error(errc code, const std::string& detail);

/// A batch of decoded input from one client connection, in arrival order.
struct input_batch {
  std::vector<protocol::command> commands;
  errc error = errc::none; ///< A decoding error after the commands.
  uint16_t error_channel = 0;
  std::string error_text;
  bool closed = false; ///< The socket was closed or failed.
};
using input_batch_ptr = std::shared_ptr<input_batch>;

/// A batch of messages for one queue from one publisher.
struct enqueue_batch {
  std::vector<message_ptr> messages;
  /// Empty, or one flag per message: 1 = deliver it marked redelivered (a
  /// federated message its source delivered before).
  std::vector<uint8_t> redelivered;
};

/// Reply to an enqueue_batch: which messages were refused (x-overflow).
struct enqueue_reply {
  std::vector<uint8_t> rejected; ///< Same length as the batch; 1 = refused.
};

/// A consumer registration (basic.consume) sent to a queue.
struct consumer_spec {
  uint64_t key = 0;   ///< Unique per connection actor.
  uint64_t owner = 0; ///< The channel: connection id << 16 | channel.
  caf::actor connection;
  uint32_t prefetch = 0;
  bool no_ack = false;
  bool exclusive = false;
  int32_t priority = 0;
};

/// One message on its way to a consumer or a basic.get.
struct delivery_item {
  uint64_t consumer_key = 0; ///< 0 for basic.get.
  uint64_t owner = 0;
  uint64_t id = 0; ///< The queue's id, used for ack.
  message_ptr msg;
  bool redelivered = false;
};

/// Deliveries from one queue to one connection.
struct delivery_batch {
  caf::actor queue;
  std::string queue_name;
  std::vector<delivery_item> items;
};

/// Reply to basic.get.
struct get_reply {
  bool found = false;
  delivery_item item;
  uint32_t message_count = 0;
};

/// Declarations sent to a vhost actor.
struct exchange_declare_req {
  std::string name;
  std::string type;
  bool passive = false;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  protocol::field_table arguments;
};

struct queue_declare_req {
  std::string name;
  bool passive = false;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  protocol::field_table arguments;
  uint64_t connection_id = 0;
};

struct bind_req {
  bool unbind = false;
  bool to_exchange = false; ///< exchange.bind rather than queue.bind.
  std::string destination;
  std::string source;
  std::string key;
  protocol::field_table arguments;
  uint64_t connection_id = 0;
};

struct delete_req {
  bool exchange = false;
  std::string name;
  bool if_unused = false;
  bool if_empty = false;
  bool purge_only = false; ///< queue.purge
  uint64_t connection_id = 0;
};

} // namespace flotilla

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::op_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::input_batch_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::enqueue_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::enqueue_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::consumer_spec)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::delivery_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::get_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::exchange_declare_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::queue_declare_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::bind_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::delete_req)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(flotilla::binding_dest)
