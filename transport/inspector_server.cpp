#include "transport/inspector_server.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "actors/log.hpp"
#include "config/users.hpp"
#include "management/service.hpp"

namespace flotilla {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
namespace fs = std::filesystem;

// -- small helpers (exposed for tests) -----------------------------------

std::string cookie_value(const std::string& header, const std::string& name) {
  size_t pos = 0;
  while (pos < header.size()) {
    auto end = header.find(';', pos);
    if (end == std::string::npos)
      end = header.size();
    auto item = header.substr(pos, end - pos);
    auto first = item.find_first_not_of(' ');
    if (first != std::string::npos) {
      item.erase(0, first);
      auto eq = item.find('=');
      if (eq != std::string::npos && item.compare(0, eq, name) == 0
          && eq == name.size())
        return item.substr(eq + 1);
    }
    pos = end + 1;
  }
  return {};
}

bool url_decode(const std::string& in, std::string& out, bool form) {
  std::string result;
  result.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()
          || !std::isxdigit(static_cast<unsigned char>(in[i + 1]))
          || !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
        return false;
      result += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (c == '+' && form) {
      result += ' ';
    } else {
      result += c;
    }
  }
  out = std::move(result);
  return true;
}

namespace {

constexpr const char* session_cookie = "flotilla_session";
constexpr size_t max_watches = 8;
constexpr size_t max_events_per_tick = 200;

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string error_json(unsigned status, const std::string& text) {
  return "{\"status\": " + std::to_string(status)
         + ", \"error\": " + json_string(text) + "}";
}

/// Escapes the shell-pattern characters of a name so that it matches only
/// itself (fnmatch without FNM_NOESCAPE).
std::string literal_pattern(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    return {};
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (auto b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

using query_map = std::map<std::string, std::string>;

bool parse_query(const std::string& text, query_map& out) {
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    auto end = text.find('&', pos);
    if (end == std::string::npos)
      end = text.size();
    auto item = text.substr(pos, end - pos);
    if (!item.empty()) {
      auto eq = item.find('=');
      std::string k;
      std::string v;
      if (!url_decode(item.substr(0, eq), k, true))
        return false;
      if (eq != std::string::npos && !url_decode(item.substr(eq + 1), v, true))
        return false;
      out[k] = v;
    }
    pos = end + 1;
  }
  return true;
}

bool is_true(const std::string& v) {
  return v == "1" || v == "true" || v == "yes";
}

const char* content_type_of(const fs::path& p) {
  auto ext = p.extension().string();
  if (ext == ".html")
    return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs")
    return "text/javascript; charset=utf-8";
  if (ext == ".css")
    return "text/css; charset=utf-8";
  if (ext == ".svg")
    return "image/svg+xml";
  if (ext == ".png")
    return "image/png";
  if (ext == ".json" || ext == ".map")
    return "application/json";
  if (ext == ".ico")
    return "image/x-icon";
  if (ext == ".woff2")
    return "font/woff2";
  return "application/octet-stream";
}

/// The collections of /api/<name> and the management kind each lists.
const std::map<std::string, std::string>& collections() {
  static const std::map<std::string, std::string> m = {
    {"nodes", "broker"},
    {"vhosts", "vhost"},
    {"exchanges", "exchange"},
    {"queues", "queue"},
    {"bindings", "binding"},
    {"connections", "connection"},
    {"channels", "channel"},
    {"consumers", "consumer"},
    {"actors", "actor"},
    {"users", "user"},
    {"links", "link"},
    {"bridges", "bridge"},
    {"ha-replicators", "ha_replicator"},
    {"cluster-members", "cluster_member"},
  };
  return m;
}

/// A decoded API call: either a management Request (as JSON) or an error.
struct api_call {
  unsigned status = 0; ///< Set when the route is refused before running.
  std::string error;
  std::string request_json;
};

api_call api_error(unsigned status, std::string text) {
  api_call c;
  c.status = status;
  c.error = std::move(text);
  return c;
}

/// Builds the request of a read-only API route (GET). `segments` are the
/// decoded path segments after "api".
api_call route_get(const std::vector<std::string>& segments,
                   const query_map& q) {
  auto vhost = q.count("vhost") ? q.at("vhost") : std::string{"/"};
  auto req = [&](const std::string& method, const std::string& kind,
                 const std::string& vh, const std::string& name,
                 const std::string& list) {
    api_call c;
    c.request_json = "{\"method\": " + json_string(method);
    if (!kind.empty())
      c.request_json += ", \"kind\": " + json_string(kind);
    c.request_json += ", \"vhost\": " + json_string(vh);
    if (!name.empty())
      c.request_json += ", \"name\": " + json_string(name);
    if (!list.empty())
      c.request_json += ", \"list\": " + list;
    c.request_json += "}";
    return c;
  };
  auto list_options = [&](std::string pattern, std::string& out) {
    auto number = [&](const char* key, std::string& text) {
      if (!q.count(key))
        return true;
      text = q.at(key);
      return !text.empty() && text.size() < 10
             && text.find_first_not_of("0123456789") == std::string::npos;
    };
    std::string page = "0";
    std::string size = "0";
    if (!number("page", page) || !number("page_size", size))
      return false;
    if (q.count("pattern"))
      pattern = q.at("pattern");
    else if (q.count("filter") && !q.at("filter").empty())
      pattern = "*" + literal_pattern(q.at("filter")) + "*";
    auto sort = q.count("sort") ? q.at("sort") : std::string{};
    bool reverse = q.count("sort_reverse") && is_true(q.at("sort_reverse"));
    out = "{\"page\": " + page + ", \"page_size\": " + size + ", \"pattern\": "
          + json_string(pattern) + ", \"sort\": " + json_string(sort)
          + ", \"sort_reverse\": " + (reverse ? "true" : "false") + "}";
    return true;
  };
  auto bad_paging = [] {
    return api_error(400, "page and page_size must be whole numbers");
  };
  if (segments.empty())
    return api_error(404, "no API route '/api/'; see docs/inspector.md");
  auto& first = segments[0];
  if (segments.size() == 1 && first == "overview")
    return req("overview", "", vhost, "", "");
  if (segments.size() == 1 && first == "health")
    return req("health", "", vhost, "", "");
  auto col = collections().find(first);
  if (col == collections().end())
    return api_error(404, "no API route '/api/" + first
                            + "'; see docs/inspector.md");
  auto& kind = col->second;
  std::string list;
  if (segments.size() == 1) {
    if (!list_options("", list))
      return bad_paging();
    return req("list", kind, vhost, "", list);
  }
  // Items: /api/queues/VHOST/NAME[/bindings|/consumers|/peek],
  // /api/exchanges/VHOST/NAME, /api/connections/ID, /api/vhosts/NAME,
  // /api/users/NAME, /api/nodes/NAME.
  if (kind == "queue" || kind == "exchange") {
    if (segments.size() < 3 || segments.size() > 4)
      return api_error(404, "expected /api/" + first + "/VHOST/NAME");
    auto& vh = segments[1];
    auto name = segments[2];
    if (kind == "exchange" && name == "amq.default")
      name.clear();
    if (segments.size() == 3)
      return req("get", kind, vh, name, "");
    if (kind == "queue" && segments[3] == "peek") {
      // /api/queues/VHOST/NAME/peek?count=N: the next ready messages.
      auto count = q.count("count") ? q.at("count") : std::string{"10"};
      if (count.empty() || count.size() > 3
          || count.find_first_not_of("0123456789") != std::string::npos)
        return api_error(400, "count must be a whole number (at most 100)");
      auto c = req("peek", kind, vh, name, "");
      c.request_json.pop_back(); // the closing brace
      c.request_json += ", \"count\": " + count + "}";
      return c;
    }
    if (kind == "queue"
        && (segments[3] == "bindings" || segments[3] == "consumers")) {
      if (!list_options(literal_pattern(name), list))
        return bad_paging();
      return req("list", segments[3] == "bindings" ? "binding" : "consumer", vh,
                 "", list);
    }
    return api_error(404, "no API route under /api/" + first + "/" + vh + "/"
                            + name);
  }
  if (segments.size() != 2)
    return api_error(404, "expected /api/" + first + "/NAME");
  if (kind == "connection" || kind == "vhost" || kind == "user"
      || kind == "broker")
    return req("get", kind, vhost, segments[1], "");
  return api_error(404, "/api/" + first + " has no items; use a pattern");
}

// -- sessions ---------------------------------------------------------------

/// A session of either kind, closed by inspector_server::stop().
struct closable {
  virtual ~closable() = default;
  /// Closes the socket. Only called while no I/O thread runs.
  virtual void close_now() = 0;
};

struct session_info {
  std::string user;
  std::chrono::steady_clock::time_point expires;
};

} // namespace

// -- the server
// ----------------------------------------------------------------

struct inspector_server::impl : std::enable_shared_from_this<impl> {
  impl(std::shared_ptr<management::service> d, const config::user_db& u,
       options o)
    : door(std::move(d)), users(u), opts(std::move(o)), acceptor(ioc) {}

