#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/properties.hpp"

namespace flotilla {

/// Milliseconds since the epoch (system clock); the broker's notion of "now"
/// for TTLs and expiry. Passed in explicitly so logic is testable.
using millis = int64_t;

/// One published message. Immutable once routed: every queue that receives it
/// shares the same object, so fan-out never copies the body or properties.
/// Plain C++ (no CAF); built by the publishing connection.
struct message {
  std::string exchange;    ///< The exchange it was published to.
  std::string routing_key; ///< As published.
  protocol::basic_properties properties;
  /// The content header payload as received (class, weight, size, flags,
  /// properties). Deliveries reuse it verbatim when properties are unchanged.
  std::string raw_header;
  std::string body;
  millis published_at = 0; ///< When the broker accepted it.

  /// Returns true for delivery_mode 2.
  bool persistent() const {
    return properties.delivery_mode && *properties.delivery_mode == 2;
  }
  /// Returns the priority property, 0 when absent.
  uint8_t priority() const {
    return properties.priority ? *properties.priority : 0;
  }
  /// Returns the body size plus a rough per-message overhead, for
  /// x-max-length-bytes (which counts bodies only) use body.size().
  size_t body_size() const {
    return body.size();
  }
};

/// Shared, immutable message handle.
using message_ptr = std::shared_ptr<const message>;

} // namespace flotilla
