#include "test/bench/options.hpp"

#include <cstdlib>
#include <functional>
#include <map>
#include <string_view>

namespace flotilla::bench {

std::string help_text() {
  return R"(flotilla-bench: AMQP 0-9-1 load generator and loss/order checker.

Usage: flotilla-bench [options]

Connection
  --url URL              amqp://user:password@host:port/vhost
                         (default amqp://guest:guest@127.0.0.1:5672/)
  --consume-url URL      consumers connect here and the queues are declared
                         here (default: --url); publishers use --url. For a
                         route between brokers, e.g. federation A -> B
Topology (names are unique per run; everything is deleted afterwards)
  --publishers N         publisher connections (default 1)
  --consumers N          consumer connections (default 1; 0 = only publish,
                         then check the queue depth)
  --queues N             queues (default 1). Publisher i publishes to queue
                         i mod N, consumer j consumes queue j mod N: with
                         N publishers and N consumers every pair has its queue
  --fanout K             publish to a fanout exchange bound to K queues;
                         consumer j consumes queue j mod K
  --durable              durable queues (and exchange)
  --queue-name NAME      use NAME (NAME-i for several queues) instead of a
                         unique name
  --keep                 do not delete queues/exchange at the end
  --exchange NAME        publish to exchange NAME with --routing-key instead
                         of the default exchange; NAME is declared (unless
                         amq.*) on both brokers and never deleted; the queue
                         is bound to it on the consuming broker. One queue
  --exchange-type TYPE   type of --exchange (default direct)
  --routing-key KEY      routing and binding key (default: the queue name)
  --warm-up SECONDS      before measuring, publish probe messages until one
                         reaches the queue (e.g. a federation link is up);
                         fail after SECONDS. Probes are not counted, and
                         late ones are ignored by the consumers
Workload
  --messages N           messages per publisher (default 100000)
  --duration SECONDS     publish for this long instead of --messages
  --size BYTES           body size, at least 24 (default 100)
  --persistent           delivery-mode 2
  --confirm WINDOW       publisher confirms, at most WINDOW unconfirmed
                         (default 0 = no confirms)
  --prefetch N           basic.qos prefetch-count (default 0 = unlimited)
  --ack auto|manual      consumer acknowledgements (default auto)
  --multiple-ack N       manual acks: one ack(multiple) per N deliveries
                         (default 1 = ack every delivery)
  --rate MSG_PER_S       fixed publish rate per publisher, for latency
  --max-backlog N        a publisher pauses while more than N of its
                         messages are published but not consumed
                         (default 0 = unlimited)
Modes
  --mode run             publish and consume (default)
  --mode idle-connections [N]
                         open N connections (or --connections N) with one
                         channel each, hold them --hold seconds, report the
                         broker's memory
  --mode wait-ready      retry connecting until the broker answers and (with
                         --queue-name) the queue holds --expect messages;
                         report how long that took (restart time)
  --mode delete          delete the queues named by --queue-name (and
                         --queues N for NAME-i)
  --mode declare         declare --exchange (--exchange-type, --durable) on
                         --url and --consume-url, then exit
  --connections N        connections for idle-connections
  --hold SECONDS         how long to hold idle connections (default 3)
  --expect N             wait-ready: messages the queue must hold
  --timeout SECONDS      wait-ready: give up after (default 120)
Reporting
  --broker-pid PID       sample VmRSS (/proc/PID/status) and CPU time of the
                         broker during the run
  --consume-broker-pid PID
                         the same for the broker of --consume-url
  --settle SECONDS       wait before the final memory sample (default 0)
  --stall-timeout SECS   fail when no message moves for this long (30)
  --label TEXT           copied into the JSON output
  --json                 print one JSON object instead of the table
  --help                 this text

Every body carries publisher id, sequence number and send time (steady
clock, same host). Consumers check per publisher and queue that sequences
increase, and at the end that every published message was consumed exactly
once per queue it was routed to. Exit status: 0 ok, 1 loss, duplicates,
reordering, nacks or a broker/connection error, 2 bad usage.
)";
}

namespace {

bool to_u64(const std::string& s, uint64_t& out) {
  if (s.empty())
    return false;
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoull(s.c_str(), &end, 10);
  if (*end != '\0' || errno != 0 || s[0] == '-')
    return false;
  out = v;
  return true;
}

bool to_double(const std::string& s, double& out) {
  if (s.empty())
    return false;
  char* end = nullptr;
  auto v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || v < 0)
    return false;
  out = v;
  return true;
}

} // namespace

