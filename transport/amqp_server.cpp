#include "transport/amqp_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include <boost/asio.hpp>
#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/connection_actor.hpp"
#include "actors/log.hpp"
#include "actors/messages.hpp"
#include "protocol/command_assembler.hpp"
#include "protocol/frame.hpp"
#include "protocol/properties.hpp"

namespace flotilla {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

/// Read buffer sizes: a connection starts with a small one and moves to a
/// large one while it receives large messages (fewer read calls).
constexpr size_t small_read_buffer = 64 * 1024;
constexpr size_t large_read_buffer = 512 * 1024;

using read_buffer = std::unique_ptr<char[]>;

/// Read buffers not in use, per I/O thread and size. A connection holds a
/// buffer only while data keeps coming (a read filled it); an idle one
/// waits for readability without one, so 10,000 idle connections do not
/// pin 640 MiB.
thread_local std::vector<read_buffer> spare_small;
thread_local std::vector<read_buffer> spare_large;
constexpr size_t max_spare_small = 64;
constexpr size_t max_spare_large = 8;

read_buffer acquire_buffer(size_t size) {
  auto& spare = size == large_read_buffer ? spare_large : spare_small;
  if (spare.empty())
    return read_buffer{new char[size]};
  auto b = std::move(spare.back());
  spare.pop_back();
  return b;
}

void release_buffer(read_buffer b, size_t size) {
  if (!b)
    return;
  bool large = size == large_read_buffer;
  auto& spare = large ? spare_large : spare_small;
  if (spare.size() < (large ? max_spare_large : max_spare_small))
    spare.push_back(std::move(b));
}
/// Input batches handed to the actor and not yet processed; reading pauses
/// beyond this, so a fast publisher cannot flood the actor's mailbox.
constexpr int max_batches_in_flight = 4;

/// One client socket. Lives as long as a read, write or timer is pending or
/// the connection actor holds it as its sink.
class amqp_connection : public connection_sink,
                        public std::enable_shared_from_this<amqp_connection> {
public:
  amqp_connection(tcp::socket sock, broker& b, std::atomic<size_t>& open)
    : socket_(std::move(sock)),
      strand_(asio::make_strand(socket_.get_executor())), timer_(strand_),
      node_(b), open_(open), decoder_(protocol::frame_min_size),
      assembler_(b.limits().max_message_size) {
    ++open_;
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      info_.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
      info_.peer_is_loopback = ep.address().is_loopback();
    }
    socket_.set_option(tcp::no_delay{true}, ec);
    // read_some() after async_wait() must not block.
    socket_.non_blocking(true, ec);
    // Large bodies go from the read buffer straight into the message.
    decoder_.stream_bodies(true);
  }

  ~amqp_connection() override {
    --open_;
    release_buffer(std::move(buf_), buf_size_);
  }

  void start() {
    // Before tune, frames may be as large as the server's frame_max.
    decoder_.set_frame_max(node_.limits().frame_max);
    last_read_ = last_write_ = steady::now();
    // A client that never sends the protocol header is dropped.
    arm_timer(std::chrono::seconds(10));
    read();
  }

  // -- connection_sink (called from actor threads) ---------------------------

  void write(outbound frames) override {
    std::unique_lock<std::mutex> guard{wmtx_};
    if (wclosed_)
      return;
    if (writing_) {
      // Behind a write in progress: its completion writes this too.
      pending_.append(std::move(frames));
      return;
    }
    // Nothing in flight: write on this (the actor's) thread, saving the
    // hand-off to the I/O thread and its wake-up; only what the socket
    // does not take now goes through the strand.
    int err = 0;
    auto sent = send_now(frames, err);
    if (err != 0) {
      guard.unlock();
      asio::post(strand_, [self = shared_from_this()] {
        self->peer_gone();
      });
      return;
    }
    last_write_ = steady::now();
    if (sent == size_of(frames))
      return;
    pending_ = rest_after(frames, sent);
    writing_ = true; // Reserved for the posted start_write().
    guard.unlock();
    asio::post(strand_, [self = shared_from_this()] {
      std::lock_guard<std::mutex> g{self->wmtx_};
      self->start_write();
    });
  }

