#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "protocol/errc.hpp"
#include "protocol/field_table.hpp"
#include "protocol/frame.hpp"
#include "protocol/wire.hpp"

namespace flotilla::protocol {

// One struct per AMQP 0-9-1 method (RabbitMQ's dialect, including its
// extensions), named <class>_<method>. Fields carry the spec's names with
// underscores; "reserved-N" fields keep their place on the wire so payloads
// round-trip. Every struct has:
//   static constexpr uint16_t class_id, method_id;
//   static constexpr const char* name;        // "queue.declare-ok"
//   static constexpr bool has_content;        // followed by header + body
//   template <class V, class... Ms> static void fields(V& v, Ms&... ms);
// fields() calls, in wire order and once per field, one of
//   v.u8 v.u16 v.u32 v.u64 v.bit v.shortstr v.longstr v.table
// with the field's wire name and that field of each of `ms` (one object to
// encode, decode or print; two to compare). Consecutive bits share an octet.
// Structs are aggregates: `queue_declare_ok{"q", 3, 1}` works.

#define FLOTILLA_AMQP_METHOD(cls, mth, text, content)                          \
  static constexpr uint16_t class_id = cls;                                    \
  static constexpr uint16_t method_id = mth;                                   \
  static constexpr const char* name = text;                                    \
  static constexpr bool has_content = content

#define FLOTILLA_AMQP_NO_FIELDS                                                \
  template<class V, class... Ms>                                               \
  static void fields(V&, Ms&...) {}

/// Server -> client, first method: protocol version, server properties, SASL
/// mechanisms and locales (space-separated).
struct connection_start {
  FLOTILLA_AMQP_METHOD(10, 10, "connection.start", false);
  uint8_t version_major = 0;
  uint8_t version_minor = 9;
  field_table server_properties;
  std::string mechanisms = "PLAIN"; // long string
  std::string locales = "en_US";    // long string
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u8("version-major", ms.version_major...);
    v.u8("version-minor", ms.version_minor...);
    v.table("server-properties", ms.server_properties...);
    v.longstr("mechanisms", ms.mechanisms...);
    v.longstr("locales", ms.locales...);
  }
};

/// Client -> server: chosen mechanism, SASL response, locale; client properties
/// include "capabilities".
struct connection_start_ok {
  FLOTILLA_AMQP_METHOD(10, 11, "connection.start-ok", false);
  field_table client_properties;
  std::string mechanism = "PLAIN";
  std::string response; // long string
  std::string locale = "en_US";
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.table("client-properties", ms.client_properties...);
    v.shortstr("mechanism", ms.mechanism...);
    v.longstr("response", ms.response...);
    v.shortstr("locale", ms.locale...);
  }
};

/// Server -> client: a SASL challenge.
struct connection_secure {
  FLOTILLA_AMQP_METHOD(10, 20, "connection.secure", false);
  std::string challenge; // long string
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.longstr("challenge", ms.challenge...);
  }
};

/// Client -> server: the answer to a SASL challenge.
struct connection_secure_ok {
  FLOTILLA_AMQP_METHOD(10, 21, "connection.secure-ok", false);
  std::string response; // long string
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.longstr("response", ms.response...);
  }
};

/// Server -> client: proposed channel_max, frame_max (bytes, incl. 8 of
/// overhead) and heartbeat (seconds); 0 means no limit.
struct connection_tune {
  FLOTILLA_AMQP_METHOD(10, 30, "connection.tune", false);
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("channel-max", ms.channel_max...);
    v.u32("frame-max", ms.frame_max...);
    v.u16("heartbeat", ms.heartbeat...);
  }
};

/// Client -> server: the negotiated limits (never above the proposal).
struct connection_tune_ok {
  FLOTILLA_AMQP_METHOD(10, 31, "connection.tune-ok", false);
  uint16_t channel_max = 0;
  uint32_t frame_max = 0;
  uint16_t heartbeat = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("channel-max", ms.channel_max...);
    v.u32("frame-max", ms.frame_max...);
    v.u16("heartbeat", ms.heartbeat...);
  }
};

