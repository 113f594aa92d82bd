#include "management/client.hpp"

#include <deque>
#include <optional>
#include <variant>

#include <boost/asio.hpp>

#include "protocol/command_assembler.hpp"
#include "protocol/frame.hpp"
#include "protocol/management.pb.h"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"

namespace flotilla::management {

namespace pr = flotilla::protocol;
namespace asio = boost::asio;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hex = std::string{s.substr(i + 1, 2)};
      char* end = nullptr;
      auto v = std::strtol(hex.c_str(), &end, 16);
      if (hex.size() == 2 && *end == '\0') {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

} // namespace

std::string parse_broker_url(std::string_view text, broker_url& out) {
  constexpr std::string_view scheme = "amqp://";
  bool amqp = text.substr(0, scheme.size()) == scheme;
  auto rest = amqp ? text.substr(scheme.size()) : text;
  auto slash_path = amqp ? rest.find('/') : std::string_view::npos;
  auto authority = rest.substr(0, slash_path);
  if (slash_path != std::string_view::npos && slash_path + 1 < rest.size())
    out.vhost = percent_decode(rest.substr(slash_path + 1));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    auto cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    // amqp://user:pass@...; Qpid writes user/pass@...
    auto sep = cred.find(amqp ? ':' : '/');
    if (sep == std::string_view::npos && !amqp)
      sep = cred.find(':');
    out.user = percent_decode(cred.substr(0, sep));
    out.password = sep == std::string_view::npos
                     ? std::string{}
                     : percent_decode(cred.substr(sep + 1));
    if (out.user.empty())
      return "empty user name in broker address";
  }
  auto colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    auto port = std::string{authority.substr(colon + 1)};
    char* end = nullptr;
    auto p = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p == 0 || p > 65535)
      return "bad port in broker address '" + std::string{text} + "'";
    out.port = static_cast<uint16_t>(p);
    authority = authority.substr(0, colon);
  }
  if (!authority.empty())
    out.host = std::string{authority};
  return {};
}

struct client::impl {
  explicit impl(std::chrono::milliseconds t) : timeout(t) {}

  std::chrono::milliseconds timeout;
  asio::io_context io;
  tcp::socket sock{io};
  std::string peer;
  broker_url url;
  std::string out;
  std::string in = std::string(64 * 1024, '\0');
  pr::frame_decoder decoder{0};
  pr::command_assembler assembler;
  std::deque<pr::command> ready;
  std::string reply_queue;
  std::string node;         ///< Requests go to this node (empty: "broker").
  bool reply_bound = false; ///< reply_queue bound to qmf.default.direct.
  uint64_t next_correlation = 1;
  uint32_t frame_max = 131072;
  bool open = false;

  [[noreturn]] void fail(client_failure f, const std::string& what) {
    boost::system::error_code ignored;
    sock.close(ignored);
    open = false;
    throw client_error(f, peer + ": " + what);
  }

  /// Runs the io_context until `done` or `deadline`; on timeout cancels the
  /// operation, waits for its handler and fails (or, if `soft`, returns
  /// false with the connection still usable).
  bool run_until(bool& done, clock_type::time_point deadline, const char* what,
                 bool soft = false) {
    io.restart();
    while (!done) {
      if (io.run_one_until(deadline) == 0 && !done) {
        boost::system::error_code ignored;
        sock.cancel(ignored);
        io.restart();
        io.run();
        if (soft)
          return false;
        fail(client_failure::timeout, std::string{"timeout "} + what);
      }
    }
    return true;
  }