  void close_after_flush() override {
    asio::post(strand_, [self = shared_from_this()] {
      self->closing_ = true;
      self->actor_ = nullptr; // Break the actor <-> sink cycle.
      std::unique_lock<std::mutex> guard{self->wmtx_};
      if (!self->writing_) {
        guard.unlock();
        self->shutdown();
      }
    });
  }

  void tune(uint32_t frame_max, uint16_t heartbeat) override {
    asio::post(strand_, [self = shared_from_this(), frame_max, heartbeat] {
      self->decoder_.set_frame_max(frame_max);
      self->heartbeat_ = heartbeat;
      self->arm_heartbeat();
    });
  }

  void batch_done() override {
    asio::post(strand_, [self = shared_from_this()] {
      --self->in_flight_;
      if (self->paused_ && self->in_flight_ < max_batches_in_flight) {
        self->paused_ = false;
        self->read();
      }
    });
  }

private:
  void read() {
    if (closed_ || reading_)
      return;
    reading_ = true;
    if (buf_ && keep_buffer_) {
      // Busy: the last read filled the buffer, more is likely waiting.
      if (buf_size_ != wanted_buffer_size()) {
        release_buffer(std::move(buf_), buf_size_);
        buf_size_ = wanted_buffer_size();
        buf_ = acquire_buffer(buf_size_);
      }
      socket_.async_read_some(
        asio::buffer(buf_.get(), buf_size_),
        asio::bind_executor(strand_, [self = shared_from_this()](
                                       boost::system::error_code ec, size_t n) {
          self->reading_ = false;
          self->on_read(ec, n);
        }));
      return;
    }
    // Idle: wait for data without holding a buffer, then take one.
    release_buffer(std::move(buf_), buf_size_);
    socket_.async_wait(
      tcp::socket::wait_read,
      asio::bind_executor(
        strand_, [self = shared_from_this()](boost::system::error_code ec) {
          self->reading_ = false;
          if (ec) {
            self->peer_gone();
            return;
          }
          self->buf_size_ = self->wanted_buffer_size();
          self->buf_ = acquire_buffer(self->buf_size_);
          auto n = self->socket_.read_some(
            asio::buffer(self->buf_.get(), self->buf_size_), ec);
          if (ec == asio::error::would_block || ec == asio::error::try_again) {
            self->read(); // Spurious readiness.
            return;
          }
          self->on_read(ec, n);
        }));
  }

  void on_read(boost::system::error_code ec, size_t n) {
    if (ec) {
      peer_gone();
      return;
    }
    last_read_ = steady::now();
    keep_buffer_ = n == buf_size_;
    if (n < small_read_buffer)
      large_ = false;
    const char* data = buf_.get();
    if (!actor_ && !header_done_) {
      // The 8-byte protocol header, possibly split across reads.
      auto take = std::min(n, size_t{8} - header_.size());
      header_.append(data, take);
      data += take;
      n -= take;
      switch (protocol::check_protocol_header(header_)) {
        case protocol::header_check::need_more:
          read();
          return;
        case protocol::header_check::mismatch: {
          FLOTILLA_LOG(warning,
                       "connection " << info_.peer << ": bad protocol header");
          closing_ = true;
          queue_write(outbound{std::string{protocol::protocol_header()}, {}});
          return;
        }
        case protocol::header_check::ok:
          header_done_ = true;
          timer_.cancel();
          actor_ = spawn_connection(node_, shared_from_this(), info_);
          break;
      }
    }
    if (!actor_) {
      read(); // Closing: drain until the peer goes away.
      return;
    }
    if (!batch_)
      new_batch(); // Else send_batch() left an empty one.
    auto err = decoder_.feed(data, n, [this](const protocol::frame_view& f) {
      return on_frame(f);
    });
    // Full reads that end inside a large body frame: read large buffers
    // until a read is small again (fewer reads for large messages; small
    // messages keep small batches).
    if (keep_buffer_ && decoder_.streaming())
      large_ = true;
    if (err != errc::none && batch_->error == errc::none) {
      batch_->error = err;
      batch_->error_text
        = std::string{to_string(err)} + " - " + describe_error(err);
    }
    bool fatal = batch_->error != errc::none;
    send_batch();
    if (fatal) {
      // The stream cannot be trusted any more; the actor writes
      // connection.close and then closes the socket.
      return;
    }
    if (in_flight_ >= max_batches_in_flight)
      paused_ = true;
    else
      read();
  }