  std::shared_ptr<management::service> door;
  const config::user_db& users;
  options opts;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};

  std::mutex sessions_mtx;
  std::unordered_map<std::string, session_info> sessions; // By token.

  /// Open sockets, closed by stop().
  std::mutex sockets_mtx;
  std::vector<std::weak_ptr<closable>> open;

  void track(std::weak_ptr<closable> s) {
    std::lock_guard<std::mutex> guard{sockets_mtx};
    open.erase(std::remove_if(open.begin(), open.end(),
                              [](auto& w) {
                                return w.expired();
                              }),
               open.end());
    open.push_back(std::move(s));
  }

  void accept();

  /// Returns the user of a valid session token, or nullopt.
  std::optional<std::string> session_user(const std::string& token) {
    if (token.empty())
      return std::nullopt;
    std::lock_guard<std::mutex> guard{sessions_mtx};
    auto i = sessions.find(token);
    if (i == sessions.end())
      return std::nullopt;
    if (i->second.expires < std::chrono::steady_clock::now()) {
      sessions.erase(i);
      return std::nullopt;
    }
    return i->second.user;
  }

  std::string new_session(const std::string& user) {
    auto token = random_token();
    if (token.empty())
      return token;
    std::lock_guard<std::mutex> guard{sessions_mtx};
    auto now = std::chrono::steady_clock::now();
    for (auto i = sessions.begin(); i != sessions.end();)
      i = i->second.expires < now ? sessions.erase(i) : std::next(i);
    sessions[token] = session_info{user, now + opts.session_lifetime};
    return token;
  }