  void connect(clock_type::time_point deadline) {
    peer = url.host + ":" + std::to_string(url.port);
    tcp::resolver resolver{io};
    boost::system::error_code ec;
    auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec)
      fail(client_failure::connect, "cannot resolve: " + ec.message());
    bool done = false;
    asio::async_connect(sock, endpoints,
                        [&](const boost::system::error_code& e, auto&) {
                          ec = e;
                          done = true;
                        });
    run_until(done, deadline, "connecting");
    if (ec)
      fail(client_failure::connect, "cannot connect: " + ec.message());
    sock.set_option(tcp::no_delay(true), ec);
  }

  void flush(clock_type::time_point deadline) {
    if (out.empty())
      return;
    boost::system::error_code ec;
    bool done = false;
    asio::async_write(sock, asio::buffer(out),
                      [&](const boost::system::error_code& e, size_t) {
                        ec = e;
                        done = true;
                      });
    run_until(done, deadline, "writing");
    if (ec)
      fail(client_failure::connect, "write failed: " + ec.message());
    out.clear();
  }

  /// Reads once and turns what arrived into commands. With `soft`, returns
  /// false if nothing arrived before `deadline`.
  bool read(clock_type::time_point deadline, bool soft = false) {
    boost::system::error_code ec;
    size_t n = 0;
    bool done = false;
    sock.async_read_some(asio::buffer(in),
                         [&](const boost::system::error_code& e, size_t k) {
                           ec = e;
                           n = k;
                           done = true;
                         });
    if (!run_until(done, deadline, "waiting for the broker", soft))
      return false;
    if (ec)
      fail(client_failure::connect, ec == asio::error::eof
                                      ? std::string{"the broker closed the "
                                                    "connection"}
                                      : "read failed: " + ec.message());
    auto e = decoder.feed(in.data(), n, [&](const pr::frame_view& f) {
      if (f.type == pr::frame_type::heartbeat)
        return errc::none;
      return assembler.on_frame(f, [&](pr::command&& cmd) {
        ready.push_back(std::move(cmd));
      });
    });
    if (e != errc::none)
      fail(client_failure::protocol,
           std::string{"malformed frames from the broker: "} + to_string(e));
    return true;
  }

  /// Returns the next command, or nothing if none arrived before
  /// `deadline` (the connection stays usable).
  std::optional<pr::command> next_until(clock_type::time_point deadline) {
    while (ready.empty())
      if (!read(deadline, true))
        return std::nullopt;
    return next(deadline);
  }

  /// Returns the next command; answers and reports close methods.
  pr::command next(clock_type::time_point deadline) {
    while (ready.empty())
      read(deadline);
    auto cmd = std::move(ready.front());
    ready.pop_front();
    if (auto* c = std::get_if<pr::connection_close>(&cmd.m)) {
      pr::append_method_frame(out, 0, pr::connection_close_ok{});
      try {
        flush(deadline);
      } catch (const client_error&) {
        // Closing anyway.
      }
      auto f = c->reply_code == 403 || c->reply_code == 530
                 ? client_failure::refused
                 : client_failure::protocol;
      fail(f, "the broker closed the connection: "
                + std::to_string(c->reply_code) + " " + c->reply_text);
    }
    if (auto* c = std::get_if<pr::channel_close>(&cmd.m)) {
      pr::append_method_frame(out, cmd.channel, pr::channel_close_ok{});
      auto f = c->reply_code == 403 ? client_failure::refused
                                    : client_failure::protocol;
      fail(f, "the broker closed the channel: " + std::to_string(c->reply_code)
                + " " + c->reply_text);
    }
    return cmd;
  }

  template<class M>
  M expect(clock_type::time_point deadline) {
    for (;;) {
      auto cmd = next(deadline);
      if (auto* m = std::get_if<M>(&cmd.m))
        return std::move(*m);
      // Deliveries of an earlier, abandoned call: drop them.
      if (std::holds_alternative<pr::basic_deliver>(cmd.m)
          || std::holds_alternative<pr::basic_return>(cmd.m))
        continue;
      fail(client_failure::protocol,
           std::string{"expected "} + M::name + ", got " + pr::name_of(cmd.m));
    }
  }

  template<class Reply, class M>
  Reply rpc(uint16_t ch, const M& m, clock_type::time_point deadline) {
    pr::append_method_frame(out, ch, m);
    flush(deadline);
    return expect<Reply>(deadline);
  }

  void handshake(clock_type::time_point deadline) {
    auto hdr = pr::protocol_header();
    out.append(hdr.data(), hdr.size());
    flush(deadline);
    expect<pr::connection_start>(deadline);
    pr::connection_start_ok start_ok;
    start_ok.client_properties = pr::field_table{
      {"product", "flotilla"},
      {"connection_name", "flotilla CLI"},
      {"capabilities", pr::field_table{{"authentication_failure_close", true}}},
    };
    start_ok.mechanism = "PLAIN";
    start_ok.response = std::string(1, '\0') + url.user + '\0' + url.password;
    auto tune = rpc<pr::connection_tune>(0, start_ok, deadline);
    frame_max = tune.frame_max == 0 ? 131072 : tune.frame_max;
    uint16_t channel_max = tune.channel_max == 0 ? 2047 : tune.channel_max;
    pr::append_method_frame(out, 0,
                            pr::connection_tune_ok{channel_max, frame_max, 0});
    pr::connection_open open_m;
    open_m.virtual_host = url.vhost;
    rpc<pr::connection_open_ok>(0, open_m, deadline);
    decoder.set_frame_max(frame_max);
    rpc<pr::channel_open_ok>(1, pr::channel_open{}, deadline);
  }

  /// Declares a server-named exclusive queue and consumes it without acks.
  std::string private_queue(clock_type::time_point deadline) {
    pr::queue_declare qd;
    qd.exclusive = true;
    qd.auto_delete = true;
    auto ok = rpc<pr::queue_declare_ok>(1, qd, deadline);
    pr::basic_consume bc;
    bc.queue = ok.queue;
    bc.no_ack = true;
    rpc<pr::basic_consume_ok>(1, bc, deadline);
    return ok.queue;
  }

  void publish(const std::string& exchange, const std::string& key,
               const pr::basic_properties& props, const std::string& body) {
    pr::basic_publish p;
    p.exchange = exchange;
    p.routing_key = key;
    p.mandatory = true;
    pr::append_method_frame(out, 1, p);
    pr::append_header_frame(out, 1, body.size(), props);
    pr::append_body_frames(out, 1, body, frame_max);
  }
};