  /// Hands the current batch to the actor (if it holds anything).
  void send_batch() {
    last_batch_size_ = std::min<size_t>(batch_->commands.size(), 4096);
    if (!batch_->commands.empty() || batch_->error != errc::none) {
      ++in_flight_;
      caf::anon_send(actor_, input_atom::value, std::move(batch_));
    }
    new_batch();
  }

  void new_batch() {
    batch_ = std::make_shared<input_batch>();
    // Commands are large (a variant of every method): growing the vector
    // by doubling moved each one several times per read (3% of the CPU of
    // bench scenario 1). Reserve what the previous batch held instead.
    batch_->commands.reserve(last_batch_size_);
  }

  errc on_frame(const protocol::frame_view& f) {
    auto& batch = *batch_;
    if (f.type == protocol::frame_type::heartbeat) {
      if (f.channel != 0 || !f.payload.empty()) {
        batch.error = errc::frame_error;
        batch.error_text
          = "FRAME_ERROR - heartbeat on channel " + std::to_string(f.channel);
        return errc::frame_error;
      }
      return errc::none;
    }
    if (!discarding_.empty() && is_discarding(f))
      return errc::none;
    auto err = assembler_.on_frame(f, [&](protocol::command&& cmd) {
      batch.commands.push_back(std::move(cmd));
    });
    if (err == errc::none)
      return errc::none;
    auto ch = assembler_.last_error_channel();
    batch.error_channel = ch;
    batch.error = err;
    if (!is_connection_error(err) && ch != 0) {
      // A channel-level content error (message too large): the channel
      // closes, the connection stays. The batch ends here so the actor sees
      // the error before anything that follows on that channel, and the
      // rest of the message (and all content on the channel until its
      // close-ok) is dropped.
      batch.error_text = std::string{to_string(err)}
                         + " - message size exceeds the configured maximum ("
                         + std::to_string(assembler_.max_body_size())
                         + " bytes)";
      discarding_.push_back(ch);
      send_batch();
      return errc::none;
    }
    batch.error_text
      = std::string{to_string(err)} + " - " + describe_error(err);
    return err;
  }

  static const char* describe_error(errc err) {
    switch (err) {
      case errc::unexpected_frame:
        return "unexpected frame (content without a method, or a method "
               "inside content)";
      case errc::frame_error:
        return "malformed frame";
      case errc::syntax_error:
        return "malformed method arguments";
      case errc::command_invalid:
        return "unknown or invalid method";
      case errc::channel_error:
        return "content-bearing method on channel 0";
      default:
        return "protocol error";
    }
  }

  bool is_discarding(const protocol::frame_view& f) {
    auto i = std::find(discarding_.begin(), discarding_.end(), f.channel);
    if (i == discarding_.end())
      return false;
    if (f.type != protocol::frame_type::method)
      return true;
    // channel.close-ok (20, 41) ends the discard phase; it and every other
    // method still go to the actor, which ignores them while closing.
    if (f.payload.size() >= 4 && f.payload[0] == 0 && f.payload[1] == 20
        && f.payload[2] == 0 && f.payload[3] == 41)
      discarding_.erase(i);
    return false;
  }

  /// Total bytes of `o`.
  static size_t size_of(const outbound& o) {
    size_t n = o.bytes.size();
    for (const auto& s : o.slices)
      n += s.size;
    return n;
  }

  /// Returns what remains of `o` after its first `n` bytes.
  static outbound rest_after(const outbound& o, size_t n) {
    outbound r;
    auto take_bytes = [&](size_t from, size_t to) {
      auto len = to - from;
      if (n >= len) {
        n -= len;
        return;
      }
      r.bytes.append(o.bytes, from + n, len - n);
      n = 0;
    };
    size_t pos = 0;
    for (const auto& s : o.slices) {
      take_bytes(pos, s.at);
      pos = s.at;
      if (n >= s.size) {
        n -= s.size;
        continue;
      }
      r.slices.push_back(
        outbound::slice{r.bytes.size(), s.data + n, s.size - n, s.owner});
      n = 0;
    }
    take_bytes(pos, o.bytes.size());
    return r;
  }

