#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flotilla {

/// Encoded frames for one write: `bytes`, with large message bodies
/// referenced instead of copied in (scatter/gather output).
struct outbound {
  /// Body bytes written just before bytes[at], kept alive by `owner`.
  struct slice {
    size_t at = 0;
    const char* data = nullptr;
    size_t size = 0;
    std::shared_ptr<const void> owner;
  };
  std::string bytes;
  std::vector<slice> slices; ///< Ordered by `at`.

  bool empty() const {
    return bytes.empty() && slices.empty();
  }
  /// Appends `other` (its slices shifted to follow these bytes).
  void append(outbound&& other);
};

inline void outbound::append(outbound&& other) {
  auto base = bytes.size();
  bytes.append(other.bytes);
  for (auto& s : other.slices) {
    s.at += base;
    slices.push_back(std::move(s));
  }
}

/// The transport side of one client connection, as its connection actor sees
/// it. Implemented by transport/ (Boost.Asio); every member is thread-safe
/// and non-blocking: it posts work to the socket's strand.
class connection_sink {
public:
  virtual ~connection_sink() = default;

  /// Queues frames for writing, in order.
  virtual void write(outbound frames) = 0;

  /// Writes what is queued, then closes the socket.
  virtual void close_after_flush() = 0;

  /// Applies the negotiated frame_max and heartbeat (seconds, 0 = off).
  virtual void tune(uint32_t frame_max, uint16_t heartbeat) = 0;

  /// Tells the reader that one input batch has been processed (flow control:
  /// the reader pauses while too many batches are in flight).
  virtual void batch_done() = 0;
};

} // namespace flotilla
