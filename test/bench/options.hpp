#pragma once

#include <cstdint>
#include <string>

#include "test/bench/client.hpp"

namespace flotilla::bench {

/// What flotilla-bench does, from its command line. See help_text().
struct options {
  std::string url_text = "amqp://guest:guest@127.0.0.1:5672/";
  bench::url url;
  /// Consumers (and the queues) are on this broker; empty = url_text.
  std::string consume_url_text;
  bench::url consume_url;
  /// run | idle-connections | wait-ready | delete | declare
  std::string mode = "run";

  // Topology.
  int publishers = 1;
  int consumers = 1;
  int queues = 1;
  int fanout = 0; ///< > 0: publish to a fanout exchange bound to K queues.
  bool durable = false;
  std::string queue_name; ///< Fixed queue name instead of a unique one.
  bool keep = false;      ///< Do not delete queues/exchanges at the end.
  /// Publish to this exchange (declared on both brokers, never deleted)
  /// instead of the default exchange; the queue is bound with routing_key.
  std::string exchange;
  std::string exchange_type = "direct";
  std::string routing_key; ///< Empty: the queue's name.
  /// > 0: before measuring, publish probes until one reaches the consumer's
  /// queue (a federation route is ready); fail after this many seconds.
  double warm_up = 0;

  // Workload.
  uint64_t messages = 100000; ///< Per publisher.
  double duration = 0;        ///< Seconds; replaces --messages when > 0.
  uint64_t size = 100;        ///< Body bytes (>= 24).
  bool persistent = false;
  uint32_t confirm = 0; ///< Max unconfirmed in flight; 0 = no confirms.
  uint16_t prefetch = 0;
  bool manual_ack = false;
  uint32_t multiple_ack = 1; ///< Manual acks: one ack(multiple) per N.
  double rate = 0;           ///< Per publisher, msg/s; 0 = as fast as possible.
  uint64_t max_backlog = 0;  ///< Per publisher; 0 = unlimited.

  // Memory, idle connections, restarts.
  int broker_pid = 0;
  int consume_broker_pid = 0; ///< The consuming broker, if another one.
  int connections = 0;
  double hold = 3;      ///< Seconds to hold idle connections.
  uint64_t expect = 0;  ///< wait-ready: messages the queue must report.
  double timeout = 120; ///< wait-ready: give up after this many seconds.
  double settle = 0;    ///< Seconds to wait before the final memory sample.

  double stall_timeout = 30; ///< Abort when nothing moves for this long.
  bool json = false;
  std::string label; ///< Copied into the JSON output.
};

/// Returns the text --help prints.
std::string help_text();

/// Parses argv into `out`. Returns an empty string on success, "help" when
/// --help was given, else what is wrong.
std::string parse_options(int argc, char** argv, options& out);

} // namespace flotilla::bench