  /// Writes as much of `o` as the socket takes without blocking (wmtx_
  /// held, so the strand cannot close the descriptor meanwhile). Returns
  /// the bytes written; sets `err` on a failure other than a full buffer.
  size_t send_now(const outbound& o, int& err) {
    constexpr size_t max_iov = 64;
    iovec iov[max_iov];
    size_t count = 0;
    auto add = [&](const char* p, size_t len) {
      if (len > 0 && count < max_iov)
        iov[count++] = iovec{const_cast<char*>(p), len};
    };
    size_t pos = 0;
    for (const auto& s : o.slices) {
      add(o.bytes.data() + pos, s.at - pos);
      add(s.data, s.size);
      pos = s.at;
    }
    add(o.bytes.data() + pos, o.bytes.size() - pos);
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    auto n
      = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
      return static_cast<size_t>(n);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      err = errno;
    return 0;
  }

  /// Strand side of a write (heartbeats, the protocol header reply).
  void queue_write(outbound frames) {
    std::lock_guard<std::mutex> guard{wmtx_};
    if (wclosed_)
      return;
    if (pending_.empty())
      pending_ = std::move(frames);
    else
      pending_.append(std::move(frames));
    if (!writing_)
      start_write();
  }

  /// Starts an async write of pending_ (wmtx_ held, on the strand).
  void start_write() {
    if (pending_.empty()) {
      writing_ = false;
      if (closing_)
        asio::post(strand_, [self = shared_from_this()] {
          self->shutdown();
        });
      return;
    }
    writing_ = true;
    std::swap(inflight_write_, pending_);
    pending_.bytes.clear();
    pending_.slices.clear();
    // One gathered write: the encoded bytes, with each shared body slice
    // in its place.
    iov_.clear();
    const auto& w = inflight_write_;
    size_t pos = 0;
    for (const auto& s : w.slices) {
      if (s.at > pos)
        iov_.emplace_back(w.bytes.data() + pos, s.at - pos);
      iov_.emplace_back(s.data, s.size);
      pos = s.at;
    }
    if (w.bytes.size() > pos)
      iov_.emplace_back(w.bytes.data() + pos, w.bytes.size() - pos);
    asio::async_write(
      socket_, iov_,
      asio::bind_executor(strand_, [self = shared_from_this()](
                                     boost::system::error_code ec, size_t) {
        std::unique_lock<std::mutex> guard{self->wmtx_};
        self->inflight_write_.bytes.clear();
        self->inflight_write_.slices.clear();
        if (ec) {
          self->writing_ = false;
          guard.unlock();
          self->peer_gone();
          return;
        }
        self->last_write_ = steady::now();
        self->start_write();
      }));
  }

  void arm_timer(steady::duration d) {
    timer_.expires_after(d);
    timer_.async_wait(
      [self = shared_from_this()](boost::system::error_code ec) {
        if (ec || self->closed_)
          return;
        if (!self->header_done_) {
          self->shutdown(); // No protocol header in time.
          return;
        }
        self->on_heartbeat_tick();
      });
  }

  void arm_heartbeat() {
    if (heartbeat_ == 0 || closed_)
      return;
    // Check twice per interval, as RabbitMQ sends at half the timeout.
    arm_timer(std::chrono::milliseconds(heartbeat_ * 500));
  }

  void on_heartbeat_tick() {
    auto now = steady::now();
    auto interval = std::chrono::seconds(heartbeat_);
    // While reading is paused (the actor is behind, or the connection is
    // blocked by a resource alarm) the peer's heartbeats sit unread in the
    // socket: do not count that time against it, as RabbitMQ does not.
    if (paused_)
      last_read_ = now;
    if (now - last_read_ > 2 * interval) {
      FLOTILLA_LOG(warning, "connection " << info_.peer
                                          << ": missed heartbeats from client, "
                                             "timeout: "
                                          << heartbeat_ << "s");
      peer_gone();
      return;
    }
    std::unique_lock<std::mutex> guard{wmtx_};
    bool idle = now - last_write_ >= interval / 2 && !writing_;
    guard.unlock();
    if (idle) {
      outbound hb;
      protocol::append_heartbeat_frame(hb.bytes);
      queue_write(std::move(hb));
    }
    arm_heartbeat();
  }