std::string parse_options(int argc, char** argv, options& out) {
  using setter = std::function<bool(const std::string&)>;
  auto u64 = [](uint64_t& x) {
    return setter{[&x](const std::string& s) {
      return to_u64(s, x);
    }};
  };
  auto num = [](auto& x, uint64_t max) {
    return setter{[&x, max](const std::string& s) {
      uint64_t v;
      if (!to_u64(s, v) || v > max)
        return false;
      x = static_cast<std::remove_reference_t<decltype(x)>>(v);
      return true;
    }};
  };
  auto dbl = [](double& x) {
    return setter{[&x](const std::string& s) {
      return to_double(s, x);
    }};
  };
  auto str = [](std::string& x) {
    return setter{[&x](const std::string& s) {
      x = s;
      return true;
    }};
  };
  std::map<std::string, setter> with_value{
    {"--url", str(out.url_text)},
    {"--consume-url", str(out.consume_url_text)},
    {"--exchange", str(out.exchange)},
    {"--exchange-type", str(out.exchange_type)},
    {"--routing-key", str(out.routing_key)},
    {"--warm-up", dbl(out.warm_up)},
    {"--consume-broker-pid", num(out.consume_broker_pid, 1u << 30)},
    {"--mode", str(out.mode)},
    {"--publishers", num(out.publishers, 100000)},
    {"--consumers", num(out.consumers, 100000)},
    {"--queues", num(out.queues, 100000)},
    {"--fanout", num(out.fanout, 100000)},
    {"--queue-name", str(out.queue_name)},
    {"--messages", u64(out.messages)},
    {"--duration", dbl(out.duration)},
    {"--size", u64(out.size)},
    {"--confirm", num(out.confirm, 1u << 30)},
    {"--prefetch", num(out.prefetch, 65535)},
    {"--ack", setter{[&out](const std::string& s) {
       if (s != "auto" && s != "manual")
         return false;
       out.manual_ack = s == "manual";
       return true;
     }}},
    {"--multiple-ack", num(out.multiple_ack, 1u << 30)},
    {"--rate", dbl(out.rate)},
    {"--max-backlog", u64(out.max_backlog)},
    {"--broker-pid", num(out.broker_pid, 1u << 30)},
    {"--connections", num(out.connections, 1000000)},
    {"--hold", dbl(out.hold)},
    {"--expect", u64(out.expect)},
    {"--timeout", dbl(out.timeout)},
    {"--settle", dbl(out.settle)},
    {"--stall-timeout", dbl(out.stall_timeout)},
    {"--label", str(out.label)},
  };
  std::map<std::string, bool*> flags{
    {"--durable", &out.durable},
    {"--keep", &out.keep},
    {"--persistent", &out.persistent},
    {"--json", &out.json},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h")
      return "help";
    std::string value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg[0] == '-') {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    if (auto f = flags.find(arg); f != flags.end() && !inline_value) {
      *f->second = true;
      continue;
    }
    auto s = with_value.find(arg);
    if (s == with_value.end())
      return "unknown option " + arg;
    if (!inline_value) {
      if (i + 1 >= argc)
        return arg + " needs a value";
      value = argv[++i];
    }
    if (!s->second(value))
      return "bad value for " + arg + ": " + value;
    // "--mode idle-connections 10000": a number right after the mode.
    if (arg == "--mode" && value == "idle-connections" && i + 1 < argc) {
      uint64_t n;
      if (to_u64(argv[i + 1], n) && n <= 1000000) {
        out.connections = static_cast<int>(n);
        ++i;
      }
    }
  }
  if (auto err = parse_url(out.url_text, out.url); !err.empty())
    return err;
  if (out.consume_url_text.empty())
    out.consume_url = out.url;
  else if (auto err = parse_url(out.consume_url_text, out.consume_url);
           !err.empty())
    return "--consume-url: " + err;
  if (!out.exchange.empty() && (out.fanout > 0 || out.queues != 1))
    return "--exchange takes one queue (no --fanout, --queues 1)";
  if (out.exchange.empty() && !out.routing_key.empty())
    return "--routing-key needs --exchange";
  if (out.mode != "run" && out.mode != "idle-connections"
      && out.mode != "wait-ready" && out.mode != "delete"
      && out.mode != "declare")
    return "unknown mode " + out.mode;
  if (out.size < 24)
    return "--size must be at least 24 (the body carries a 24-byte stamp)";
  if (out.publishers < 1 && out.mode == "run")
    return "--publishers must be at least 1";
  if (out.queues < 1)
    return "--queues must be at least 1";
  int nq = out.fanout > 0 ? out.fanout : out.queues;
  if (out.consumers > 0 && out.consumers < nq)
    return "every queue needs a consumer: --consumers must be 0 or at least "
           + std::to_string(nq);
  if (out.fanout == 0 && out.publishers < out.queues && out.mode == "run")
    return "--queues must not exceed --publishers (a queue nobody publishes "
           "to)";
  if (out.mode == "idle-connections" && out.connections < 1)
    return "idle-connections needs a count";
  if (out.multiple_ack < 1)
    out.multiple_ack = 1;
  return {};
}

} // namespace flotilla::bench
