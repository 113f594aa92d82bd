// flotilla-bench: an AMQP 0-9-1 load generator that checks what it measures.
// One thread per connection; see README.md beside this file.

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include "protocol/properties.hpp"
#include "test/bench/client.hpp"
#include "test/bench/options.hpp"
#include "test/bench/stats.hpp"

namespace flotilla::bench {
namespace {

namespace pr = flotilla::protocol;
using namespace std::chrono_literals;

// -- the 24-byte stamp at the front of every body ----------------------------

constexpr size_t stamp_size = 24;

/// Native byte order: publisher and consumer are the same process. `run` is
/// a random number per run, so messages left over from another run (a kept
/// queue, another client) are counted as bad instead of passing as ours.
struct stamp {
  uint32_t run;
  uint32_t publisher;
  uint64_t seq;
  uint64_t sent_ns; // steady clock
};
static_assert(sizeof(stamp) == stamp_size);

/// The publisher id of --warm-up probes: consumers skip them (a late probe
/// may still arrive while the run is measured).
constexpr uint32_t probe_publisher = UINT32_MAX;

uint64_t now_ns() {
  return static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(
      clock_type::now().time_since_epoch())
      .count());
}

// -- broker process sampling ----------------------------------------------

/// Returns VmRSS of `pid` in KiB, 0 if unknown.
uint64_t rss_kb(int pid) {
  if (pid <= 0)
    return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

/// Returns user + system CPU seconds of `pid`, 0 if unknown.
double cpu_seconds(int pid) {
  if (pid <= 0)
    return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  auto p = all.rfind(')');
  if (p == std::string::npos)
    return 0;
  std::istringstream rest(all.substr(p + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  // Fields after comm start at 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15)
      stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / ::sysconf(_SC_CLK_TCK);
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return t.tv_sec + t.tv_usec / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

/// Samples the broker's memory while the run goes on.
struct broker_sampler {
  int pid = 0;
  uint64_t start_kb = 0;
  uint64_t peak_kb = 0;
  uint64_t end_kb = 0;
  double cpu_start = 0;
  double cpu_end = 0;

  void begin() {
    start_kb = peak_kb = rss_kb(pid);
    cpu_start = cpu_seconds(pid);
  }
  void sample() {
    peak_kb = std::max(peak_kb, rss_kb(pid));
  }
  void finish() {
    end_kb = rss_kb(pid);
    peak_kb = std::max(peak_kb, end_kb);
    cpu_end = cpu_seconds(pid);
  }
};

// -- shared run state --------------------------------------------------------

struct alignas(64) publisher_state {
  std::atomic<uint64_t> sent{0};     ///< Messages written so far.
  std::atomic<uint64_t> consumed{0}; ///< Deliveries of them, all queues.
  std::atomic<bool> done{false};     ///< sent is final.
  /// Set while the publisher sleeps on `cv` because its backlog is full;
  /// consumers then notify it as they consume its messages.
  std::atomic<bool> waiting{false};
  std::mutex mtx;
  std::condition_variable cv;
  uint64_t confirmed = 0; ///< Owner thread only, read after join.
  uint64_t nacked = 0;
  uint64_t first_ns = 0;
  uint64_t last_ns = 0;
  int copies = 1; ///< Queues each message is routed to.
  std::string exchange;
  std::string routing_key;
};

struct queue_state {
  std::string name;
  std::vector<int> publishers;                 ///< Who routes here.
  std::vector<std::unique_ptr<seen_set>> seen; ///< By publisher id (or null).
  std::atomic<uint64_t> delivered{0};
};

struct consumer_result {
  histogram latency;
  uint64_t delivered = 0;
  uint64_t duplicates = 0;
  uint64_t out_of_order = 0;
  uint64_t bad = 0; ///< Unknown stamp, publisher or misrouted.
  uint64_t redelivered = 0;
  uint64_t first_ns = 0;
  uint64_t last_ns = 0;
};

struct run_state {
  const options& opt;
  std::vector<std::unique_ptr<publisher_state>> pubs;
  std::vector<std::unique_ptr<queue_state>> queues;
  std::vector<std::unique_ptr<consumer_result>> cons;
  std::atomic<bool> abort{false};
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::atomic<int> publishers_done{0};
  std::atomic<uint64_t> progress{0}; ///< Bumped by workers; for the watchdog.
  std::mutex mtx;
  std::vector<std::string> errors;
  uint64_t start_ns = 0;
  uint32_t nonce = 0;

  explicit run_state(const options& o) : opt(o) {
    nonce = static_cast<uint32_t>(now_ns() ^ (uint64_t(::getpid()) << 16));
  }

  void error(const std::string& what) {
    std::lock_guard<std::mutex> guard{mtx};
    errors.push_back(what);
    abort = true;
  }

  /// Returns how many messages queue q must deliver once all publishers are
  /// done.
  uint64_t expected(const queue_state& q) const {
    uint64_t n = 0;
    for (int p : q.publishers)
      n += pubs[p]->sent.load();
    return n;
  }
};

// -- publisher -----------------------------------------------------------

/// Tracks which publish sequence numbers (delivery tags) are confirmed.
class confirm_window {
public:
  void published() {
    pending_.push_back(0);
  }
  /// Returns how many messages this ack/nack settles.
  uint64_t settle(uint64_t tag, bool multiple) {
    uint64_t n = 0;
    if (tag < base_)
      return 0;
    uint64_t from = multiple ? base_ : tag;
    for (uint64_t t = from; t <= tag && t - base_ < pending_.size(); ++t) {
      auto& s = pending_[t - base_];
      if (s == 0) {
        s = 1;
        ++n;
      }
    }
    while (!pending_.empty() && pending_.front() == 1) {
      pending_.pop_front();
      ++base_;
    }
    return n;
  }

private:
  uint64_t base_ = 1;
  std::deque<uint8_t> pending_;
};

void run_publisher(run_state& rs, int id, connection& c) {
  const auto& opt = rs.opt;
  auto& me = *rs.pubs[id];
  // Everything before the body is the same for every message: encode once.
  std::string prefix;
  pr::basic_publish pub;
  pub.exchange = me.exchange;
  pub.routing_key = me.routing_key;
  pr::append_method_frame(prefix, 1, pub);
  pr::basic_properties props;
  if (opt.persistent)
    props.delivery_mode = 2;
  pr::append_header_frame(prefix, 1, opt.size, props);
  std::string body(opt.size, 'x');

  const uint64_t batch_bytes = 128 * 1024;
  uint64_t total = opt.duration > 0 ? UINT64_MAX : opt.messages;
  uint64_t sent = 0;
  confirm_window window;
  pr::method m;
  auto on_frame = [&](const pr::frame_view& f) {
    if (!c.decode(f, m))
      return;
    if (auto* a = std::get_if<pr::basic_ack>(&m)) {
      me.confirmed += window.settle(a->delivery_tag, a->multiple);
    } else if (auto* n = std::get_if<pr::basic_nack>(&m)) {
      me.nacked += window.settle(n->delivery_tag, n->multiple);
    }
  };

  while (!rs.go.load(std::memory_order_acquire)) {
    if (rs.abort)
      return;
    std::this_thread::sleep_for(200us);
  }
  auto start = now_ns();
  me.first_ns = start;
  uint64_t deadline
    = opt.duration > 0 ? start + static_cast<uint64_t>(opt.duration * 1e9) : 0;
  auto& out = c.out();
  while (!rs.abort.load(std::memory_order_relaxed)) {
    auto now = now_ns();
    if (deadline != 0 && now >= deadline && total == UINT64_MAX)
      total = sent;
    bool confirms_done = opt.confirm == 0 || me.confirmed + me.nacked == sent;
    if (sent == total && out.empty() && confirms_done)
      break;
    uint64_t allowed = total - sent;
    enum { free, rate_wait, backlog_wait, confirm_wait } why = free;
    if (opt.confirm > 0) {
      auto inflight = sent - me.confirmed - me.nacked;
      auto room = opt.confirm > inflight ? opt.confirm - inflight : 0;
      if (room < allowed) {
        allowed = room;
        why = confirm_wait;
      }
    }
    if (opt.max_backlog > 0 && opt.consumers > 0) {
      auto consumed = me.consumed.load(std::memory_order_relaxed) / me.copies;
      auto backlog = sent > consumed ? sent - consumed : 0;
      auto room = opt.max_backlog > backlog ? opt.max_backlog - backlog : 0;
      if (room < allowed) {
        allowed = room;
        why = backlog_wait;
      }
    }
    uint64_t next_due_ns = 0;
    if (opt.rate > 0) {
      auto due = static_cast<uint64_t>(static_cast<double>(now - start) * 1e-9
                                       * opt.rate)
                 + 1;
      auto room = due > sent ? due - sent : 0;
      if (room < allowed) {
        allowed = room;
        why = rate_wait;
        next_due_ns = start
                      + static_cast<uint64_t>(static_cast<double>(sent + 1)
                                              * 1e9 / opt.rate);
      }
    }
    uint64_t before = sent;
    while (allowed > 0 && out.size() < batch_bytes) {
      stamp s{rs.nonce, static_cast<uint32_t>(id), sent, now_ns()};
      std::memcpy(body.data(), &s, stamp_size);
      out += prefix;
      pr::append_body_frames(out, 1, body, c.frame_max());
      if (opt.confirm > 0)
        window.published();
      ++sent;
      --allowed;
    }
    if (sent != before) {
      me.sent.store(sent, std::memory_order_release);
      rs.progress.fetch_add(1, std::memory_order_relaxed);
    }
    std::chrono::microseconds timeout = 0us;
    if (out.size() >= batch_bytes)
      timeout = 50000us; // socket full: wait until writable
    else if (allowed > 0)
      timeout = 0us;
    else if (sent == total || why == confirm_wait)
      timeout = 50000us; // wait for confirms or the last bytes to go out
    else if (why == rate_wait) {
      auto t = now_ns(); // read once: a second read could pass next_due_ns
      timeout = std::chrono::microseconds{
        next_due_ns > t ? (next_due_ns - t) / 1000 : 0};
    } else if (why == backlog_wait && out.empty()) {
      // Sleep until the consumers have taken a quarter of the backlog
      // (hysteresis: publishing resumes in batches, not one message per
      // wake-up, so a hundred waiting publishers cost no CPU).
      auto resume_at
        = opt.max_backlog - std::max<uint64_t>(1, opt.max_backlog / 4);
      auto backlog = [&] {
        auto consumed = me.consumed.load() / me.copies;
        return sent > consumed ? sent - consumed : 0;
      };
      me.waiting.store(true);
      {
        std::unique_lock<std::mutex> guard{me.mtx};
        me.cv.wait_for(guard, 20ms, [&] {
          return backlog() <= resume_at || rs.abort.load();
        });
      }
      me.waiting.store(false);
      timeout = 0us; // still read confirms
    } else if (why == backlog_wait) {
      timeout = 200us;
    }
    auto confirmed_before = me.confirmed + me.nacked;
    c.pump(timeout, on_frame);
    if (me.confirmed + me.nacked != confirmed_before)
      rs.progress.fetch_add(1, std::memory_order_relaxed);
  }
  me.last_ns = now_ns();
  me.sent.store(sent, std::memory_order_release);
  me.done.store(true, std::memory_order_release);
  rs.publishers_done.fetch_add(1);
}

// -- consumer --------------------------------------------------------------

void run_consumer(run_state& rs, int id, connection& c, queue_state& q) {
  const auto& opt = rs.opt;
  auto& res = *rs.cons[id];
  const int np = static_cast<int>(rs.pubs.size());
  std::vector<uint64_t> last_seq(np, UINT64_MAX);
  std::vector<uint64_t> consumed_local(np, 0);
  uint64_t delivered_local = 0;
  uint64_t unacked = 0;
  uint64_t last_tag = 0;

  // Deliveries are parsed here, without the command assembler: this is the
  // hot path and it needs only the delivery tag and the first 24 body bytes.
  enum class phase { idle, header, body } ph = phase::idle;
  uint64_t tag = 0;
  uint64_t remaining = 0;
  size_t got = 0;
  char head[stamp_size];
  pr::method m;

  auto finish = [&] {
    auto now = now_ns();
    stamp s;
    std::memcpy(&s, head, stamp_size);
    bool probe = got >= stamp_size && s.run == rs.nonce
                 && s.publisher == probe_publisher;
    if (!probe) {
      if (res.first_ns == 0)
        res.first_ns = now;
      res.last_ns = now;
      ++res.delivered;
      ++delivered_local;
    }
    if (opt.manual_ack) {
      if (opt.multiple_ack <= 1) {
        pr::append_method_frame(c.out(), 1, pr::basic_ack{tag, false});
      } else {
        ++unacked;
        last_tag = tag;
        if (unacked >= opt.multiple_ack) {
          pr::append_method_frame(c.out(), 1, pr::basic_ack{tag, true});
          unacked = 0;
        }
      }
    }
    if (probe)
      return;
    if (got < stamp_size || s.run != rs.nonce
        || s.publisher >= static_cast<uint32_t>(np) || !q.seen[s.publisher]) {
      ++res.bad;
      return;
    }
    if (now > s.sent_ns)
      res.latency.record(now - s.sent_ns);
    ++consumed_local[s.publisher];
    if (!q.seen[s.publisher]->mark(s.seq)) {
      ++res.duplicates;
      return;
    }
    auto& last = last_seq[s.publisher];
    if (last != UINT64_MAX && s.seq < last)
      ++res.out_of_order;
    if (last == UINT64_MAX || s.seq > last)
      last = s.seq;
  };

  auto on_frame = [&](const pr::frame_view& f) {
    auto p = f.payload;
    switch (f.type) {
      case pr::frame_type::method:
        if (p.size() >= 4 && pr::wire::load_u16(p.data()) == 60
            && pr::wire::load_u16(p.data() + 2) == 60) {
          pr::wire::reader r{p.substr(4)};
          std::string_view ctag;
          uint8_t bits = 0;
          if (!r.shortstr(ctag) || !r.u64(tag) || !r.u8(bits))
            throw bench_error("truncated basic.deliver");
          if (bits & 1)
            ++res.redelivered;
          ph = phase::header;
          return;
        }
        if (!c.decode(f, m))
          return;
        if (std::holds_alternative<pr::basic_cancel>(m))
          throw bench_error("broker cancelled the consumer of " + q.name);
        return;
      case pr::frame_type::header:
        if (ph != phase::header || p.size() < 12)
          throw bench_error("unexpected header frame");
        remaining = pr::wire::load_u64(p.data() + 4);
        got = 0;
        if (remaining == 0) {
          ph = phase::idle;
          finish();
        } else {
          ph = phase::body;
        }
        return;
      case pr::frame_type::body: {
        if (ph != phase::body || p.size() > remaining)
          throw bench_error("unexpected body frame");
        auto n = std::min(stamp_size - got, p.size());
        std::memcpy(head + got, p.data(), n);
        got += n;
        remaining -= p.size();
        if (remaining == 0) {
          ph = phase::idle;
          finish();
        }
        return;
      }
      default:
        return;
    }
  };

  while (!rs.abort.load(std::memory_order_relaxed)) {
    bool any = c.pump(50000us, on_frame);
    if (delivered_local > 0) {
      for (int i = 0; i < np; ++i)
        if (consumed_local[i] > 0) {
          auto& p = *rs.pubs[i];
          p.consumed.fetch_add(consumed_local[i]);
          consumed_local[i] = 0;
          if (p.waiting.load()) {
            std::lock_guard<std::mutex> guard{p.mtx};
            p.cv.notify_one();
          }
        }
      q.delivered.fetch_add(delivered_local, std::memory_order_relaxed);
      rs.progress.fetch_add(1, std::memory_order_relaxed);
      delivered_local = 0;
    }
    // Multiple acks: also ack when half the prefetch window is used or the
    // socket went quiet, so the broker never stalls on our batching.
    if (unacked > 0
        && (!any || (opt.prefetch > 0 && unacked * 2 >= opt.prefetch))) {
      pr::append_method_frame(c.out(), 1, pr::basic_ack{last_tag, true});
      unacked = 0;
    }
    if (rs.publishers_done.load() == np
        && q.delivered.load(std::memory_order_relaxed) >= rs.expected(q)
        && ph == phase::idle)
      break;
  }
  if (unacked > 0)
    pr::append_method_frame(c.out(), 1, pr::basic_ack{last_tag, true});
  c.flush(5s);
}

// -- topology ------------------------------------------------------------

std::string run_id() {
  return "flotilla-bench-" + std::to_string(::getpid()) + "-"
         + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()
                          % 100000000);
}

std::string queue_name(const options& opt, const std::string& id, int i,
                       int n) {
  if (!opt.queue_name.empty())
    return n == 1 ? opt.queue_name : opt.queue_name + "-" + std::to_string(i);
  return id + "-q" + std::to_string(i);
}

void declare_queue(connection& c, const options& opt, const std::string& name) {
  pr::queue_declare d;
  d.queue = name;
  d.durable = opt.durable;
  c.call<pr::queue_declare_ok>(d);
}

/// Publishes probe messages on `pub` to `exchange` with `key` until one is
/// delivered from `queue` on `con` (a route between brokers is ready), one
/// every 100 ms; throws bench_error after opt.warm_up seconds. Probes carry
/// probe_publisher in their stamp, so the measured consumers skip late ones.
void warm_up(const options& opt, uint32_t nonce, connection& pub,
             connection& con, const std::string& exchange,
             const std::string& key, const std::string& queue) {
  pr::basic_consume bc;
  bc.queue = queue;
  bc.consumer_tag = "warm-up";
  bc.no_ack = true;
  con.call<pr::basic_consume_ok>(bc);
  pr::basic_publish bp;
  bp.exchange = exchange;
  bp.routing_key = key;
  pr::basic_properties props;
  if (opt.persistent)
    props.delivery_mode = 2;
  std::string body(opt.size, 'x');
  auto deadline
    = clock_type::now() + std::chrono::duration<double>(opt.warm_up);
  bool arrived = false;
  uint64_t seq = 0;
  pr::method m;
  auto on_con = [&](const pr::frame_view& f) {
    if (f.channel == 1 && con.decode(f, m)
        && std::holds_alternative<pr::basic_deliver>(m))
      arrived = true;
  };
  auto on_pub = [&](const pr::frame_view& f) {
    pub.decode(f, m); // throws if the broker closed the channel
  };
  while (!arrived) {
    if (clock_type::now() > deadline)
      throw bench_error("warm-up: no probe reached " + queue + " within "
                        + std::to_string(static_cast<int>(opt.warm_up))
                        + " s (is the route up?)");
    stamp st{nonce, probe_publisher, seq++, now_ns()};
    std::memcpy(body.data(), &st, stamp_size);
    pr::append_method_frame(pub.out(), 1, bp);
    pr::append_header_frame(pub.out(), 1, body.size(), props);
    pr::append_body_frames(pub.out(), 1, body, pub.frame_max());
    pub.flush(5s);
    auto until = clock_type::now() + 100ms;
    while (!arrived && clock_type::now() < until) {
      con.pump(10000us, on_con);
      if (&pub != &con)
        pub.pump(0us, on_pub);
    }
  }
  pr::basic_cancel cancel;
  cancel.consumer_tag = "warm-up";
  con.call<pr::basic_cancel_ok>(cancel);
}

bool same_broker(const url& a, const url& b) {
  return a.host == b.host && a.port == b.port && a.vhost == b.vhost;
}

// -- output ----------------------------------------------------------------

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

/// Small ordered JSON object writer.
class json_object {
public:
  json_object& num(const std::string& k, double v) {
    char buf[64];
    if (std::isfinite(v))
      std::snprintf(buf, sizeof buf, "%.6g", v);
    else
      std::snprintf(buf, sizeof buf, "null");
    return raw(k, buf);
  }
  json_object& u64(const std::string& k, uint64_t v) {
    return raw(k, std::to_string(v));
  }
  json_object& str(const std::string& k, const std::string& v) {
    return raw(k, "\"" + json_escape(v) + "\"");
  }
  json_object& boolean(const std::string& k, bool v) {
    return raw(k, v ? "true" : "false");
  }
  json_object& raw(const std::string& k, const std::string& v) {
    if (!body_.empty())
      body_ += ", ";
    body_ += "\"" + json_escape(k) + "\": " + v;
    return *this;
  }
  std::string text() const {
    return "{" + body_ + "}";
  }

private:
  std::string body_;
};

std::string errors_json(const std::vector<std::string>& errors) {
  std::string out = "[";
  for (size_t i = 0; i < errors.size(); ++i)
    out += (i ? ", \"" : "\"") + json_escape(errors[i]) + "\"";
  return out + "]";
}

// -- mode: run -------------------------------------------------------------

int mode_run(const options& opt) {
  run_state rs{opt};
  const auto id = run_id();
  const int np = opt.publishers;
  const int nq = opt.fanout > 0 ? opt.fanout : opt.queues;
  const int nc = opt.consumers;
  std::string exchange;
  if (opt.fanout > 0)
    exchange = opt.queue_name.empty() ? id + "-fx" : opt.queue_name + "-fx";
  else if (!opt.exchange.empty())
    exchange = opt.exchange;
  const bool two_brokers = !same_broker(opt.url, opt.consume_url);
  const bool declare_exchange
    = opt.fanout > 0 || (!exchange.empty() && exchange.rfind("amq.", 0) != 0);

  for (int i = 0; i < np; ++i) {
    auto p = std::make_unique<publisher_state>();
    p->copies = opt.fanout > 0 ? opt.fanout : 1;
    p->exchange = exchange;
    rs.pubs.push_back(std::move(p));
  }
  for (int i = 0; i < nq; ++i) {
    auto q = std::make_unique<queue_state>();
    q->name = queue_name(opt, id, i, nq);
    q->seen.resize(np);
    rs.queues.push_back(std::move(q));
  }
  for (int p = 0; p < np; ++p) {
    if (opt.fanout > 0) {
      for (auto& q : rs.queues)
        q->publishers.push_back(p);
    } else {
      auto& q = *rs.queues[p % nq];
      q.publishers.push_back(p);
      rs.pubs[p]->routing_key
        = opt.routing_key.empty() ? q.name : opt.routing_key;
    }
  }
  for (auto& q : rs.queues)
    for (int p : q->publishers)
      q->seen[p] = std::make_unique<seen_set>();
  for (int i = 0; i < nc; ++i)
    rs.cons.push_back(std::make_unique<consumer_result>());

  broker_sampler broker;
  broker.pid = opt.broker_pid;
  broker_sampler consume_broker;
  consume_broker.pid = opt.consume_broker_pid;
  // control: on the consuming broker (queues); pub_control: on the
  // publishing broker when that is another one.
  connection control;
  connection pub_control;
  int rc = 0;
  try {
    control.open(opt.consume_url, id + "-control");
    if (two_brokers)
      pub_control.open(opt.url, id + "-pcontrol");
    if (declare_exchange) {
      pr::exchange_declare d;
      d.exchange = exchange;
      d.type = opt.fanout > 0 ? "fanout" : opt.exchange_type;
      d.durable = opt.durable;
      control.call<pr::exchange_declare_ok>(d);
      if (two_brokers)
        pub_control.call<pr::exchange_declare_ok>(d);
    }
    for (auto& q : rs.queues) {
      declare_queue(control, opt, q->name);
      if (!exchange.empty()) {
        pr::queue_bind b;
        b.queue = q->name;
        b.exchange = exchange;
        if (opt.fanout == 0)
          b.routing_key = rs.pubs[q->publishers.at(0)]->routing_key;
        control.call<pr::queue_bind_ok>(b);
      }
    }
    if (opt.warm_up > 0) {
      auto& q = *rs.queues.at(0);
      warm_up(opt, rs.nonce, two_brokers ? pub_control : control, control,
              exchange, rs.pubs[q.publishers.at(0)]->routing_key, q.name);
    }
  } catch (const bench_error& e) {
    std::fprintf(stderr, "flotilla-bench: setup failed: %s\n", e.what());
    return 1;
  }

  broker.begin();
  consume_broker.begin();
  auto cpu0 = self_cpu_seconds();
  std::vector<std::unique_ptr<connection>> conns;
  std::vector<std::thread> threads;
  for (int i = 0; i < nc + np; ++i)
    conns.push_back(std::make_unique<connection>());
  // Consumers first: they must be registered before anything is published.
  for (int i = 0; i < nc; ++i) {
    threads.emplace_back([&rs, &opt, &conns, i, &id] {
      auto& c = *conns[i];
      auto& q = *rs.queues[i % rs.queues.size()];
      try {
        c.open(opt.consume_url, id + "-c" + std::to_string(i));
        if (opt.prefetch > 0) {
          pr::basic_qos qos;
          qos.prefetch_count = opt.prefetch;
          c.call<pr::basic_qos_ok>(qos);
        }
        pr::basic_consume bc;
        bc.queue = q.name;
        bc.consumer_tag = "c" + std::to_string(i);
        bc.no_ack = !opt.manual_ack;
        c.call<pr::basic_consume_ok>(bc);
        rs.ready.fetch_add(1);
        run_consumer(rs, i, c, q);
      } catch (const std::exception& e) {
        rs.error("consumer " + std::to_string(i) + ": " + e.what());
        rs.ready.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < np; ++i) {
    threads.emplace_back([&rs, &opt, &conns, i, nc, &id] {
      auto& c = *conns[nc + i];
      try {
        c.open(opt.url, id + "-p" + std::to_string(i));
        if (opt.confirm > 0)
          c.call<pr::confirm_select_ok>(pr::confirm_select{});
        rs.ready.fetch_add(1);
        run_publisher(rs, i, c);
      } catch (const std::exception& e) {
        rs.error("publisher " + std::to_string(i) + ": " + e.what());
        rs.ready.fetch_add(1);
        rs.pubs[i]->done = true;
        rs.publishers_done.fetch_add(1);
      }
    });
  }
  while (rs.ready.load() < nc + np)
    std::this_thread::sleep_for(1ms);
  rs.start_ns = now_ns();
  rs.go.store(true, std::memory_order_release);

  // Watchdog and memory sampling until all workers are done.
  uint64_t last_progress = 0;
  auto last_change = clock_type::now();
  std::atomic<int> finished{0};
  std::thread joiner([&] {
    for (auto& t : threads)
      t.join();
    finished = 1;
  });
  while (!finished.load()) {
    std::this_thread::sleep_for(100ms);
    broker.sample();
    consume_broker.sample();
    auto p = rs.progress.load();
    if (p != last_progress) {
      last_progress = p;
      last_change = clock_type::now();
    } else if (!rs.abort
               && clock_type::now() - last_change
                    > std::chrono::duration<double>(opt.stall_timeout)) {
      rs.error("stalled: nothing moved for "
               + std::to_string(static_cast<int>(opt.stall_timeout)) + " s");
    }
  }
  joiner.join();
  auto end_ns = now_ns();

  // Without consumers, the queue depth is the check.
  uint64_t queued = 0;
  if (nc == 0 && rs.errors.empty()) {
    try {
      uint64_t want = 0;
      for (auto& q : rs.queues)
        want += rs.expected(*q);
      auto deadline = clock_type::now() + 30s;
      for (;;) {
        queued = 0;
        for (auto& q : rs.queues) {
          pr::queue_declare d;
          d.queue = q->name;
          d.passive = true;
          queued += control.call<pr::queue_declare_ok>(d).message_count;
        }
        if (queued >= want || clock_type::now() > deadline)
          break;
        std::this_thread::sleep_for(100ms);
      }
    } catch (const bench_error& e) {
      rs.error(std::string{"checking queue depth: "} + e.what());
    }
  }
  if (opt.settle > 0) {
    auto until = clock_type::now() + std::chrono::duration<double>(opt.settle);
    while (clock_type::now() < until) {
      std::this_thread::sleep_for(100ms);
      broker.sample();
      consume_broker.sample();
    }
  }
  broker.finish();
  consume_broker.finish();
  auto client_cpu = self_cpu_seconds() - cpu0;

  for (auto& c : conns)
    c->close(2s);
  if (!opt.keep) {
    try {
      for (auto& q : rs.queues) {
        pr::queue_delete d;
        d.queue = q->name;
        control.call<pr::queue_delete_ok>(d);
      }
      // A named --exchange is not ours to delete (a route may use it).
      if (opt.fanout > 0) {
        pr::exchange_delete d;
        d.exchange = exchange;
        control.call<pr::exchange_delete_ok>(d);
      }
    } catch (const bench_error& e) {
      rs.error(std::string{"cleanup: "} + e.what());
    }
  }
  control.close();
  pub_control.close();

  // -- results --
  uint64_t published = 0, confirmed = 0, nacked = 0;
  uint64_t pub_first = UINT64_MAX, pub_last = 0;
  for (auto& p : rs.pubs) {
    published += p->sent.load();
    confirmed += p->confirmed;
    nacked += p->nacked;
    if (p->first_ns)
      pub_first = std::min(pub_first, p->first_ns);
    pub_last = std::max(pub_last, p->last_ns);
  }
  histogram lat;
  uint64_t consumed = 0, dups = 0, order = 0, bad = 0, redelivered = 0;
  uint64_t con_first = UINT64_MAX, con_last = 0;
  for (auto& c : rs.cons) {
    lat.merge(c->latency);
    consumed += c->delivered;
    dups += c->duplicates;
    order += c->out_of_order;
    bad += c->bad;
    redelivered += c->redelivered;
    if (c->first_ns)
      con_first = std::min(con_first, c->first_ns);
    con_last = std::max(con_last, c->last_ns);
  }
  uint64_t expected = 0, lost = 0;
  for (auto& q : rs.queues) {
    for (int p : q->publishers) {
      auto sent = rs.pubs[p]->sent.load();
      expected += sent;
      if (nc > 0) {
        auto d = q->seen[p]->distinct();
        lost += sent > d ? sent - d : 0;
      }
    }
  }
  if (nc == 0)
    lost = expected > queued ? expected - queued : 0;
  bool ok = rs.errors.empty() && lost == 0 && dups == 0 && order == 0
            && bad == 0 && nacked == 0;
  if (!ok)
    rc = 1;
  auto span = [](uint64_t a, uint64_t b) {
    return b > a && a != UINT64_MAX ? (b - a) / 1e9 : 0.0;
  };
  double pub_s = span(pub_first, pub_last);
  double con_s = span(con_first, con_last);
  double pub_rate = pub_s > 0 ? published / pub_s : 0;
  double con_rate = con_s > 0 ? consumed / con_s : 0;
  double mb = static_cast<double>(opt.size) / 1e6;
  double elapsed = (end_ns - rs.start_ns) / 1e9;

  if (opt.json) {
    json_object cfg;
    cfg.str("url", opt.url.host + ":" + std::to_string(opt.url.port))
      .str("consume_url",
           opt.consume_url.host + ":" + std::to_string(opt.consume_url.port))
      .str("exchange", opt.exchange)
      .u64("publishers", np)
      .u64("consumers", nc)
      .u64("queues", nq)
      .u64("fanout", opt.fanout)
      .u64("messages", opt.messages)
      .num("duration", opt.duration)
      .u64("size", opt.size)
      .boolean("persistent", opt.persistent)
      .boolean("durable", opt.durable)
      .u64("confirm", opt.confirm)
      .u64("prefetch", opt.prefetch)
      .str("ack", opt.manual_ack ? "manual" : "auto")
      .u64("multiple_ack", opt.multiple_ack)
      .num("rate", opt.rate)
      .u64("max_backlog", opt.max_backlog);
    json_object latency;
    latency.num("p50", lat.quantile(0.5) / 1e3)
      .num("p99", lat.quantile(0.99) / 1e3)
      .num("p999", lat.quantile(0.999) / 1e3)
      .num("max", lat.max() / 1e3)
      .num("mean", lat.mean() / 1e3)
      .u64("samples", lat.count());
    json_object br;
    br.u64("pid", opt.broker_pid)
      .u64("rss_start_kb", broker.start_kb)
      .u64("rss_peak_kb", broker.peak_kb)
      .u64("rss_end_kb", broker.end_kb)
      .num("cpu_s", broker.cpu_end - broker.cpu_start);
    json_object o;
    o.str("mode", "run")
      .str("label", opt.label)
      .boolean("ok", ok)
      .raw("errors", errors_json(rs.errors))
      .raw("config", cfg.text())
      .u64("published", published)
      .u64("confirmed", confirmed)
      .u64("nacked", nacked)
      .u64("expected_deliveries", expected)
      .u64("consumed", consumed)
      .u64("queued", queued)
      .u64("lost", lost)
      .u64("duplicates", dups)
      .u64("out_of_order", order)
      .u64("bad", bad)
      .u64("redelivered", redelivered)
      .num("elapsed_s", elapsed)
      .num("publish_s", pub_s)
      .num("consume_s", con_s)
      .num("publish_rate", pub_rate)
      .num("publish_mbps", pub_rate * mb)
      .num("consume_rate", con_rate)
      .num("consume_mbps", con_rate * mb)
      .raw("latency_us", latency.text())
      .raw("broker", br.text());
    if (opt.consume_broker_pid > 0) {
      json_object cb;
      cb.u64("pid", opt.consume_broker_pid)
        .u64("rss_start_kb", consume_broker.start_kb)
        .u64("rss_peak_kb", consume_broker.peak_kb)
        .u64("rss_end_kb", consume_broker.end_kb)
        .num("cpu_s", consume_broker.cpu_end - consume_broker.cpu_start);
      o.raw("consume_broker", cb.text());
    }
    o.num("client_cpu_s", client_cpu);
    std::printf("%s\n", o.text().c_str());
  } else {
    std::printf(
      "flotilla-bench %s:%u  %d pub, %d cons, %d queue(s)%s, "
      "%" PRIu64 " B, %s%s, %s ack%s%s\n",
      opt.url.host.c_str(), opt.url.port, np, nc, nq,
      opt.fanout > 0 ? " (fanout)" : "", opt.size,
      opt.persistent ? "persistent" : "transient",
      opt.durable ? ", durable" : "", opt.manual_ack ? "manual" : "auto",
      opt.confirm > 0 ? ", confirms" : "", opt.rate > 0 ? ", fixed rate" : "");
    std::printf("%-10s %12s %12s %10s %8s\n", "", "messages", "msg/s", "MB/s",
                "seconds");
    std::printf("%-10s %12" PRIu64 " %12.0f %10.2f %8.2f\n", "publish",
                published, pub_rate, pub_rate * mb, pub_s);
    if (nc > 0)
      std::printf("%-10s %12" PRIu64 " %12.0f %10.2f %8.2f\n", "consume",
                  consumed, con_rate, con_rate * mb, con_s);
    else
      std::printf("%-10s %12" PRIu64 " (left in the queue)\n", "queued",
                  queued);
    if (lat.count() > 0)
      std::printf("latency us  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
                  lat.quantile(0.5) / 1e3, lat.quantile(0.99) / 1e3,
                  lat.quantile(0.999) / 1e3, lat.max() / 1e3);
    if (opt.broker_pid > 0)
      std::printf("broker     RSS start %.1f MiB  peak %.1f MiB  end %.1f MiB"
                  "  CPU %.2f s\n",
                  broker.start_kb / 1024.0, broker.peak_kb / 1024.0,
                  broker.end_kb / 1024.0, broker.cpu_end - broker.cpu_start);
    if (opt.consume_broker_pid > 0)
      std::printf("consumer's broker RSS start %.1f MiB  peak %.1f MiB  end "
                  "%.1f MiB  CPU %.2f s\n",
                  consume_broker.start_kb / 1024.0,
                  consume_broker.peak_kb / 1024.0,
                  consume_broker.end_kb / 1024.0,
                  consume_broker.cpu_end - consume_broker.cpu_start);
    std::printf("client     CPU %.2f s  elapsed %.2f s\n", client_cpu, elapsed);
    std::printf("check      lost %" PRIu64 "  duplicates %" PRIu64
                "  out-of-order %" PRIu64 "  bad %" PRIu64 "  nacked %" PRIu64
                "  -> %s\n",
                lost, dups, order, bad, nacked, ok ? "OK" : "FAILED");
    for (auto& e : rs.errors)
      std::printf("error      %s\n", e.c_str());
  }
  return rc;
}

// -- mode: idle-connections ------------------------------------------------

int mode_idle(const options& opt) {
  const int n = opt.connections;
  const int nt = std::min(n, 64);
  broker_sampler broker;
  broker.pid = opt.broker_pid;
  broker.begin();
  std::vector<std::unique_ptr<connection>> conns(n);
  std::atomic<int> opened{0};
  std::mutex mtx;
  std::string first_error;
  auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  const auto id = run_id();
  for (int t = 0; t < nt; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += nt) {
        auto c = std::make_unique<connection>();
        try {
          c->open(opt.url, id + "-idle" + std::to_string(i), 30s);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> guard{mtx};
          if (first_error.empty())
            first_error = e.what();
          return;
        }
        conns[i] = std::move(c);
        opened.fetch_add(1);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  threads.clear();
  double open_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  auto until = clock_type::now() + std::chrono::duration<double>(opt.hold);
  while (clock_type::now() < until) {
    std::this_thread::sleep_for(100ms);
    broker.sample();
  }
  broker.finish();
  for (int t = 0; t < nt; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += nt)
        if (conns[i])
          conns[i]->close(2s);
    });
  }
  for (auto& t : threads)
    t.join();
  int got = opened.load();
  double per_conn
    = got > 0 && broker.end_kb > broker.start_kb
        ? static_cast<double>(broker.end_kb - broker.start_kb) / got
        : 0;
  bool ok = got == n;
  if (opt.json) {
    json_object o;
    o.str("mode", "idle-connections")
      .str("label", opt.label)
      .boolean("ok", ok)
      .str("error", first_error)
      .u64("requested", n)
      .u64("opened", got)
      .num("open_s", open_s)
      .u64("rss_start_kb", broker.start_kb)
      .u64("rss_end_kb", broker.end_kb)
      .u64("rss_peak_kb", broker.peak_kb)
      .num("kb_per_connection", per_conn)
      .num("cpu_s", broker.cpu_end - broker.cpu_start);
    std::printf("%s\n", o.text().c_str());
  } else {
    std::printf("idle connections: %d of %d opened in %.2f s\n", got, n,
                open_s);
    if (!first_error.empty())
      std::printf("first error: %s\n", first_error.c_str());
    std::printf("broker RSS before %.1f MiB, with connections %.1f MiB "
                "(%.1f KiB per connection)\n",
                broker.start_kb / 1024.0, broker.end_kb / 1024.0, per_conn);
  }
  return ok ? 0 : 1;
}

// -- mode: wait-ready --------------------------------------------------------

int mode_wait_ready(const options& opt) {
  auto t0 = clock_type::now();
  auto deadline = t0 + std::chrono::duration<double>(opt.timeout);
  std::string last_error;
  uint64_t count = 0;
  bool ok = false;
  while (clock_type::now() < deadline) {
    connection c;
    try {
      c.open(opt.url, "wait-ready", 5s);
      count = 0;
      if (!opt.queue_name.empty()) {
        pr::queue_declare d;
        d.queue = opt.queue_name;
        d.passive = true;
        count = c.call<pr::queue_declare_ok>(d, 5s).message_count;
      }
      c.close();
      if (count >= opt.expect) {
        ok = true;
        break;
      }
      last_error = "queue holds " + std::to_string(count) + " messages";
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    std::this_thread::sleep_for(25ms);
  }
  double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (opt.json) {
    json_object o;
    o.str("mode", "wait-ready")
      .str("label", opt.label)
      .boolean("ok", ok)
      .num("ready_s", s)
      .u64("message_count", count)
      .str("error", ok ? "" : last_error);
    std::printf("%s\n", o.text().c_str());
  } else if (ok) {
    std::printf("ready after %.3f s (%" PRIu64 " messages)\n", s, count);
  } else {
    std::printf("not ready after %.3f s: %s\n", s, last_error.c_str());
  }
  return ok ? 0 : 1;
}

// -- mode: delete ------------------------------------------------------------

int mode_delete(const options& opt) {
  if (opt.queue_name.empty()) {
    std::fprintf(stderr, "flotilla-bench: delete needs --queue-name\n");
    return 2;
  }
  try {
    connection c;
    c.open(opt.url, "delete");
    for (int i = 0; i < opt.queues; ++i) {
      pr::queue_delete d;
      d.queue = queue_name(opt, "", i, opt.queues);
      c.call<pr::queue_delete_ok>(d);
    }
    c.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flotilla-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

// -- mode: declare -----------------------------------------------------------

/// Declares --exchange on --url and on --consume-url (e.g. before a
/// federation route between them is set up, which needs it on both ends).
int mode_declare(const options& opt) {
  if (opt.exchange.empty()) {
    std::fprintf(stderr, "flotilla-bench: declare needs --exchange\n");
    return 2;
  }
  try {
    for (const url* u : {&opt.url, &opt.consume_url}) {
      if (u == &opt.consume_url && same_broker(opt.url, opt.consume_url))
        break;
      connection c;
      c.open(*u, "declare");
      pr::exchange_declare d;
      d.exchange = opt.exchange;
      d.type = opt.exchange_type;
      d.durable = opt.durable;
      c.call<pr::exchange_declare_ok>(d);
      c.close();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flotilla-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

} // namespace
} // namespace flotilla::bench

int main(int argc, char** argv) {
  using namespace flotilla::bench;
  options opt;
  auto err = parse_options(argc, argv, opt);
  if (err == "help") {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "flotilla-bench: %s (see --help)\n", err.c_str());
    return 2;
  }
  // Idle-connection runs need one descriptor per connection.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (opt.mode == "idle-connections")
    return mode_idle(opt);
  if (opt.mode == "wait-ready")
    return mode_wait_ready(opt);
  if (opt.mode == "delete")
    return mode_delete(opt);
  if (opt.mode == "declare")
    return mode_declare(opt);
  return mode_run(opt);
}