  /// The socket failed or the peer closed it: tell the actor, close.
  void peer_gone() {
    if (actor_) {
      auto batch = std::make_shared<input_batch>();
      batch->closed = true;
      ++in_flight_;
      caf::anon_send(actor_, input_atom::value, std::move(batch));
      actor_ = nullptr;
    }
    shutdown();
  }

  void shutdown() {
    if (closed_)
      return;
    closed_ = true;
    boost::system::error_code ec;
    timer_.cancel();
    // Under wmtx_: an actor thread may be writing to the descriptor.
    std::lock_guard<std::mutex> guard{wmtx_};
    wclosed_ = true;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer timer_;
  broker& node_;
  std::atomic<size_t>& open_;
  connection_info info_;
  caf::actor actor_;
  std::string header_;
  bool header_done_ = false;
  protocol::frame_decoder decoder_;
  protocol::command_assembler assembler_;
  std::vector<uint16_t> discarding_;
  input_batch_ptr batch_;
  size_t last_batch_size_ = 0; ///< Commands of the previous batch.
  size_t wanted_buffer_size() const {
    return large_ ? large_read_buffer : small_read_buffer;
  }

  read_buffer buf_; ///< Null while idle (see spare_small).
  size_t buf_size_ = small_read_buffer;
  bool keep_buffer_ = false; ///< The last read filled buf_.
  bool large_ = false;       ///< Reads keep filling small buffers.
  bool reading_ = false;
  bool paused_ = false;
  int in_flight_ = 0;
  // Written by the connection actor's thread and the strand: under wmtx_.
  std::mutex wmtx_;
  outbound pending_;
  outbound inflight_write_;
  std::vector<asio::const_buffer> iov_; ///< Of inflight_write_.
  bool writing_ = false; ///< An async write is in flight or posted.
  bool wclosed_ = false; ///< The socket is closed (no more writes).
  bool closing_ = false;
  bool closed_ = false;
  uint16_t heartbeat_ = 0;
  steady::time_point last_read_;
  steady::time_point last_write_; ///< Under wmtx_.
};

} // namespace

struct amqp_server::impl {
  impl(broker& b, options o)
    : node(b), opts(std::move(o)), work(asio::make_work_guard(io)),
      acceptor(io) {}

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [this](
                                                   boost::system::error_code ec,
                                                   tcp::socket sock) {
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          FLOTILLA_LOG(warning, "accept failed: " << ec.message());
          accept();
        }
        return;
      }
      if (opts.max_connections != 0 && open >= opts.max_connections) {
        FLOTILLA_LOG(warning, "connection refused: max-connections ("
                                << opts.max_connections << ") reached");
        boost::system::error_code ignored;
        sock.close(ignored);
      } else {
        std::make_shared<amqp_connection>(std::move(sock), node, open)->start();
      }
      accept();
    });
  }

  broker& node;
  options opts;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<size_t> open{0};
};

amqp_server::amqp_server(broker& b, options opts)
  : impl_(std::make_unique<impl>(b, std::move(opts))) {
  auto& o = impl_->opts;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.interface, ec);
  if (ec)
    throw std::runtime_error("invalid --interface '"
                             + o.interface + "': " + ec.message());
  tcp::endpoint ep{addr, o.port};
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(o.backlog, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + o.interface + ":"
                             + std::to_string(o.port) + ": " + ec.message());
}

amqp_server::~amqp_server() {
  stop();
}

uint16_t amqp_server::port() const {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void amqp_server::start() {
  impl_->accept();
  auto n = std::max(1u, impl_->opts.io_threads);
  for (unsigned i = 0; i < n; ++i)
    impl_->threads.emplace_back([this] {
      impl_->io.run();
    });
}

void amqp_server::stop_accepting() {
  asio::post(impl_->io, [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
}

size_t amqp_server::open_sockets() const {
  return impl_->open;
}

void amqp_server::stop() {
  if (impl_->threads.empty())
    return;
  impl_->work.reset();
  impl_->io.stop();
  for (auto& t : impl_->threads)
    t.join();
  impl_->threads.clear();
}

} // namespace flotilla
