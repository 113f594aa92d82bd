#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/errc.hpp"
#include "protocol/field_table.hpp"

namespace flotilla {

/// The largest TTL or expiry RabbitMQ accepts, in milliseconds (2^32 - 1):
/// x-message-ttl, x-expires and the per-message expiration property.
constexpr int64_t max_expiry_ms = 4294967295;

/// The largest x-max-priority RabbitMQ accepts (it recommends at most 10).
constexpr int64_t max_supported_priority = 255;

/// One queue's behaviour, parsed from the x- arguments of queue.declare.
/// Plain data: copied into the queue actor and its queue_model.
struct queue_config {
  std::optional<int64_t> message_ttl;      ///< x-message-ttl, ms, >= 0.
  std::optional<int64_t> expires;          ///< x-expires, ms, > 0.
  std::optional<int64_t> max_length;       ///< x-max-length, ready messages.
  std::optional<int64_t> max_length_bytes; ///< x-max-length-bytes, bodies.

  /// x-overflow: what happens when a max-length limit is exceeded.
  enum class overflow_policy : uint8_t {
    drop_head,         ///< "drop-head": drop (dead-letter) the oldest.
    reject_publish,    ///< "reject-publish": refuse the new message.
    reject_publish_dlx ///< "reject-publish-dlx": refuse and dead-letter it.
  };
  overflow_policy overflow = overflow_policy::drop_head;

  /// x-dead-letter-exchange ("" is the default exchange).
  std::optional<std::string> dead_letter_exchange;
  /// x-dead-letter-routing-key; only with x-dead-letter-exchange.
  std::optional<std::string> dead_letter_routing_key;
  uint8_t max_priority = 0;            ///< x-max-priority; 0: no priorities.
  bool single_active_consumer = false; ///< x-single-active-consumer.
};

/// Returns "drop-head", "reject-publish" or "reject-publish-dlx".
const char* to_string(queue_config::overflow_policy p);

/// Parses and validates the x- arguments of queue.declare into `out` (which
/// is reset first), like RabbitMQ: integer arguments accept any AMQP integer
/// type; x-message-ttl in [0, 2^32-1], x-expires in [1, 2^32-1],
/// x-max-length and x-max-length-bytes >= 0, x-max-priority in [0, 255],
/// x-overflow one of "drop-head", "reject-publish", "reject-publish-dlx",
/// x-dead-letter-exchange and x-dead-letter-routing-key strings (the latter
/// only together with the former), x-single-active-consumer a bool. Other
/// arguments (x-queue-type, x-queue-mode, ...) are ignored, as RabbitMQ
/// ignores arguments it does not know.
/// Returns errc::none, or errc::precondition_failed with `error_text` in
/// RabbitMQ's wording, e.g. "invalid arg 'x-max-length' for queue 'q' in
/// vhost '/': {value_negative,-1}" (the "for queue ... in vhost ..." part only
/// when `queue_name` is not empty).
errc parse_queue_arguments(const protocol::field_table& args, queue_config& out,
                           std::string& error_text,
                           std::string_view queue_name = {},
                           std::string_view vhost = "/");

/// Returns the name of the first argument ("x-message-ttl", ...) whose parsed
/// value differs between `a` and `b`, or nullptr when they are equivalent.
/// Compares parsed values, so a value given with another integer type or an
/// argument spelled out with its default (x-overflow "drop-head",
/// x-max-priority 0, x-single-active-consumer false) is equivalent; RabbitMQ
/// is stricter there.
const char* first_inequivalent_arg(const queue_config& a,
                                   const queue_config& b);

/// Returns true if a redeclaration with `b` matches a queue declared with
/// `a` (else queue.declare fails with 406 "inequivalent arg").
bool equivalent(const queue_config& a, const queue_config& b);

/// Parses the per-message `expiration` property: absent -> errc::none and
/// `ttl_ms` empty; a decimal integer in [0, 2^32-1] -> errc::none and
/// `ttl_ms` set; anything else -> errc::precondition_failed, and when
/// `error_text` is given RabbitMQ's text, e.g. "invalid expiration '-1':
/// {value_negative,-1}" (the publish is then refused with channel.close 406).
errc parse_expiration(const std::optional<std::string>& expiration,
                      std::optional<int64_t>& ttl_ms,
                      std::string* error_text = nullptr);

/// Returns the TTL of a valid expiration property in ms, or nullopt when it
/// is absent or invalid (queues treat an invalid one as absent: publishers
/// are expected to have refused it with parse_expiration above).
std::optional<int64_t>
parse_expiration(const std::optional<std::string>& expiration);

} // namespace flotilla
