#pragma once

// The second door to the management agent (the first is the AMQP exchange
// qmf.default.direct): runs management Requests for callers inside the
// process, such as the web inspector (transport/inspector_server.hpp). Plain
// C++ in its interface (no CAF, no protobuf), so transport/ can include it.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flotilla::management {

/// One broker event, kept for the inspector's live event log.
struct event_record {
  uint64_t seq = 0; ///< 1, 2, 3, ... in publication order.
  std::string json; ///< An Event of protocol/management.proto as JSON.
};

/// The last `capacity` broker events (queue/exchange/binding created and
/// deleted, connection opened and closed). Written by any thread that
/// publishes an event, read by the inspector's threads; a mutex guards it
/// (events are rare next to messages).
class event_log {
public:
  explicit event_log(size_t capacity = 1000) : capacity_(capacity) {}

  /// Appends an event; drops the oldest beyond the capacity.
  void append(std::string json);

  /// Returns up to `max` events with seq > `after`, oldest first.
  std::vector<event_record> since(uint64_t after, size_t max) const;

  /// Returns the seq of the newest event (0 if none yet).
  uint64_t last_seq() const;

private:
  mutable std::mutex mtx_;
  size_t capacity_;
  uint64_t next_ = 1;
  std::deque<event_record> events_; // Guarded by mtx_.
};

/// Runs management requests on the agent of the default vhost. Made by
/// install_agents(); thread-safe; every callback runs on a CAF worker thread
/// and must not block (post it to your own thread).
class service {
public:
  /// Receives the response status (200, 404, ...) and the Response as JSON
  /// (the same printing as the AMQP door's JSON replies).
  using response_handler = std::function<void(uint32_t, std::string)>;

  /// Receives the Prometheus text exposition (docs/inspector.md).
  using text_handler = std::function<void(std::string)>;

  virtual ~service();

  /// Runs `request_json` (a management Request in the protobuf JSON mapping;
  /// an empty vhost means "/") for the already authenticated `user` (ignored
  /// when the broker runs with --auth no). Permissions are checked exactly
  /// as for the AMQP door: reads for users of the vhost, changes for
  /// administrators. `done` is called exactly once, unless the node stops.
  virtual void execute(std::string request_json, std::string user,
                       response_handler done) const = 0;

  /// Runs the HEALTH method as the node itself (no user), for /healthz.
  virtual void health(response_handler done) const = 0;

  /// Builds the /metrics text. `per_object`: one series per queue, exchange
  /// and connection; otherwise sums per vhost. Sees every vhost.
  virtual void metrics(bool per_object, text_handler done) const = 0;

  /// Returns the broker event log.
  virtual const event_log& events() const = 0;
};

} // namespace flotilla::management
