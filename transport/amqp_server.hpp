#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace flotilla {

class broker;

/// The AMQP 0-9-1 listener: Boost.Asio accepts client sockets, checks the
/// protocol header, decodes frames into commands and hands them in batches
/// to one connection actor per socket (spawned here). Writes from actors are
/// posted to the socket's strand and coalesced. Heartbeats are sent and
/// checked here. Asio runs on its own threads, separate from CAF's.
class amqp_server {
public:
  struct options {
    std::string interface = "127.0.0.1";
    uint16_t port = 5672; ///< 0 picks a free port.
    unsigned io_threads = 1;
    int backlog = 1024;
    uint32_t max_connections = 0; ///< 0 = unlimited.
  };

  /// Binds the listening socket. Throws std::runtime_error when the address
  /// cannot be bound (startup only).
  amqp_server(broker& b, options opts);
  ~amqp_server();

  amqp_server(const amqp_server&) = delete;
  amqp_server& operator=(const amqp_server&) = delete;

  /// Returns the bound port.
  uint16_t port() const;

  /// Starts accepting and runs the I/O threads (non-blocking).
  void start();

  /// Stops accepting new connections.
  void stop_accepting();

  /// Returns the number of open client sockets.
  size_t open_sockets() const;

  /// Stops the I/O threads (after connections were closed) and joins them.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace flotilla
