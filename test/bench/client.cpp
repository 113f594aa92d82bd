#include "test/bench/client.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/field_table.hpp"

namespace flotilla::bench {

namespace pr = flotilla::protocol;

namespace {

constexpr size_t read_size = 256 * 1024;

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hex = std::string{s.substr(i + 1, 2)};
      out.push_back(static_cast<char>(std::stoi(hex, nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

} // namespace

std::string parse_url(std::string_view text, url& out) {
  constexpr std::string_view scheme = "amqp://";
  if (text.substr(0, scheme.size()) != scheme)
    return "URL must start with amqp://";
  auto rest = text.substr(scheme.size());
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  out.vhost = "/";
  if (slash != std::string_view::npos && slash + 1 < rest.size())
    out.vhost = percent_decode(rest.substr(slash + 1));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    auto cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = cred.find(':');
    out.user = percent_decode(cred.substr(0, colon));
    out.password = colon == std::string_view::npos
                     ? std::string{}
                     : percent_decode(cred.substr(colon + 1));
  }
  auto colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    auto port = std::string{authority.substr(colon + 1)};
    char* end = nullptr;
    auto p = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p == 0 || p > 65535)
      return "bad port in URL";
    out.port = static_cast<uint16_t>(p);
    authority = authority.substr(0, colon);
  }
  if (!authority.empty())
    out.host = std::string{authority};
  return {};
}

connection::~connection() {
  abort();
}

void connection::fail(const std::string& what) {
  auto msg = peer_ + ": " + what;
  abort();
  throw bench_error(msg);
}

void connection::abort() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

size_t connection::io(std::chrono::microseconds timeout) {
  if (fd_ < 0)
    throw bench_error(peer_ + ": connection is closed");
  // Never sleep longer than a second, so workers notice an abort.
  timeout = std::min(timeout, std::chrono::microseconds{1000000});
  pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
  timespec ts;
  ts.tv_sec = timeout.count() / 1000000;
  ts.tv_nsec = (timeout.count() % 1000000) * 1000;
  // Try the write first: the socket buffer usually has room, which saves a
  // poll() per batch on the hot path.
  bool wrote = false;
  if (!out_.empty()) {
    auto n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      wrote = true;
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
               && errno != EINTR) {
      fail(std::string{"send: "} + std::strerror(errno));
    }
    p.events = static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT));
  }
  if (in_.size() < read_size)
    in_.resize(read_size);
  // Read without polling first: under load there is nearly always data.
  auto r = ::recv(fd_, in_.data(), in_.size(), 0);
  if (r > 0)
    return static_cast<size_t>(r);
  if (r == 0)
    fail("broker closed the connection");
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    fail(std::string{"recv: "} + std::strerror(errno));
  // Having written something is progress: return so the caller can refill
  // out() instead of sleeping on a socket that has nothing to read.
  if (wrote || timeout.count() == 0)
    return 0;
  int rc = ::ppoll(&p, 1, &ts, nullptr);
  if (rc < 0) {
    if (errno == EINTR)
      return 0;
    fail(std::string{"poll: "} + std::strerror(errno));
  }
  if (rc == 0)
    return 0;
  if (p.revents & POLLOUT) {
    auto n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0)
      out_.erase(0, static_cast<size_t>(n));
    else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(std::string{"send: "} + std::strerror(errno));
  }
  if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
    r = ::recv(fd_, in_.data(), in_.size(), 0);
    if (r > 0)
      return static_cast<size_t>(r);
    if (r == 0)
      fail("broker closed the connection");
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(std::string{"recv: "} + std::strerror(errno));
  }
  return 0;
}

void connection::flush(std::chrono::milliseconds timeout) {
  // Writes only: frames that arrive meanwhile stay in the socket for the
  // next pump().
  auto deadline = clock_type::now() + timeout;
  while (!out_.empty()) {
    if (fd_ < 0)
      throw bench_error(peer_ + ": connection is closed");
    auto n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      fail(std::string{"send: "} + std::strerror(errno));
    auto now = clock_type::now();
    if (now >= deadline)
      fail("timeout writing to broker");
    pollfd p{fd_, POLLOUT, 0};
    auto ms
      = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    ::poll(&p, 1, static_cast<int>(ms.count()) + 1);
  }
}

