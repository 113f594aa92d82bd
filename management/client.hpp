#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flotilla::management {

class Request;
class Response;

/// Where the CLI connects: amqp://user:password@host:port/vhost.
struct broker_url {
  std::string host = "127.0.0.1";
  uint16_t port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
};

/// Parses `text` into `out`: "amqp://user:pass@host:port/vhost" (the vhost
/// percent-decoded, "%2f" is "/"; an empty path is "/"), or without the
/// scheme Qpid's "user/pass@host:port" and plain "host[:port]". Returns an
/// empty string on success, else what is wrong.
std::string parse_broker_url(std::string_view text, broker_url& out);

/// Why a client call failed, for the CLI's exit codes.
enum class client_failure {
  connect,  ///< DNS, TCP connect, socket errors.
  refused,  ///< Login or vhost refused by the broker.
  timeout,  ///< No answer in time.
  protocol, ///< The broker closed the channel or sent garbage.
};

class client_error : public std::runtime_error {
public:
  client_error(client_failure f, const std::string& what)
    : std::runtime_error(what), failure(f) {}

  client_failure failure;
};

/// A blocking AMQP 0-9-1 client for management requests, on Boost.Asio and
/// protocol/. Opens one channel, declares a server-named exclusive reply
/// queue and consumes it; call() publishes a Request (binary protobuf) to
/// qmf.default.direct with routing key "broker", the reply queue as
/// reply_to, a fresh correlation_id and the login as user_id, and waits for
/// the Response with that correlation_id. Not thread-safe. Every member
/// throws client_error.
class client {
public:
  explicit client(std::chrono::milliseconds timeout);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Connects and logs in.
  void open(const broker_url& url);

  /// Addresses later requests to the broker named `node` (its --name)
  /// instead of the one connected to: routing key `node` on
  /// qmf.default.direct, reply_to "qmf.default.direct/REPLY_QUEUE" with the
  /// reply queue bound there, so the request and the reply cross federation
  /// routes on qmf.default.direct (docs/federation.md). Empty: this broker.
  void set_node(const std::string& node);

  /// Sends `req` and returns the broker's response.
  void call(const Request& req, Response& resp);

  /// Binds a new exclusive queue to qmf.default.topic with `binding_key`,
  /// calls `on_ready()` once the subscription exists, then
  /// `on_event(routing_key, json_body)` for each event until it returns
  /// false, or until `duration` has passed (zero: no limit).
  void watch_events(const std::string& binding_key,
                    std::chrono::milliseconds duration,
                    const std::function<void()>& on_ready,
                    const std::function<bool(const std::string&,
                                             const std::string&)>& on_event);

  /// Closes the connection politely (never throws).
  void close();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace flotilla::management
