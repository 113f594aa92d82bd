#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace flotilla::config {
class user_db;
} // namespace flotilla::config

namespace flotilla::management {
class service;
} // namespace flotilla::management

namespace flotilla {

/// The web inspector (docs/inspector.md): a Boost.Beast HTTP + WebSocket
/// server with the JSON API under /api/, Prometheus /metrics, /healthz, the
/// login form's session cookies and the static page of web/.
///
/// Threading: Beast runs on its own io_context thread(s), never on CAF's.
/// Every request for data goes to the management agents through
/// management::service, whose callbacks (on CAF threads) only post the
/// answer back to the socket's strand. A request that is not answered
/// within `options::timeout` gets 503, so a stuck actor never holds a
/// socket; a browser that reads slowly only delays its own WebSocket
/// updates (a tick is skipped while the previous one is still being sent).
class inspector_server {
public:
  struct options {
    std::string interface = "127.0.0.1";
    uint16_t port = 15672; ///< 0 picks a free port.
    /// Directory with index.html and assets/ (the built web/ page); empty
    /// or missing: the page routes answer with a page that says so.
    std::string web_dir;
    /// False (--auth no): every request is allowed without credentials.
    bool auth = true;
    /// Default of /metrics (?per_object=yes|no overrides it per scrape).
    bool metrics_per_object = true;
    std::chrono::milliseconds timeout{5000};
    /// Session cookies expire after this long.
    std::chrono::seconds session_lifetime{12 * 3600};
    unsigned io_threads = 1;
  };

  /// Binds the listening socket. Throws std::runtime_error when the address
  /// cannot be bound (startup only). `door` and `users` must outlive this.
  inspector_server(std::shared_ptr<management::service> door,
                   const config::user_db& users, options opts);
  ~inspector_server();

  inspector_server(const inspector_server&) = delete;
  inspector_server& operator=(const inspector_server&) = delete;

  /// Returns the bound port.
  uint16_t port() const;

  /// Starts accepting and runs the I/O threads (non-blocking).
  void start();

  /// Closes the listener and every open socket, stops the I/O threads and
  /// joins them.
  void stop();

  /// The implementation (inspector_server.cpp); public so that its session
  /// classes can name it.
  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// Returns the value of cookie `name` in a Cookie header, or "".
std::string cookie_value(const std::string& header, const std::string& name);

/// Decodes %XX escapes (and '+' as space when `form` is set). Returns false
/// on a malformed escape.
bool url_decode(const std::string& in, std::string& out, bool form = false);

} // namespace flotilla