  void end_session(const std::string& token) {
    std::lock_guard<std::mutex> guard{sessions_mtx};
    sessions.erase(token);
  }

  /// Checks a user name and password like the AMQP door (the built-in guest
  /// only from loopback). Returns the account or nullptr.
  const config::user* check_login(const std::string& name,
                                  const std::string& password,
                                  const tcp::endpoint& peer) {
    auto* u = users.authenticate(name, password);
    if (u == nullptr)
      return nullptr;
    if (users.loopback_only(name) && !peer.address().is_loopback())
      return nullptr;
    return u;
  }
};

namespace {

using request_t = http::request<http::string_body>;
using response_t = http::response<http::string_body>;

/// One WebSocket client: sends an update about once a second with the
/// results of the API paths it watches and the new broker events.
class ws_session : public closable,
                   public std::enable_shared_from_this<ws_session> {
public:
  using impl_ptr = std::shared_ptr<inspector_server::impl>;

  ws_session(impl_ptr srv, tcp::socket socket, std::string user)
    : srv_(std::move(srv)), ws_(std::move(socket)), user_(std::move(user)),
      timer_(ws_.get_executor()) {
    auto last = srv_->door->events().last_seq();
    last_event_ = last > 50 ? last - 50 : 0;
  }

  void run(request_t req) {
    ws_.set_option(
      websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.auto_fragment(false); // One update, one frame.
    ws_.async_accept(req, beast::bind_front_handler(&ws_session::on_accept,
                                                    shared_from_this()));
  }

  void close_now() override {
    closed_ = true;
    timer_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec)
      return;
    read();
    tick();
  }

  void read() {
    ws_.async_read(
      in_, beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
  }

  /// A client message is the list of API paths to watch, one per line
  /// ("/api/overview", "/api/queues?page=2&sort=messages", ...).
  void on_read(beast::error_code ec, size_t) {
    if (ec) {
      closed_ = true;
      timer_.cancel();
      return;
    }
    auto text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    watches_.clear();
    std::istringstream lines{text};
    std::string line;
    while (std::getline(lines, line) && watches_.size() < max_watches)
      if (line.compare(0, 5, "/api/") == 0)
        watches_.push_back(line);
    if (!busy_)
      collect(); // Answer a new subscription at once.
    read();
  }

  void tick() {
    if (closed_)
      return;
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_)
        return;
      // Skipped while the previous update is being computed or sent: a
      // slow browser gets fewer updates, never a longer queue.
      if (!self->busy_)
        self->collect();
      self->tick();
    });
  }

  void collect();

  void send(std::string text) {
    ws_.text(true);
    out_ = std::make_shared<std::string>(std::move(text));
    ws_.async_write(net::buffer(*out_),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->busy_ = false;
                      if (ec) {
                        self->closed_ = true;
                        self->timer_.cancel();
                      }
                    });
  }

  impl_ptr srv_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string user_;
  net::steady_timer timer_;
  beast::flat_buffer in_;
  std::shared_ptr<std::string> out_;
  std::vector<std::string> watches_;
  uint64_t last_event_ = 0;
  bool busy_ = false;
  bool closed_ = false;
};