/// Client -> server: the virtual host to use. reserved1 is "capabilities",
/// reserved2 is "insist" (both ignored).
struct connection_open {
  FLOTILLA_AMQP_METHOD(10, 40, "connection.open", false);
  std::string virtual_host = "/";
  std::string reserved1;
  bool reserved2 = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("virtual-host", ms.virtual_host...);
    v.shortstr("reserved-1", ms.reserved1...);
    v.bit("reserved-2", ms.reserved2...);
  }
};

/// Server -> client: the connection is ready. reserved1 is "known-hosts".
struct connection_open_ok {
  FLOTILLA_AMQP_METHOD(10, 41, "connection.open-ok", false);
  std::string reserved1;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("reserved-1", ms.reserved1...);
  }
};

/// Either peer: closes the connection. failing_class_id/failing_method_id name
/// the method that caused it (0 if none). They are the spec's "class-
/// id"/"method-id", renamed because class_id and method_id are this struct's
/// static identifiers.
struct connection_close {
  FLOTILLA_AMQP_METHOD(10, 50, "connection.close", false);
  uint16_t reply_code = 0;
  std::string reply_text;
  uint16_t failing_class_id = 0;
  uint16_t failing_method_id = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reply-code", ms.reply_code...);
    v.shortstr("reply-text", ms.reply_text...);
    v.u16("class-id", ms.failing_class_id...);
    v.u16("method-id", ms.failing_method_id...);
  }
};

/// Either peer: confirms connection.close; the socket may be closed after it.
struct connection_close_ok {
  FLOTILLA_AMQP_METHOD(10, 51, "connection.close-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Server -> client (RabbitMQ extension): publishing is blocked by a resource
/// alarm.
struct connection_blocked {
  FLOTILLA_AMQP_METHOD(10, 60, "connection.blocked", false);
  std::string reason;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("reason", ms.reason...);
  }
};

/// Server -> client (RabbitMQ extension): publishing may resume.
struct connection_unblocked {
  FLOTILLA_AMQP_METHOD(10, 61, "connection.unblocked", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server (RabbitMQ extension): replaces the credential (e.g. an
/// expiring OAuth token).
struct connection_update_secret {
  FLOTILLA_AMQP_METHOD(10, 70, "connection.update-secret", false);
  std::string new_secret; // long string
  std::string reason;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.longstr("new-secret", ms.new_secret...);
    v.shortstr("reason", ms.reason...);
  }
};

/// Server -> client: the new secret was accepted.
struct connection_update_secret_ok {
  FLOTILLA_AMQP_METHOD(10, 71, "connection.update-secret-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: opens the frame's channel. reserved1 is "out-of-band".
struct channel_open {
  FLOTILLA_AMQP_METHOD(20, 10, "channel.open", false);
  std::string reserved1;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("reserved-1", ms.reserved1...);
  }
};

/// Server -> client: the channel is open. reserved1 is "channel-id" (a long
/// string).
struct channel_open_ok {
  FLOTILLA_AMQP_METHOD(20, 11, "channel.open-ok", false);
  std::string reserved1; // long string
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.longstr("reserved-1", ms.reserved1...);
  }
};

/// Either peer: asks the other to stop (active=false) or resume sending
/// content.
struct channel_flow {
  FLOTILLA_AMQP_METHOD(20, 20, "channel.flow", false);
  bool active = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.bit("active", ms.active...);
  }
};

/// Either peer: confirms channel.flow with the resulting state.
struct channel_flow_ok {
  FLOTILLA_AMQP_METHOD(20, 21, "channel.flow-ok", false);
  bool active = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.bit("active", ms.active...);
  }
};

/// Either peer: closes the channel; fields as in connection.close.
struct channel_close {
  FLOTILLA_AMQP_METHOD(20, 40, "channel.close", false);
  uint16_t reply_code = 0;
  std::string reply_text;
  uint16_t failing_class_id = 0;
  uint16_t failing_method_id = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reply-code", ms.reply_code...);
    v.shortstr("reply-text", ms.reply_text...);
    v.u16("class-id", ms.failing_class_id...);
    v.u16("method-id", ms.failing_method_id...);
  }
};

