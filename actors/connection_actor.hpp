#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/connection_sink.hpp"

namespace flotilla {

class broker;

/// What the transport knows about a freshly accepted client.
struct connection_info {
  std::string peer; ///< "127.0.0.1:54321", for logs.
  bool peer_is_loopback = false;
};

/// Spawns the actor of one AMQP client connection, after the transport has
/// read a valid protocol header. It sends connection.start at once, runs the
/// handshake (SASL PLAIN/AMQPLAIN, tune, open), then owns every channel:
/// prefetch, unacked deliveries, publisher confirms, transactions, consumers.
/// Node-local; quits when the connection closes.
///
/// Messages: (input_atom, input_batch_ptr) from the transport;
/// (deliver_atom, delivery_batch) and (cancelled_atom, consumer key) from
/// queues; (shutdown_atom, std::string reason) closes with 320.
caf::actor spawn_connection(broker& b, std::shared_ptr<connection_sink> sink,
                            connection_info info);

} // namespace flotilla