bool connection::decode(const pr::frame_view& f, pr::method& out) {
  if (f.type != pr::frame_type::method)
    return false;
  if (auto e = pr::decode_method(f.payload, out); e != errc::none)
    fail(std::string{"undecodable method from broker: "} + to_string(e));
  if (auto* c = std::get_if<pr::connection_close>(&out)) {
    auto text = "broker closed the connection: " + std::to_string(c->reply_code)
                + " " + c->reply_text;
    pr::append_method_frame(out_, 0, pr::connection_close_ok{});
    ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    out_.clear();
    fail(text);
  }
  if (auto* c = std::get_if<pr::channel_close>(&out)) {
    auto text = "broker closed the channel: " + std::to_string(c->reply_code)
                + " " + c->reply_text;
    pr::append_method_frame(out_, f.channel, pr::channel_close_ok{});
    ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    out_.clear();
    fail(text);
  }
  return true;
}

void connection::open(const url& u, const std::string& name,
                      std::chrono::milliseconds timeout) {
  abort();
  peer_ = u.host + ":" + std::to_string(u.port);
  out_.clear();
  decoder_ = pr::frame_decoder{0};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  auto port = std::to_string(u.port);
  if (int rc = ::getaddrinfo(u.host.c_str(), port.c_str(), &hints, &res);
      rc != 0)
    throw bench_error(peer_ + ": " + ::gai_strerror(rc));
  std::string last_error = "no address";
  for (auto* ai = res; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) {
      last_error = std::string{"socket: "} + std::strerror(errno);
      continue;
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = std::string{"connect: "} + std::strerror(errno);
      ::close(fd);
      continue;
    }
    fd_ = fd;
  }
  ::freeaddrinfo(res);
  if (fd_ < 0)
    throw bench_error(peer_ + ": " + last_error);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);

  auto deadline = clock_type::now() + timeout;
  auto left = [&] {
    auto now = clock_type::now();
    if (now >= deadline)
      fail("timeout during handshake");
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline
                                                                 - now);
  };
  // Waits for the next method on channel 0 of type M.
  auto expect = [&](auto tag) {
    using M = decltype(tag);
    pr::method m;
    bool got = false;
    while (!got) {
      auto ms = left();
      pump(ms, [&](const pr::frame_view& f) {
        if (got || f.channel != 0 || !decode(f, m))
          return;
        if (!std::holds_alternative<M>(m))
          fail(std::string{"expected "} + M::name + ", got " + pr::name_of(m));
        got = true;
      });
    }
    return std::get<M>(std::move(m));
  };

  auto hdr = pr::protocol_header();
  out_.append(hdr.data(), hdr.size());
  flush(left());
  expect(pr::connection_start{});
  pr::connection_start_ok start_ok;
  pr::field_table caps{{"publisher_confirms", true},
                       {"basic.nack", true},
                       {"consumer_cancel_notify", true},
                       {"connection.blocked", true}};
  start_ok.client_properties = pr::field_table{
    {"product", "flotilla-bench"},
    {"connection_name", std::string_view{name}},
    {"capabilities", std::move(caps)},
  };
  start_ok.mechanism = "PLAIN";
  start_ok.response = std::string(1, '\0') + u.user + '\0' + u.password;
  pr::append_method_frame(out_, 0, start_ok);
  flush(left());
  auto tune = expect(pr::connection_tune{});
  frame_max_ = tune.frame_max == 0 ? 131072 : tune.frame_max;
  uint16_t channel_max = tune.channel_max == 0 ? 2047 : tune.channel_max;
  // Heartbeats off: workers do not service idle sockets, and runs are short.
  pr::append_method_frame(out_, 0,
                          pr::connection_tune_ok{channel_max, frame_max_, 0});
  pr::connection_open open;
  open.virtual_host = u.vhost;
  pr::append_method_frame(out_, 0, open);
  flush(left());
  expect(pr::connection_open_ok{});
  decoder_.set_frame_max(frame_max_);
  call<pr::channel_open_ok>(pr::channel_open{}, left());
}

void connection::close(std::chrono::milliseconds timeout) {
  if (fd_ < 0)
    return;
  try {
    pr::connection_close c;
    c.reply_code = 200;
    c.reply_text = "bye";
    out_.clear();
    pr::append_method_frame(out_, 0, c);
    auto deadline = clock_type::now() + timeout;
    bool done = false;
    while (!done && clock_type::now() < deadline) {
      pump(std::chrono::duration_cast<std::chrono::microseconds>(
             deadline - clock_type::now()),
           [&](const pr::frame_view& f) {
             if (f.type != pr::frame_type::method || f.channel != 0)
               return;
             pr::method m;
             if (pr::decode_method(f.payload, m) == errc::none
                 && std::holds_alternative<pr::connection_close_ok>(m))
               done = true;
           });
    }
  } catch (const bench_error&) {
    // The broker may close the socket right after close-ok; either way the
    // connection is gone.
  }
  abort();
}

} // namespace flotilla::bench
