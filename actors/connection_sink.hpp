#pragma once

#include <cstdint>
#include <string>

namespace flotilla {

/// The transport side of one client connection, as its connection actor sees
/// it. Implemented by transport/ (Boost.Asio); every member is thread-safe
/// and non-blocking: it posts work to the socket's strand.
class connection_sink {
public:
  virtual ~connection_sink() = default;

  /// Queues bytes for writing, in order.
  virtual void write(std::string bytes) = 0;

  /// Writes what is queued, then closes the socket.
  virtual void close_after_flush() = 0;

  /// Applies the negotiated frame_max and heartbeat (seconds, 0 = off).
  virtual void tune(uint32_t frame_max, uint16_t heartbeat) = 0;

  /// Tells the reader that one input batch has been processed (flow control:
  /// the reader pauses while too many batches are in flight).
  virtual void batch_done() = 0;
};

} // namespace flotilla