client::client(std::chrono::milliseconds timeout)
  : impl_(std::make_unique<impl>(timeout)) {}

client::~client() {
  close();
}

void client::open(const broker_url& url) {
  auto& d = *impl_;
  d.url = url;
  auto deadline = clock_type::now() + d.timeout;
  d.connect(deadline);
  d.handshake(deadline);
  d.reply_queue = d.private_queue(deadline);
  d.open = true;
}

void client::set_node(const std::string& node) {
  impl_->node = node;
}

void client::call(const Request& req, Response& resp) {
  auto& d = *impl_;
  auto deadline = clock_type::now() + d.timeout;
  auto corr = std::to_string(d.next_correlation++);
  pr::basic_properties props;
  props.content_type = "application/x-protobuf";
  props.reply_to = d.reply_queue;
  props.correlation_id = corr;
  props.user_id = d.url.user;
  if (!d.node.empty()) {
    // Another broker answers: its reply crosses back over a (dynamic)
    // route on qmf.default.direct, bound with our reply queue's name.
    if (!d.reply_bound) {
      pr::queue_bind qb;
      qb.queue = d.reply_queue;
      qb.exchange = "qmf.default.direct";
      qb.routing_key = d.reply_queue;
      d.rpc<pr::queue_bind_ok>(1, qb, deadline);
      d.reply_bound = true;
    }
    props.reply_to = "qmf.default.direct/" + d.reply_queue;
  }
  std::string body;
  req.SerializeToString(&body);
  auto key = d.node.empty() ? std::string{"broker"} : d.node;
  std::string returned;
  for (;;) {
    d.publish("qmf.default.direct", key, props, body);
    d.flush(deadline);
    // Through another broker, the route may not know our reply binding
    // yet: ask again every second (the reads are idempotent; the first
    // answer wins, later ones are skipped by their correlation id).
    auto resend
      = d.node.empty()
          ? deadline
          : std::min(deadline, clock_type::now() + std::chrono::seconds(1));
    std::optional<pr::command> got;
    for (;;) {
      got = d.next_until(resend);
      if (!got)
        break;
      auto& cmd = *got;
      if (auto* r = std::get_if<pr::basic_return>(&cmd.m)) {
        if (d.node.empty())
          d.fail(client_failure::protocol,
                 "the management request was returned (" + r->reply_text
                   + "): no management agent is bound to qmf.default.direct");
        returned = r->reply_text;
        continue;
      }
      if (std::holds_alternative<pr::basic_deliver>(cmd.m) && cmd.header) {
        auto& p = cmd.header->properties;
        if (p.correlation_id && *p.correlation_id == corr)
          break; // A late reply to an earlier request is skipped.
      }
    }
    if (!got) {
      if (clock_type::now() < deadline)
        continue;
      if (!returned.empty())
        d.fail(client_failure::timeout,
               "no route to node '" + d.node
                 + "' on qmf.default.direct (the request was returned: "
                 + returned
                 + "); that broker needs a dynamic route on "
                   "qmf.default.direct from this one");
      d.fail(client_failure::timeout,
             "no answer from node '" + d.node + "' within the timeout");
    }
    auto& cmd = *got;
    auto& p = cmd.header->properties;
    bool parsed = false;
    if (p.content_type && *p.content_type == "application/x-protobuf")
      parsed = resp.ParseFromString(cmd.body);
    if (!parsed)
      d.fail(client_failure::protocol, "undecodable management response");
    return;
  }
}