/// Runs a read-only API path for `user`; `done(status, body)` runs on
/// `exec` (a strand), once, after the answer or the timeout.
void run_api_get(const std::shared_ptr<inspector_server::impl>& srv,
                 const std::string& target, const std::string& user,
                 net::any_io_executor exec,
                 std::function<void(unsigned, std::string)> done);

void ws_session::collect() {
  busy_ = true;
  struct round {
    std::vector<std::pair<unsigned, std::string>> results;
    size_t left = 0;
  };
  auto r = std::make_shared<round>();
  r->results.resize(watches_.size());
  r->left = watches_.size() + 1;
  auto self = shared_from_this();
  auto step = [self, r] {
    if (--r->left > 0)
      return;
    if (self->closed_)
      return;
    std::string msg = "{\"type\": \"update\", \"time_ms\": "
                      + std::to_string(now_ms()) + ", \"results\": {";
    for (size_t i = 0; i < self->watches_.size() && i < r->results.size();
         ++i) {
      if (i > 0)
        msg += ", ";
      msg += json_string(self->watches_[i])
             + ": {\"status\": " + std::to_string(r->results[i].first)
             + ", \"body\": " + r->results[i].second + "}";
    }
    msg += "}, \"events\": [";
    auto events = self->srv_->door->events().since(self->last_event_,
                                                   max_events_per_tick);
    for (size_t i = 0; i < events.size(); ++i) {
      if (i > 0)
        msg += ", ";
      msg += events[i].json;
      self->last_event_ = events[i].seq;
    }
    msg += "]}";
    self->send(std::move(msg));
  };
  for (size_t i = 0; i < watches_.size(); ++i)
    run_api_get(srv_, watches_[i], user_, ws_.get_executor(),
                [r, i, step](unsigned status, std::string body) {
                  r->results[i] = {status, std::move(body)};
                  step();
                });
  step();
}