/// Either peer: confirms channel.close; the channel number may be reused.
struct channel_close_ok {
  FLOTILLA_AMQP_METHOD(20, 41, "channel.close-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: creates an exchange or (passive) checks that it exists.
struct exchange_declare {
  FLOTILLA_AMQP_METHOD(40, 10, "exchange.declare", false);
  uint16_t reserved1 = 0;
  std::string exchange;
  std::string type = "direct";
  bool passive = false;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("type", ms.type...);
    v.bit("passive", ms.passive...);
    v.bit("durable", ms.durable...);
    v.bit("auto-delete", ms.auto_delete...);
    v.bit("internal", ms.internal...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: confirms exchange.declare.
struct exchange_declare_ok {
  FLOTILLA_AMQP_METHOD(40, 11, "exchange.declare-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: deletes an exchange (only if unused when if_unused).
struct exchange_delete {
  FLOTILLA_AMQP_METHOD(40, 20, "exchange.delete", false);
  uint16_t reserved1 = 0;
  std::string exchange;
  bool if_unused = false;
  bool no_wait = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("exchange", ms.exchange...);
    v.bit("if-unused", ms.if_unused...);
    v.bit("no-wait", ms.no_wait...);
  }
};

/// Server -> client: confirms exchange.delete.
struct exchange_delete_ok {
  FLOTILLA_AMQP_METHOD(40, 21, "exchange.delete-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server (RabbitMQ extension): binds exchange destination to
/// exchange source.
struct exchange_bind {
  FLOTILLA_AMQP_METHOD(40, 30, "exchange.bind", false);
  uint16_t reserved1 = 0;
  std::string destination;
  std::string source;
  std::string routing_key;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("destination", ms.destination...);
    v.shortstr("source", ms.source...);
    v.shortstr("routing-key", ms.routing_key...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: confirms exchange.bind.
struct exchange_bind_ok {
  FLOTILLA_AMQP_METHOD(40, 31, "exchange.bind-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server (RabbitMQ extension): removes an exchange-to-exchange
/// binding.
struct exchange_unbind {
  FLOTILLA_AMQP_METHOD(40, 40, "exchange.unbind", false);
  uint16_t reserved1 = 0;
  std::string destination;
  std::string source;
  std::string routing_key;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("destination", ms.destination...);
    v.shortstr("source", ms.source...);
    v.shortstr("routing-key", ms.routing_key...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: confirms exchange.unbind. Its method id is 51, not 41, as
/// RabbitMQ defines it.
struct exchange_unbind_ok {
  FLOTILLA_AMQP_METHOD(40, 51, "exchange.unbind-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: creates a queue (server-named if queue is empty) or
/// (passive) checks that it exists.
struct queue_declare {
  FLOTILLA_AMQP_METHOD(50, 10, "queue.declare", false);
  uint16_t reserved1 = 0;
  std::string queue;
  bool passive = false;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.bit("passive", ms.passive...);
    v.bit("durable", ms.durable...);
    v.bit("exclusive", ms.exclusive...);
    v.bit("auto-delete", ms.auto_delete...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: the queue name and its ready message and consumer counts.
struct queue_declare_ok {
  FLOTILLA_AMQP_METHOD(50, 11, "queue.declare-ok", false);
  std::string queue;
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("queue", ms.queue...);
    v.u32("message-count", ms.message_count...);
    v.u32("consumer-count", ms.consumer_count...);
  }
};

/// Client -> server: binds a queue to an exchange.
struct queue_bind {
  FLOTILLA_AMQP_METHOD(50, 20, "queue.bind", false);
  uint16_t reserved1 = 0;
  std::string queue;
  std::string exchange;
  std::string routing_key;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: confirms queue.bind.
struct queue_bind_ok {
  FLOTILLA_AMQP_METHOD(50, 21, "queue.bind-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: removes all ready messages from a queue.
struct queue_purge {
  FLOTILLA_AMQP_METHOD(50, 30, "queue.purge", false);
  uint16_t reserved1 = 0;
  std::string queue;
  bool no_wait = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.bit("no-wait", ms.no_wait...);
  }
};

/// Server -> client: how many messages were purged.
struct queue_purge_ok {
  FLOTILLA_AMQP_METHOD(50, 31, "queue.purge-ok", false);
  uint32_t message_count = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u32("message-count", ms.message_count...);
  }
};

/// Client -> server: deletes a queue (only if unused / empty when asked).
struct queue_delete {
  FLOTILLA_AMQP_METHOD(50, 40, "queue.delete", false);
  uint16_t reserved1 = 0;
  std::string queue;
  bool if_unused = false;
  bool if_empty = false;
  bool no_wait = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.bit("if-unused", ms.if_unused...);
    v.bit("if-empty", ms.if_empty...);
    v.bit("no-wait", ms.no_wait...);
  }
};

/// Server -> client: how many messages were deleted with the queue.
struct queue_delete_ok {
  FLOTILLA_AMQP_METHOD(50, 41, "queue.delete-ok", false);
  uint32_t message_count = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u32("message-count", ms.message_count...);
  }
};

/// Client -> server: removes a queue binding (there is no no-wait bit).
struct queue_unbind {
  FLOTILLA_AMQP_METHOD(50, 50, "queue.unbind", false);
  uint16_t reserved1 = 0;
  std::string queue;
  std::string exchange;
  std::string routing_key;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: confirms queue.unbind.
struct queue_unbind_ok {
  FLOTILLA_AMQP_METHOD(50, 51, "queue.unbind-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: prefetch limits, per consumer or (global) per channel as
/// RabbitMQ interprets it.
struct basic_qos {
  FLOTILLA_AMQP_METHOD(60, 10, "basic.qos", false);
  uint32_t prefetch_size = 0;
  uint16_t prefetch_count = 0;
  bool global = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u32("prefetch-size", ms.prefetch_size...);
    v.u16("prefetch-count", ms.prefetch_count...);
    v.bit("global", ms.global...);
  }
};

/// Server -> client: confirms basic.qos.
struct basic_qos_ok {
  FLOTILLA_AMQP_METHOD(60, 11, "basic.qos-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: starts a consumer (server-named if consumer_tag is empty).
struct basic_consume {
  FLOTILLA_AMQP_METHOD(60, 20, "basic.consume", false);
  uint16_t reserved1 = 0;
  std::string queue;
  std::string consumer_tag;
  bool no_local = false;
  bool no_ack = false;
  bool exclusive = false;
  bool no_wait = false;
  field_table arguments;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.shortstr("consumer-tag", ms.consumer_tag...);
    v.bit("no-local", ms.no_local...);
    v.bit("no-ack", ms.no_ack...);
    v.bit("exclusive", ms.exclusive...);
    v.bit("no-wait", ms.no_wait...);
    v.table("arguments", ms.arguments...);
  }
};

/// Server -> client: the consumer tag in use.
struct basic_consume_ok {
  FLOTILLA_AMQP_METHOD(60, 21, "basic.consume-ok", false);
  std::string consumer_tag;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("consumer-tag", ms.consumer_tag...);
  }
};

/// Either peer: ends a consumer (server-sent when the queue goes away and the
/// client has consumer_cancel_notify).
struct basic_cancel {
  FLOTILLA_AMQP_METHOD(60, 30, "basic.cancel", false);
  std::string consumer_tag;
  bool no_wait = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("consumer-tag", ms.consumer_tag...);
    v.bit("no-wait", ms.no_wait...);
  }
};

/// Either peer: confirms basic.cancel.
struct basic_cancel_ok {
  FLOTILLA_AMQP_METHOD(60, 31, "basic.cancel-ok", false);
  std::string consumer_tag;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("consumer-tag", ms.consumer_tag...);
  }
};

/// Client -> server, with content: publishes a message.
struct basic_publish {
  FLOTILLA_AMQP_METHOD(60, 40, "basic.publish", true);
  uint16_t reserved1 = 0;
  std::string exchange;
  std::string routing_key;
  bool mandatory = false;
  bool immediate = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
    v.bit("mandatory", ms.mandatory...);
    v.bit("immediate", ms.immediate...);
  }
};

/// Server -> client, with content: returns an unroutable mandatory message.
struct basic_return {
  FLOTILLA_AMQP_METHOD(60, 50, "basic.return", true);
  uint16_t reply_code = 0;
  std::string reply_text;
  std::string exchange;
  std::string routing_key;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reply-code", ms.reply_code...);
    v.shortstr("reply-text", ms.reply_text...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
  }
};

/// Server -> client, with content: delivers a message to a consumer.
struct basic_deliver {
  FLOTILLA_AMQP_METHOD(60, 60, "basic.deliver", true);
  std::string consumer_tag;
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange;
  std::string routing_key;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("consumer-tag", ms.consumer_tag...);
    v.u64("delivery-tag", ms.delivery_tag...);
    v.bit("redelivered", ms.redelivered...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
  }
};

/// Client -> server: fetches one message synchronously.
struct basic_get {
  FLOTILLA_AMQP_METHOD(60, 70, "basic.get", false);
  uint16_t reserved1 = 0;
  std::string queue;
  bool no_ack = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("reserved-1", ms.reserved1...);
    v.shortstr("queue", ms.queue...);
    v.bit("no-ack", ms.no_ack...);
  }
};

/// Server -> client, with content: the message basic.get fetched.
struct basic_get_ok {
  FLOTILLA_AMQP_METHOD(60, 71, "basic.get-ok", true);
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange;
  std::string routing_key;
  uint32_t message_count = 0;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u64("delivery-tag", ms.delivery_tag...);
    v.bit("redelivered", ms.redelivered...);
    v.shortstr("exchange", ms.exchange...);
    v.shortstr("routing-key", ms.routing_key...);
    v.u32("message-count", ms.message_count...);
  }
};

/// Server -> client: the queue had no message. reserved1 is "cluster-id".
struct basic_get_empty {
  FLOTILLA_AMQP_METHOD(60, 72, "basic.get-empty", false);
  std::string reserved1;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("reserved-1", ms.reserved1...);
  }
};

/// Either peer: acknowledges delivery_tag (and all before it if multiple).
/// Server-sent in confirm mode.
struct basic_ack {
  FLOTILLA_AMQP_METHOD(60, 80, "basic.ack", false);
  uint64_t delivery_tag = 0;
  bool multiple = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u64("delivery-tag", ms.delivery_tag...);
    v.bit("multiple", ms.multiple...);
  }
};

/// Client -> server: rejects one delivery, requeueing it or not.
struct basic_reject {
  FLOTILLA_AMQP_METHOD(60, 90, "basic.reject", false);
  uint64_t delivery_tag = 0;
  bool requeue = true;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u64("delivery-tag", ms.delivery_tag...);
    v.bit("requeue", ms.requeue...);
  }
};

/// Client -> server (deprecated): redeliver unacked messages, no reply.
struct basic_recover_async {
  FLOTILLA_AMQP_METHOD(60, 100, "basic.recover-async", false);
  bool requeue = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.bit("requeue", ms.requeue...);
  }
};

/// Client -> server: redeliver all unacknowledged messages of the channel.
struct basic_recover {
  FLOTILLA_AMQP_METHOD(60, 110, "basic.recover", false);
  bool requeue = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.bit("requeue", ms.requeue...);
  }
};

/// Server -> client: confirms basic.recover.
struct basic_recover_ok {
  FLOTILLA_AMQP_METHOD(60, 111, "basic.recover-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Either peer (RabbitMQ extension): negative acknowledgement, like reject but
/// with multiple. Server-sent in confirm mode.
struct basic_nack {
  FLOTILLA_AMQP_METHOD(60, 120, "basic.nack", false);
  uint64_t delivery_tag = 0;
  bool multiple = false;
  bool requeue = true;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u64("delivery-tag", ms.delivery_tag...);
    v.bit("multiple", ms.multiple...);
    v.bit("requeue", ms.requeue...);
  }
};

/// Client -> server (RabbitMQ extension): puts the channel in publisher-confirm
/// mode.
struct confirm_select {
  FLOTILLA_AMQP_METHOD(85, 10, "confirm.select", false);
  bool no_wait = false;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.bit("no-wait", ms.no_wait...);
  }
};

/// Server -> client: confirms confirm.select.
struct confirm_select_ok {
  FLOTILLA_AMQP_METHOD(85, 11, "confirm.select-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: puts the channel in transaction mode.
struct tx_select {
  FLOTILLA_AMQP_METHOD(90, 10, "tx.select", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Server -> client: confirms tx.select.
struct tx_select_ok {
  FLOTILLA_AMQP_METHOD(90, 11, "tx.select-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: commits the publishes and acks of the current transaction.
struct tx_commit {
  FLOTILLA_AMQP_METHOD(90, 20, "tx.commit", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Server -> client: confirms tx.commit.
struct tx_commit_ok {
  FLOTILLA_AMQP_METHOD(90, 21, "tx.commit-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server: discards the current transaction.
struct tx_rollback {
  FLOTILLA_AMQP_METHOD(90, 30, "tx.rollback", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Server -> client: confirms tx.rollback.
struct tx_rollback_ok {
  FLOTILLA_AMQP_METHOD(90, 31, "tx.rollback-ok", false);
  FLOTILLA_AMQP_NO_FIELDS;
};

/// Client -> server (0-8 leftover, still sent by old clients): asks for an
/// access ticket. RabbitMQ answers access.request-ok with ticket 1 and ignores
/// the fields.
struct access_request {
  FLOTILLA_AMQP_METHOD(30, 10, "access.request", false);
  std::string realm = "/data";
  bool exclusive = false;
  bool passive = true;
  bool active = true;
  bool write = true;
  bool read = true;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.shortstr("realm", ms.realm...);
    v.bit("exclusive", ms.exclusive...);
    v.bit("passive", ms.passive...);
    v.bit("active", ms.active...);
    v.bit("write", ms.write...);
    v.bit("read", ms.read...);
  }
};

/// Server -> client: the (meaningless) access ticket.
struct access_request_ok {
  FLOTILLA_AMQP_METHOD(30, 11, "access.request-ok", false);
  uint16_t ticket = 1;
  template<class V, class... Ms>
  static void fields(V& v, Ms&... ms) {
    v.u16("ticket", ms.ticket...);
  }
};

#undef FLOTILLA_AMQP_METHOD
#undef FLOTILLA_AMQP_NO_FIELDS

/// Any AMQP 0-9-1 method. Alternatives follow the class order of the spec;
/// access.request/-ok (class 30) come last.
using method = std::variant<
  connection_start, connection_start_ok, connection_secure,
  connection_secure_ok, connection_tune, connection_tune_ok, connection_open,
  connection_open_ok, connection_close, connection_close_ok, connection_blocked,
  connection_unblocked, connection_update_secret, connection_update_secret_ok,
  channel_open, channel_open_ok, channel_flow, channel_flow_ok, channel_close,
  channel_close_ok, exchange_declare, exchange_declare_ok, exchange_delete,
  exchange_delete_ok, exchange_bind, exchange_bind_ok, exchange_unbind,
  exchange_unbind_ok, queue_declare, queue_declare_ok, queue_bind,
  queue_bind_ok, queue_purge, queue_purge_ok, queue_delete, queue_delete_ok,
  queue_unbind, queue_unbind_ok, basic_qos, basic_qos_ok, basic_consume,
  basic_consume_ok, basic_cancel, basic_cancel_ok, basic_publish, basic_return,
  basic_deliver, basic_get, basic_get_ok, basic_get_empty, basic_ack,
  basic_reject, basic_recover_async, basic_recover, basic_recover_ok,
  basic_nack, confirm_select, confirm_select_ok, tx_select, tx_select_ok,
  tx_commit, tx_commit_ok, tx_rollback, tx_rollback_ok, access_request,
  access_request_ok>;

/// Number of method types.
constexpr size_t method_count = std::variant_size_v<method>;

/// Returns (class_id << 16) | method_id, the key the decoder dispatches on.
constexpr uint32_t method_key(uint16_t class_id, uint16_t method_id) {
  return (uint32_t{class_id} << 16) | method_id;
}

namespace detail {

template<class T, class Variant>
struct is_alternative;

template<class T, class... Ts>
struct is_alternative<T, std::variant<Ts...>>
  : std::disjunction<std::is_same<T, Ts>...> {};

/// Compares two methods field by field.
struct method_equal {
  bool equal = true;
  template<class T>
  void cmp(const T& a, const T& b) {
    equal = equal && a == b;
  }
  void u8(const char*, const uint8_t& a, const uint8_t& b) {
    cmp(a, b);
  }
  void u16(const char*, const uint16_t& a, const uint16_t& b) {
    cmp(a, b);
  }
  void u32(const char*, const uint32_t& a, const uint32_t& b) {
    cmp(a, b);
  }
  void u64(const char*, const uint64_t& a, const uint64_t& b) {
    cmp(a, b);
  }
  void bit(const char*, const bool& a, const bool& b) {
    cmp(a, b);
  }
  void shortstr(const char*, const std::string& a, const std::string& b) {
    cmp(a, b);
  }
  void longstr(const char*, const std::string& a, const std::string& b) {
    cmp(a, b);
  }
  void table(const char*, const field_table& a, const field_table& b) {
    cmp(a, b);
  }
};

/// Appends method fields in wire format.
class method_encoder {
public:
  explicit method_encoder(std::string& out) : out_(out) {}
  void u8(const char*, uint8_t x) {
    bit_ = 8;
    wire::put_u8(out_, x);
  }
  void u16(const char*, uint16_t x) {
    bit_ = 8;
    wire::put_u16(out_, x);
  }
  void u32(const char*, uint32_t x) {
    bit_ = 8;
    wire::put_u32(out_, x);
  }
  void u64(const char*, uint64_t x) {
    bit_ = 8;
    wire::put_u64(out_, x);
  }
  void bit(const char*, bool x) {
    if (bit_ == 8) {
      at_ = out_.size();
      out_.push_back('\0');
      bit_ = 0;
    }
    if (x)
      out_[at_] = static_cast<char>(out_[at_] | (1u << bit_));
    ++bit_;
  }
  void shortstr(const char*, const std::string& x) {
    bit_ = 8;
    wire::put_shortstr(out_, x);
  }
  void longstr(const char*, const std::string& x) {
    bit_ = 8;
    wire::put_longstr(out_, x);
  }
  void table(const char*, const field_table& x) {
    bit_ = 8;
    encode_field_table(out_, x);
  }

private:
  std::string& out_;
  size_t at_ = 0;    ///< Position of the octet that takes the next bit.
  unsigned bit_ = 8; ///< Next bit in that octet; 8 means "start a new one".
};

} // namespace detail

/// True for the method structs above.
template<class T>
constexpr bool is_method_v = detail::is_alternative<T, method>::value;

/// Returns true if all fields are equal.
template<class M, std::enable_if_t<is_method_v<M>, int> = 0>
bool operator==(const M& a, const M& b) {
  detail::method_equal eq;
  M::fields(eq, a, b);
  return eq.equal;
}

template<class M, std::enable_if_t<is_method_v<M>, int> = 0>
bool operator!=(const M& a, const M& b) {
  return !(a == b);
}

/// Decodes a method frame payload (class id, method id, arguments) into
/// `out`, reusing its storage when it already holds the same method type.
/// Returns errc::none, or
/// - errc::command_invalid for a class/method id pair that is not listed
///   above (RabbitMQ itself crashes the connection there);
/// - errc::frame_error when the payload is shorter than 4 bytes, truncated,
///   has bytes after the last argument, or holds a malformed table (RabbitMQ:
///   501 "cannot decode").
/// After an error `out` is unspecified.
errc decode_method(std::string_view payload, method& out);

/// Returns the class id of the method `m` holds.
uint16_t class_id_of(const method& m);

/// Returns the method id of the method `m` holds.
uint16_t method_id_of(const method& m);

/// Returns the dotted AMQP name, e.g. "basic.publish".
const char* name_of(const method& m);

/// Returns true for basic.publish, basic.return, basic.deliver, basic.get-ok.
bool has_content(const method& m);

/// Returns true if (class_id, method_id) names one of the methods above.
bool is_known_method(uint16_t class_id, uint16_t method_id);

/// Returns e.g. `queue.declare(reserved-1=0, queue="q", passive=false, ...)`
/// for logs and the inspector; long strings (SASL responses, secrets) are
/// shown by size only.
std::string describe(const method& m);

/// Appends the method payload (class id, method id, arguments).
template<class M>
void append_method_payload(std::string& out, const M& m) {
  static_assert(is_method_v<M>, "not an AMQP method struct");
  wire::put_u16(out, M::class_id);
  wire::put_u16(out, M::method_id);
  detail::method_encoder enc{out};
  M::fields(enc, m);
}

/// Appends a whole method frame (type 1, channel, size, payload, 0xCE).
/// Short strings longer than 255 bytes are truncated.
template<class M>
void append_method_frame(std::string& out, uint16_t channel, const M& m) {
  auto start = out.size();
  append_frame_header(out, frame_type::method, channel, 0);
  append_method_payload(out, m);
  wire::store_u32(&out[start + 3], static_cast<uint32_t>(out.size() - start
                                                         - frame_header_size));
  out.push_back(static_cast<char>(frame_end));
}

/// Appends a whole method frame for whichever method `m` holds.
void append_method_frame(std::string& out, uint16_t channel, const method& m);

} // namespace flotilla::protocol