void client::watch_events(
  const std::string& binding_key, std::chrono::milliseconds duration,
  const std::function<void()>& on_ready,
  const std::function<bool(const std::string&, const std::string&)>& on_event) {
  auto& d = *impl_;
  auto setup_deadline = clock_type::now() + d.timeout;
  pr::queue_declare qd;
  qd.exclusive = true;
  qd.auto_delete = true;
  auto ok = d.rpc<pr::queue_declare_ok>(1, qd, setup_deadline);
  pr::queue_bind qb;
  qb.queue = ok.queue;
  qb.exchange = "qmf.default.topic";
  qb.routing_key = binding_key;
  d.rpc<pr::queue_bind_ok>(1, qb, setup_deadline);
  pr::basic_consume bc;
  bc.queue = ok.queue;
  bc.no_ack = true;
  auto tag = d.rpc<pr::basic_consume_ok>(1, bc, setup_deadline).consumer_tag;
  on_ready();
  auto end = duration.count() > 0 ? clock_type::now() + duration
                                  : clock_type::time_point::max();
  for (;;) {
    pr::command cmd;
    try {
      cmd = d.next(end);
    } catch (const client_error& e) {
      if (e.failure == client_failure::timeout && clock_type::now() >= end)
        return; // The requested duration has passed.
      throw;
    }
    auto* m = std::get_if<pr::basic_deliver>(&cmd.m);
    if (m == nullptr || m->consumer_tag != tag)
      continue;
    if (!on_event(m->routing_key, cmd.body))
      return;
  }
}

void client::close() {
  auto& d = *impl_;
  if (!d.sock.is_open())
    return;
  try {
    if (d.open) {
      pr::connection_close c;
      c.reply_code = 200;
      c.reply_text = "bye";
      auto deadline = clock_type::now() + std::chrono::seconds(2);
      pr::append_method_frame(d.out, 0, c);
      d.flush(deadline);
      for (;;) {
        auto cmd = d.next(deadline);
        if (std::holds_alternative<pr::connection_close_ok>(cmd.m))
          break;
      }
    }
  } catch (const client_error&) {
    // Gone either way.
  }
  boost::system::error_code ignored;
  d.sock.close(ignored);
  d.open = false;
}

} // namespace flotilla::management