/// One HTTP connection (keep-alive; one request at a time).
class http_session : public closable,
                     public std::enable_shared_from_this<http_session> {
public:
  using impl_ptr = std::shared_ptr<inspector_server::impl>;

  http_session(impl_ptr srv, tcp::socket socket)
    : srv_(std::move(srv)), stream_(std::move(socket)) {}

  void run() {
    net::dispatch(
      stream_.get_executor(),
      beast::bind_front_handler(&http_session::read, shared_from_this()));
  }

  void close_now() override {
    beast::error_code ec;
    stream_.socket().close(ec);
  }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    stream_.expires_after(std::chrono::seconds(60));
    http::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&http_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (ec)
      return;
    req_ = parser_->release();
    stream_.expires_never();
    handle();
  }

  void handle();
  void handle_api(const std::string& path, const std::string& query,
                  const std::string& user);
  void serve_file(const std::string& path);
  void login();
  void logout();
  void metrics(const std::string& query);
  void healthz();

  /// Returns the authenticated user (empty with --auth no), or nullopt.
  std::optional<std::string> authenticate();

  response_t make(http::status s, std::string body,
                  const char* type = "application/json") {
    response_t res{s, req_.version()};
    res.set(http::field::server, "flotillad");
    res.set(http::field::content_type, type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(req_.keep_alive());
    res.body() = std::move(body);
    return res;
  }

  void send(response_t res) {
    res.prepare_payload();
    auto sp = std::make_shared<response_t>(std::move(res));
    http::async_write(
      stream_, *sp,
      [self = shared_from_this(), sp](beast::error_code ec, size_t) {
        if (ec)
          return;
        if (sp->need_eof()) {
          beast::error_code ignored;
          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        self->read();
      });
  }

  void send_error(http::status s, const std::string& text) {
    auto res = make(s, error_json(static_cast<unsigned>(s), text));
    send(std::move(res));
  }

  void unauthorized() {
    auto res = make(http::status::unauthorized,
                    error_json(401, "log in, or send HTTP basic credentials "
                                    "of a user of the users file"));
    // Scripts get a basic challenge; the page (which sends X-Flotilla-UI)
    // shows its own login form instead of the browser's dialog.
    if (req_.find("X-Flotilla-UI") == req_.end())
      res.set(http::field::www_authenticate,
              "Basic realm=\"flotilla\", charset=\"UTF-8\"");
    send(std::move(res));
  }

  impl_ptr srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  request_t req_;
};

/// Sends the management request of an API call and answers on `exec`.
void run_call(const std::shared_ptr<inspector_server::impl>& srv, api_call call,
              const std::string& user, net::any_io_executor exec,
              std::function<void(unsigned, std::string)> done) {
  if (call.status != 0) {
    done(call.status, error_json(call.status, call.error));
    return;
  }
  struct once {
    std::atomic<bool> fired{false};
    std::function<void(unsigned, std::string)> done;
  };
  auto o = std::make_shared<once>();
  o->done = std::move(done);
  auto timer = std::make_shared<net::steady_timer>(exec, srv->opts.timeout);
  timer->async_wait([o, timer](beast::error_code ec) {
    if (ec || o->fired.exchange(true))
      return;
    o->done(503, error_json(503, "the broker did not answer in time"));
  });
  srv->door->execute(
    std::move(call.request_json), user,
    [o, timer, exec](uint32_t status, std::string body) {
      // On a CAF thread: hand the answer to the strand.
      net::post(exec, [o, timer, status, body = std::move(body)]() mutable {
        if (o->fired.exchange(true))
          return;
        timer->cancel();
        o->done(status, std::move(body));
      });
    });
}

void split_target(const std::string& target, std::string& path,
                  std::string& query) {
  auto q = target.find('?');
  path = target.substr(0, q);
  query = q == std::string::npos ? std::string{} : target.substr(q + 1);
}

/// Splits "/api/a/b%2Fc" after "/api/" into decoded segments. Returns
/// false on a malformed escape.
bool api_segments(const std::string& path, std::vector<std::string>& out) {
  auto rest = path.substr(5); // After "/api/".
  size_t pos = 0;
  while (pos <= rest.size()) {
    auto end = rest.find('/', pos);
    if (end == std::string::npos)
      end = rest.size();
    std::string seg;
    if (!url_decode(rest.substr(pos, end - pos), seg))
      return false;
    out.push_back(std::move(seg));
    pos = end + 1;
  }
  // "/api/queues/" and "/api/queues" are the same; keep empty segments in
  // the middle (the default exchange's name is empty).
  while (out.size() > 1 && out.back().empty())
    out.pop_back();
  if (out.size() == 1 && out[0].empty())
    out.clear();
  return true;
}

void run_api_get(const std::shared_ptr<inspector_server::impl>& srv,
                 const std::string& target, const std::string& user,
                 net::any_io_executor exec,
                 std::function<void(unsigned, std::string)> done) {
  std::string path;
  std::string query;
  split_target(target, path, query);
  std::vector<std::string> segments;
  query_map q;
  if (path.compare(0, 5, "/api/") != 0 || !api_segments(path, segments)
      || !parse_query(query, q)) {
    done(400, error_json(400, "malformed path or query"));
    return;
  }
  run_call(srv, route_get(segments, q), user, std::move(exec), std::move(done));
}

std::optional<std::string> http_session::authenticate() {
  if (!srv_->opts.auth)
    return std::string{};
  auto cookie = req_.find(http::field::cookie);
  if (cookie != req_.end())
    if (auto user = srv_->session_user(
          cookie_value(std::string{cookie->value()}, session_cookie)))
      return user;
  auto auth = req_.find(http::field::authorization);
  if (auth == req_.end())
    return std::nullopt;
  std::string value{auth->value()};
  if (value.compare(0, 6, "Basic ") != 0)
    return std::nullopt;
  std::string decoded;
  if (!config::base64_decode(value.substr(6), decoded))
    return std::nullopt;
  auto colon = decoded.find(':');
  if (colon == std::string::npos)
    return std::nullopt;
  auto name = decoded.substr(0, colon);
  beast::error_code ec;
  auto peer = stream_.socket().remote_endpoint(ec);
  if (ec || srv_->check_login(name, decoded.substr(colon + 1), peer) == nullptr)
    return std::nullopt;
  return name;
}

void http_session::handle() {
  std::string path;
  std::string query;
  split_target(std::string{req_.target()}, path, query);
  auto method = req_.method();
  if (path == "/healthz")
    return healthz();
  if (path == "/login" && method == http::verb::post)
    return login();
  if (path == "/logout" && method == http::verb::post)
    return logout();
  bool is_api = path.compare(0, 5, "/api/") == 0 || path == "/api";
  if (!is_api && path != "/metrics" && path != "/ws") {
    if (method != http::verb::get && method != http::verb::head)
      return send_error(http::status::method_not_allowed,
                        "the page is read with GET");
    return serve_file(path);
  }
  auto user = authenticate();
  if (!user)
    return unauthorized();
  if (path == "/metrics") {
    if (method != http::verb::get)
      return send_error(http::status::method_not_allowed, "use GET");
    return metrics(query);
  }
  if (path == "/ws") {
    if (!websocket::is_upgrade(req_))
      return send_error(http::status::bad_request,
                        "/ws is a WebSocket endpoint");
    auto ws
      = std::make_shared<ws_session>(srv_, stream_.release_socket(), *user);
    srv_->track(ws);
    ws->run(std::move(req_));
    return;
  }
  handle_api(path, query, *user);
}

void http_session::handle_api(const std::string& path, const std::string& query,
                              const std::string& user) {
  auto method = req_.method();
  auto answer = [self = shared_from_this()](unsigned status, std::string body) {
    auto res = self->make(static_cast<http::status>(status), std::move(body));
    self->send(std::move(res));
  };
  if (path == "/api/whoami") {
    bool admin = !srv_->opts.auth;
    if (auto* u = srv_->users.find(user))
      admin = u->is_administrator();
    return answer(200, "{\"user\": " + json_string(user)
                         + ", \"administrator\": " + (admin ? "true" : "false")
                         + ", \"auth\": " + (srv_->opts.auth ? "true" : "false")
                         + "}");
  }
  if (path == "/api/request") {
    // Any management Request (docs/management.md), e.g. create or delete;
    // the management code checks the administrator tag for changes.
    if (method != http::verb::post)
      return send_error(http::status::method_not_allowed,
                        "POST a management Request as JSON");
    auto ct = req_.find(http::field::content_type);
    if (ct == req_.end()
        || std::string{ct->value()}.compare(0, 16, "application/json") != 0)
      return send_error(http::status::unsupported_media_type,
                        "the body must be application/json");
    api_call call;
    call.request_json = req_.body();
    return run_call(srv_, std::move(call), user, stream_.get_executor(),
                    answer);
  }
  if (method != http::verb::get)
    return send_error(http::status::method_not_allowed,
                      "this route is read with GET; changes go to POST "
                      "/api/request");
  run_api_get(srv_, std::string{req_.target()}, user, stream_.get_executor(),
              answer);
}

void http_session::serve_file(const std::string& path) {
  auto& dir = srv_->opts.web_dir;
  std::string rel = path == "/" ? "index.html" : path.substr(1);
  std::string decoded;
  if (!url_decode(rel, decoded) || decoded.find("..") != std::string::npos
      || decoded.find('\0') != std::string::npos)
    return send_error(http::status::bad_request, "bad path");
  if (dir.empty() || !fs::is_regular_file(fs::path{dir} / "index.html")) {
    if (path != "/")
      return send_error(http::status::not_found, "no such file");
    return send(make(http::status::service_unavailable,
                     "<!doctype html><title>Flotilla inspector</title>"
                     "<p>The inspector page was not built or not found ("
                       + (dir.empty() ? std::string{"no directory"} : dir)
                       + "). Run scripts/install-deps.sh and rebuild, or "
                         "start flotillad with --inspector-web-dir. The JSON "
                         "API (/api/) and /metrics work without it.</p>",
                     "text/html; charset=utf-8"));
  }
  auto file = fs::path{dir} / decoded;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    return send_error(http::status::not_found, "no such file: " + path);
  std::ifstream in{file, std::ios::binary};
  std::ostringstream body;
  body << in.rdbuf();
  auto res = make(http::status::ok, body.str(), content_type_of(file));
  // Vite names assets after their content: cache them; never index.html.
  if (decoded.compare(0, 7, "assets/") == 0)
    res.set(http::field::cache_control, "public, max-age=31536000, immutable");
  else
    res.set(http::field::cache_control, "no-cache");
  if (req_.method() == http::verb::head)
    res.body().clear();
  send(std::move(res));
}

void http_session::login() {
  std::string name;
  std::string password;
  auto ct = req_.find(http::field::content_type);
  std::string type = ct == req_.end() ? "" : std::string{ct->value()};
  if (type.compare(0, 33, "application/x-www-form-urlencoded") != 0)
    return send_error(http::status::unsupported_media_type,
                      "POST /login takes a form "
                      "(application/x-www-form-urlencoded) with user and "
                      "password");
  query_map form;
  if (!parse_query(req_.body(), form))
    return send_error(http::status::bad_request, "malformed form");
  name = form["user"];
  password = form["password"];
  beast::error_code ec;
  auto peer = stream_.socket().remote_endpoint(ec);
  const config::user* u = nullptr;
  if (!ec)
    u = srv_->check_login(name, password, peer);
  if (u == nullptr) {
    FLOTILLA_LOG(notice, "inspector: login refused for user '" << name << "'");
    return send(make(http::status::unauthorized,
                     error_json(401, "unknown user or wrong password")));
  }
  auto token = srv_->new_session(name);
  if (token.empty())
    return send_error(http::status::internal_server_error,
                      "no random numbers for a session token");
  auto res = make(http::status::ok,
                  "{\"user\": " + json_string(name) + ", \"administrator\": "
                    + (u->is_administrator() ? "true" : "false") + "}");
  res.set(http::field::set_cookie,
          std::string{session_cookie} + "=" + token
            + "; Path=/; HttpOnly; SameSite=Strict; Max-Age="
            + std::to_string(srv_->opts.session_lifetime.count()));
  send(std::move(res));
}

void http_session::logout() {
  auto cookie = req_.find(http::field::cookie);
  if (cookie != req_.end())
    srv_->end_session(
      cookie_value(std::string{cookie->value()}, session_cookie));
  auto res = make(http::status::ok, "{\"status\": 200}");
  res.set(http::field::set_cookie,
          std::string{session_cookie}
            + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
  send(std::move(res));
}

void http_session::metrics(const std::string& query) {
  query_map q;
  if (!parse_query(query, q))
    return send_error(http::status::bad_request, "malformed query");
  bool per_object = srv_->opts.metrics_per_object;
  if (q.count("per_object"))
    per_object = is_true(q["per_object"]);
  struct once {
    std::atomic<bool> fired{false};
  };
  auto o = std::make_shared<once>();
  auto self = shared_from_this();
  auto exec = stream_.get_executor();
  auto timer = std::make_shared<net::steady_timer>(exec, srv_->opts.timeout);
  timer->async_wait([o, self, timer](beast::error_code ec) {
    if (ec || o->fired.exchange(true))
      return;
    self->send_error(http::status::service_unavailable,
                     "the broker did not answer in time");
  });
  srv_->door->metrics(per_object, [o, self, timer, exec](std::string text) {
    net::post(exec, [o, self, timer, text = std::move(text)]() mutable {
      if (o->fired.exchange(true))
        return;
      timer->cancel();
      self->send(self->make(http::status::ok, std::move(text),
                            "text/plain; version=0.0.4; charset=utf-8"));
    });
  });
}

void http_session::healthz() {
  struct once {
    std::atomic<bool> fired{false};
  };
  auto o = std::make_shared<once>();
  auto self = shared_from_this();
  auto exec = stream_.get_executor();
  auto timer = std::make_shared<net::steady_timer>(exec, srv_->opts.timeout);
  timer->async_wait([o, self, timer](beast::error_code ec) {
    if (ec || o->fired.exchange(true))
      return;
    self->send_error(http::status::service_unavailable,
                     "the broker did not answer in time");
  });
  srv_->door->health([o, self, timer, exec](uint32_t status, std::string body) {
    net::post(exec, [o, self, timer, status, body = std::move(body)]() mutable {
      if (o->fired.exchange(true))
        return;
      timer->cancel();
      self->send(self->make(status == 200 ? http::status::ok
                                          : http::status::service_unavailable,
                            std::move(body)));
    });
  });
}

} // namespace

void inspector_server::impl::accept() {
  acceptor.async_accept(
    net::make_strand(ioc),
    [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (self->stopping)
        return;
      if (!ec) {
        auto s = std::make_shared<http_session>(self, std::move(socket));
        self->track(s);
        s->run();
      }
      self->accept();
    });
}

inspector_server::inspector_server(std::shared_ptr<management::service> door,
                                   const config::user_db& users, options opts)
  : impl_(std::make_shared<impl>(std::move(door), users, std::move(opts))) {
  auto& o = impl_->opts;
  beast::error_code ec;
  auto addr = net::ip::make_address(o.interface, ec);
  if (ec)
    throw std::runtime_error("inspector: bad interface address '"
                             + o.interface + "'");
  tcp::endpoint ep{addr, o.port};
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec)
    a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    a.bind(ep, ec);
  if (!ec)
    a.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("inspector: cannot listen on " + o.interface + ":"
                             + std::to_string(o.port) + ": " + ec.message());
}

inspector_server::~inspector_server() {
  stop();
}

uint16_t inspector_server::port() const {
  beast::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void inspector_server::start() {
  impl_->accept();
  for (unsigned i = 0; i < std::max(1u, impl_->opts.io_threads); ++i)
    impl_->threads.emplace_back([srv = impl_] {
      srv->ioc.run();
    });
}

void inspector_server::stop() {
  if (impl_->stopping.exchange(true))
    return;
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    if (t.joinable())
      t.join();
  impl_->threads.clear();
  // No I/O thread runs now: close the sockets from here. Handlers still
  // queued, and CAF answers that arrive later, keep the io_context (and
  // with it this impl) alive until the process exits; they never run, and
  // nothing is posted to a destroyed io_context.
  beast::error_code ec;
  impl_->acceptor.close(ec);
  std::lock_guard<std::mutex> guard{impl_->sockets_mtx};
  for (auto& w : impl_->open)
    if (auto p = w.lock())
      p->close_now();
  impl_->open.clear();
}

} // namespace flotilla
