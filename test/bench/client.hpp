#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "protocol/frame.hpp"
#include "protocol/methods.hpp"

namespace flotilla::bench {

/// Where to connect: parsed from amqp://user:password@host:port/vhost.
struct url {
  std::string host = "127.0.0.1";
  uint16_t port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
};

/// Parses `text` into `out`. Returns an empty string on success, else what is
/// wrong. The vhost is the path after the first '/', percent-decoded ("%2f"
/// is "/"); an empty path means "/".
std::string parse_url(std::string_view text, url& out);

/// Thrown on socket errors, timeouts and protocol errors, including a
/// channel.close or connection.close from the broker. The bench tool is a
/// client: any of these ends the run as failed.
class bench_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

using clock_type = std::chrono::steady_clock;

/// One AMQP 0-9-1 connection with one channel (number 1), over a
/// non-blocking TCP socket. Used by exactly one thread at a time.
///
/// Two styles of use:
/// - setup: call() sends a method and waits for its reply, dropping frames
///   it does not expect (there are none during setup);
/// - hot path: the worker appends frames to out(), and pump() writes what it
///   can and hands every received frame to a callback. Reads are large
///   (256 KiB) and writes are batched: whatever out() holds goes in one
///   send().
class connection {
public:
  connection() = default;
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects, runs the handshake (PLAIN, heartbeats off, the broker's
  /// frame_max) and opens channel 1. Throws bench_error.
  void open(const url& u, const std::string& name,
            std::chrono::milliseconds timeout = std::chrono::seconds{30});

  /// Sends connection.close and waits up to `timeout` for close-ok; never
  /// throws. Closes the socket.
  void close(std::chrono::milliseconds timeout = std::chrono::seconds{5});

  /// Closes the socket without the AMQP goodbye.
  void abort();

  bool is_open() const {
    return fd_ >= 0;
  }

  /// Returns the negotiated frame_max (bytes per frame incl. overhead).
  uint32_t frame_max() const {
    return frame_max_;
  }

  /// Bytes waiting to be written; append frames here.
  std::string& out() {
    return out_;
  }

  /// Sends `m` on channel 1 and waits for a method of type Reply on channel
  /// 1. Throws bench_error on timeout or when the broker closes the channel
  /// or the connection.
  template<class Reply, class M>
  Reply call(const M& m,
             std::chrono::milliseconds timeout = std::chrono::seconds{30});

  /// Sends `m` on channel 1 without waiting for anything.
  template<class M>
  void send(const M& m) {
    protocol::append_method_frame(out_, 1, m);
    flush(std::chrono::seconds{30});
  }

  /// Writes all of out() or throws after `timeout`.
  void flush(std::chrono::milliseconds timeout);

  /// Waits up to `timeout` for the socket to be readable (or writable while
  /// out() is not empty), writes what it can, reads up to 256 KiB and feeds
  /// every frame to `on_frame(const protocol::frame_view&)`. Returns true if
  /// it read anything. Throws bench_error when the peer closed the socket or
  /// sent malformed frames. A zero timeout only polls.
  template<class F>
  bool pump(std::chrono::microseconds timeout, F&& on_frame);

  /// Throws bench_error if `f` is channel.close or connection.close (after
  /// answering it), naming the reply text. Returns the decoded method of
  /// other method frames through `out`; returns false for non-method frames.
  bool decode(const protocol::frame_view& f, protocol::method& out);

private:
  /// Waits for readiness, writes, reads; returns bytes read into in_ (0 on
  /// timeout).
  size_t io(std::chrono::microseconds timeout);

  /// Feeds in_[0, n) to the decoder.
  template<class F>
  void feed(size_t n, F& on_frame);

  [[noreturn]] void fail(const std::string& what);

  int fd_ = -1;
  uint32_t frame_max_ = protocol::frame_min_size;
  std::string out_;
  std::string in_;
  protocol::frame_decoder decoder_{0};
  std::string peer_; ///< host:port, for messages.
};

template<class F>
void connection::feed(size_t n, F& on_frame) {
  auto e = decoder_.feed(in_.data(), n, [&](const protocol::frame_view& f) {
    on_frame(f);
  });
  if (e != errc::none)
    fail(std::string{"malformed frames from broker: "} + to_string(e));
}

template<class F>
bool connection::pump(std::chrono::microseconds timeout, F&& on_frame) {
  auto n = io(timeout);
  if (n == 0)
    return false;
  feed(n, on_frame);
  return true;
}

template<class Reply, class M>
Reply connection::call(const M& m, std::chrono::milliseconds timeout) {
  send(m);
  auto deadline = clock_type::now() + timeout;
  protocol::method reply;
  bool got = false;
  while (!got) {
    auto now = clock_type::now();
    if (now >= deadline)
      fail(std::string{"timeout waiting for "} + Reply::name);
    pump(std::chrono::duration_cast<std::chrono::microseconds>(deadline - now),
         [&](const protocol::frame_view& f) {
           if (got || f.channel != 1 || !decode(f, reply))
             return;
           got = std::holds_alternative<Reply>(reply);
         });
  }
  return std::get<Reply>(std::move(reply));
}

} // namespace flotilla::bench
