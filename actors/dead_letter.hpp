#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "actors/message.hpp"

namespace flotilla {

/// Why a queue gave a message up. Shown as RabbitMQ's x-death "reason".
enum class dead_letter_reason : uint8_t {
  rejected, ///< basic.reject / basic.nack with requeue=false.
  expired,  ///< Its TTL (queue or per-message) ran out.
  maxlen,   ///< Dropped or refused by x-max-length / x-max-length-bytes.
};

/// Returns "rejected", "expired" or "maxlen".
const char* to_string(dead_letter_reason r);

/// A message a queue_model gave up while a dead-letter exchange is
/// configured. `msg` is the original, unchanged message; the queue actor
/// builds the copy to route with make_dead_lettered().
struct dead_letter {
  message_ptr msg;
  dead_letter_reason reason;
};

/// Returns the copy of `original` that queue `queue_name` publishes to its
/// dead-letter exchange, as RabbitMQ (3.12) builds it:
/// - headers get an `x-death` array of tables, most recent first, one per
///   (queue, reason): `count` (long), `reason`, `queue`, `time` (timestamp,
///   seconds; kept from the first such death), `exchange` (the one the
///   original was published to), `routing-keys` (its routing key, then any
///   `CC` and `BCC` header keys) and, if the message had an expiration,
///   `original-expiration`. An existing entry for the same queue and reason
///   moves to the front with its count incremented;
/// - `x-first-death-reason/queue/exchange` are added when the message had no
///   `x-death` yet; `x-last-death-reason/queue/exchange` are always set;
/// - the `expiration` property is removed (the copy must not expire again
///   because of the same per-message TTL);
/// - the routing key becomes `dlx_routing_key` when given (and then the `CC`
///   header is removed), else stays the original's;
/// - `exchange` is set to `dead_letter_exchange` (default "": pass the DLX
///   name so that a further dead-lettering records the right `exchange`);
/// - `raw_header` is empty (properties changed: the connection re-encodes
///   them), `published_at` is `now`; the body is copied.
message_ptr
make_dead_lettered(const message& original, const std::string& queue_name,
                   dead_letter_reason reason, millis now,
                   const std::optional<std::string>& dlx_routing_key,
                   const std::string& dead_letter_exchange = {});

/// Returns true if routing `dead_lettered` (a make_dead_lettered() result
/// for `reason`) into queue `target_queue` would close a dead-letter cycle
/// that RabbitMQ drops silently: the target already appears in its `x-death`
/// and no death since then (including that one) was a rejection. Rejections
/// never cycle (a consumer decided), so this is false for `rejected`.
bool is_dead_letter_cycle(const message& dead_lettered,
                          dead_letter_reason reason,
                          std::string_view target_queue);

} // namespace flotilla
