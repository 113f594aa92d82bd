// flotilla: the administration CLI of a Flotilla broker. It speaks only the
// management protocol (AMQP messages to qmf.default.direct, see
// docs/management.md), so anything it does any AMQP client can do.
//
// Exit codes: 0 success; 1 the broker refused the request; 2 bad usage;
// 3 cannot connect, login refused or timeout; 4 not found; 5 permission
// denied.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "apps/cli_errors.hpp"
#include "apps/flotilla_route.hpp"
#include "management/client.hpp"
#include "protocol/management.pb.h"

namespace gp = google::protobuf;
namespace mg = flotilla::management;

using namespace flotilla::cli;

namespace {

// -- help ---------------------------------------------------------------------

const char* main_help = R"(Usage: flotilla [OPTIONS] COMMAND [ARGS...]

Administers a Flotilla broker through its management exchange
(qmf.default.direct); see docs/management.md.

Commands:
  overview                      the node, totals, rates and alarms
  health                        liveness checks (exit 1 if one fails)
  list KIND [PATTERN]           objects of a kind (queue, exchange, binding,
                                connection, channel, consumer, vhost, user,
                                broker, link, bridge, ha_replicator,
                                cluster_member)
  get KIND NAME                 one object with all its fields
  config add|del queue|exchange|binding ...
                                create or delete (like qpid-config)
  purge QUEUE                   remove the ready messages of a queue
  peek QUEUE [COUNT]            show the next ready messages, left in place
  close-connection ID [REASON]  close a client connection
  stat [connections|queues|exchanges|consumers|channels|links|routes]
                                statistics tables (like qpid-stat)
  events [KEY]                  print broker events (like qpid-printevents)
  definitions export|import FILE
                                topology as JSON (RabbitMQ's format)
  link add|del|list|cut|heal, route add|del|list|flush|map|dynamic|queue ...
                                federation (like qpid-route; see
                                'flotilla route --help')

Options (anywhere on the line):
  -b, --broker URL   amqp://USER:PASS@HOST:PORT/VHOST (also Qpid's
                     USER/PASS@HOST:PORT); default $FLOTILLA_BROKER or
                     amqp://guest:guest@127.0.0.1:5672/
      --vhost NAME   act on vhost NAME (default: the URL's vhost)
      --node NAME    ask the federated broker named NAME (its --name)
                     through the -b broker; needs dynamic routes on
                     qmf.default.direct both ways (docs/federation.md)
      --json         print the broker's JSON answer instead of tables
  -t, --timeout S    seconds to wait for the broker (default 10)
  -h, --help         help; 'flotilla COMMAND --help' for a command

Exit codes: 0 ok, 1 refused by the broker, 2 bad usage, 3 cannot connect or
login refused, 4 not found, 5 permission denied.
)";

const std::map<std::string, std::string> verb_help = {
  {"overview", R"(Usage: flotilla overview [--json]

Prints the node name, version, uptime, memory, object counts, message totals,
rates (messages per second over the last 10 s) and active alarms.
)"},
  {"health", R"(Usage: flotilla health [--json]

Runs the broker's checks (every vhost answers, no resource alarm). Exits 0
when all pass, 1 otherwise.
)"},
  {"list", R"(Usage: flotilla list KIND [PATTERN] [--page N] [--page-size N]
                     [--sort KEY] [--reverse] [--json]

Lists objects of KIND: queue, exchange, binding, connection, channel,
consumer, vhost, user, broker, link, bridge, ha_replicator, cluster_member.
PATTERN is a shell pattern on the name ('orders.*'). Without --page every
page is fetched; with it only that page is (the broker pages server-side).
Sort keys: name; for queues messages, messages_ready, messages_unacked,
consumers, bytes, publish_rate, deliver_rate, ack_rate; for connections
id, published, delivered, channels; for exchanges type, bindings.
)"},
  {"get", R"(Usage: flotilla get KIND NAME [--json]

Prints one object (queue, exchange, connection by id, vhost, user, broker)
with all its fields.
)"},
  {"config", R"(Usage:
  flotilla config add queue NAME [--durable] [--auto-delete] [--exclusive]
        [--alternate-exchange EXCHANGE] [--replicate none|configuration|all]
        [--max-length N] [--max-length-bytes N] [--message-ttl MS]
        [--argument KEY=VALUE]...
  flotilla config add exchange TYPE NAME [--durable] [--auto-delete]
        [--internal] [--alternate-exchange EXCHANGE]
        [--replicate none|configuration|all] [--argument KEY=VALUE]...
  flotilla config add binding EXCHANGE DESTINATION [KEY]
        [--exchange-destination] [--argument KEY=VALUE]...
  flotilla config del queue NAME [--force] [--force-if-not-empty]
        [--force-if-used]
  flotilla config del exchange NAME [--if-unused]
  flotilla config del binding EXCHANGE DESTINATION [KEY]
        [--exchange-destination] [--argument KEY=VALUE]...

TYPE is direct, fanout, topic or headers. A queue's alternate exchange is
its dead-letter exchange. --exclusive is refused: an exclusive queue belongs
to the connection that declares it. Argument values that look like
integers or true/false are sent as such, other values as strings.
'config del queue' refuses a queue with messages or consumers unless
--force (or the narrower --force-if-not-empty / --force-if-used).
Changes need the administrator tag.
)"},
  {"purge", R"(Usage: flotilla purge QUEUE

Removes every ready message of QUEUE (unacked ones stay) and prints how many.
)"},
  {"peek", R"(Usage: flotilla peek QUEUE [COUNT]

Shows the next COUNT (default 10, at most 100) ready messages of QUEUE in
delivery order, without taking them: routing key, flags, size and the start
of the body. --json prints the broker's reply (bodies in base64).
)"},
  {"close-connection", R"(Usage: flotilla close-connection ID [REASON]

Closes connection ID (see 'flotilla list connection') with
320 CONNECTION_FORCED and REASON.
)"},
  {"stat",
   R"(Usage: flotilla stat [connections|queues|exchanges|consumers|channels|
                      links|routes]
                     [-c|-q|-e|-u] [--sort KEY] [--reverse] [--top N]
                     [PATTERN] [--json]

Statistics tables, like qpid-stat (-c connections, -q queues, -e exchanges,
-u consumers). Without a table name: the overview. Queues show depth
(messages, ready, unacked), counters (msgIn, msgOut) and rates per second.
Links show their state and the messages and bytes their routes carried;
routes (federation bridges: in, push, and out for exports to other brokers)
show messages and bytes in and out, backlog, lag and drops.
--top N shows the first N rows (with --sort, e.g. --sort messages --reverse).
)"},
  {"events", R"(Usage: flotilla events [KEY] [--count N] [--duration S] [--json]

Subscribes to qmf.default.topic with binding KEY (default '#') and prints
each event until interrupted, until N events arrived or S seconds passed.
Routing keys are KIND.ACTION: queue.created, queue.deleted,
exchange.created, exchange.deleted, binding.created, binding.deleted,
connection.opened, connection.closed, link.state (federation links:
Waiting, Connecting, Operational, Failed, Closed), alarm.raised,
alarm.cleared.
)"},
  {"definitions", R"(Usage: flotilla definitions export FILE
       flotilla definitions import FILE

export writes the vhosts, exchanges, queues and bindings of every vhost the
user may see (built-in exchanges and exclusive queues left out) as JSON in
RabbitMQ's definitions format ('-' is standard output). import creates what
a file describes (existing equivalent objects are fine); 'flotillad
--definitions FILE' does the same at startup.
)"},
};

// -- command line -------------------------------------------------------------

struct options {
  std::string broker;
  std::string vhost;
  std::string node; ///< --node: ask this broker (by name) through -b's.
  bool json = false;
  int timeout = 10;
  bool help = false;
  std::vector<std::string> args; ///< Everything else, in order.
};

options parse_globals(int argc, char** argv) {
  options o;
  const char* env = std::getenv("FLOTILLA_BROKER");
  o.broker = env != nullptr ? env : "amqp://guest:guest@127.0.0.1:5672/";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      auto eq = a.find('=');
      if (a.compare(0, 2, "--") == 0 && eq != std::string::npos)
        return a.substr(eq + 1);
      if (i + 1 >= argc)
        throw usage_error{std::string{name} + " needs a value"};
      return argv[++i];
    };
    auto is = [&](const char* s) {
      return a == s
             || a.compare(0, std::string{s}.size() + 1, std::string{s} + "=")
                  == 0;
    };
    if (a == "-b" || is("--broker") || is("--broker-addr")) {
      o.broker = value("--broker");
    } else if (is("--vhost")) {
      o.vhost = value("--vhost");
    } else if (is("--node")) {
      o.node = value("--node");
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "-t" || is("--timeout")) {
      auto v = value("--timeout");
      char* end = nullptr;
      auto n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n <= 0)
        throw usage_error{"--timeout needs a positive number of seconds"};
      o.timeout = static_cast<int>(n);
    } else if (a == "-h" || a == "--help") {
      o.help = true;
    } else {
      o.args.push_back(a);
    }
  }
  return o;
}

/// The arguments of one command: positionals and --flags.
struct command_args {
  std::vector<std::string> pos;
  std::map<std::string, std::vector<std::string>> opts;

  bool flag(const std::string& name) const {
    return opts.count(name) > 0;
  }
  std::string get(const std::string& name, const std::string& def = {}) const {
    auto i = opts.find(name);
    return i == opts.end() || i->second.empty() ? def : i->second.back();
  }
};

/// Splits `args` (after the verb words) by the options `spec` allows: name
/// -> takes a value.
command_args split(const std::vector<std::string>& args, size_t from,
                   const std::map<std::string, bool>& spec) {
  command_args r;
  for (size_t i = from; i < args.size(); ++i) {
    auto& a = args[i];
    if (a.size() > 1 && a[0] == '-' && a != "-") {
      auto name = a;
      std::string inline_value;
      bool has_inline = false;
      if (auto eq = a.find('='); eq != std::string::npos && a[1] == '-') {
        name = a.substr(0, eq);
        inline_value = a.substr(eq + 1);
        has_inline = true;
      }
      auto s = spec.find(name);
      if (s == spec.end())
        throw usage_error{"unknown option '" + name + "'"};
      if (!s->second) {
        r.opts[name];
        continue;
      }
      if (has_inline) {
        r.opts[name].push_back(inline_value);
      } else {
        if (i + 1 >= args.size())
          throw usage_error{name + " needs a value"};
        r.opts[name].push_back(args[++i]);
      }
    } else {
      r.pos.push_back(a);
    }
  }
  return r;
}

uint32_t to_uint(const std::string& text, const char* what) {
  char* end = nullptr;
  auto v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0')
    throw usage_error{std::string{what} + " needs a number, got '" + text
                      + "'"};
  return static_cast<uint32_t>(v);
}

mg::Kind parse_kind(const std::string& text) {
  auto t = text;
  if (t.size() > 1 && t.back() == 's' && t != "ha_replicators")
    t.pop_back(); // "queues" -> "queue"
  if (t == "ha_replicators")
    t = "ha_replicator";
  std::string upper = t;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) {
                   return std::toupper(c);
                 });
  mg::Kind k;
  if (!mg::Kind_Parse(upper, &k) || k == mg::KIND_UNSPECIFIED)
    throw usage_error{"unknown kind '" + text + "'"};
  return k;
}

/// Sets a --argument KEY=VALUE into `s`: integers and booleans typed.
void put_argument(gp::Struct& s, const std::string& kv) {
  auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    throw usage_error{"--argument needs KEY=VALUE, got '" + kv + "'"};
  auto key = kv.substr(0, eq);
  auto value = kv.substr(eq + 1);
  auto& v = (*s.mutable_fields())[key];
  char* end = nullptr;
  auto n = std::strtoll(value.c_str(), &end, 10);
  if (!value.empty() && *end == '\0')
    v.set_number_value(static_cast<double>(n));
  else if (value == "true" || value == "false")
    v.set_bool_value(value == "true");
  else
    v.set_string_value(value);
}

// -- talking to the broker
// ------------------------------------------------------

class session {
public:
  explicit session(const options& o)
    : client_(std::chrono::seconds(o.timeout)), vhost_(o.vhost) {
    auto err = mg::parse_broker_url(o.broker, url_);
    if (!err.empty())
      throw usage_error{err};
    client_.open(url_);
    if (!o.node.empty())
      client_.set_node(o.node);
  }

  /// Sends `req` (with the session's vhost) and returns the response;
  /// throws broker_error for a status >= 400 unless `allow_error`.
  mg::Response call(mg::Request req, bool allow_error = false) {
    if (req.vhost().empty())
      req.set_vhost(vhost_);
    mg::Response resp;
    client_.call(req, resp);
    if (resp.status() >= 400 && !allow_error)
      throw broker_error{resp.status(), resp.error()};
    return resp;
  }

  /// Every object of `kind` (all pages).
  std::vector<mg::Object> list_all(mg::Kind kind, const std::string& vhost,
                                   const std::string& pattern = {},
                                   const std::string& sort = {},
                                   bool reverse = false) {
    std::vector<mg::Object> all;
    for (uint32_t page = 1;; ++page) {
      mg::Request req;
      req.set_method(mg::LIST);
      req.set_kind(kind);
      req.set_vhost(vhost);
      auto& l = *req.mutable_list();
      l.set_page(page);
      l.set_page_size(1000);
      l.set_pattern(pattern);
      l.set_sort(sort);
      l.set_sort_reverse(reverse);
      auto resp = call(req);
      for (auto& o : resp.objects())
        all.push_back(o);
      if (page >= resp.page_count())
        return all;
    }
  }

  mg::client& raw() {
    return client_;
  }

  const mg::broker_url& url() const {
    return url_;
  }

private:
  mg::broker_url url_;
  mg::client client_;
  std::string vhost_;
};

std::string to_json(const gp::Message& m) {
  gp::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  o.add_whitespace = true;
  std::string out;
  (void)gp::util::MessageToJsonString(m, &out, o);
  return out;
}

// -- tables
// ---------------------------------------------------------------------

using row = std::vector<std::string>;

void print_table(const row& header, const std::vector<row>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i)
    width[i] = header[i].size();
  for (auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const row& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size())
        s += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(header);
  row rule;
  for (auto w : width)
    rule.push_back(std::string(w, '='));
  line(rule);
  for (auto& r : rows)
    line(r);
}

std::string yn(bool b) {
  return b ? "Y" : "";
}

std::string num(uint64_t n) {
  return std::to_string(n);
}

std::string rate(double r) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", r);
  return buf;
}

std::string args_text(const gp::Struct& s) {
  if (s.fields().empty())
    return "";
  std::string out;
  (void)gp::util::MessageToJsonString(s, &out);
  return out;
}

std::string age(int64_t since_ms) {
  auto now = static_cast<int64_t>(std::time(nullptr)) * 1000;
  auto s = std::max<int64_t>(0, (now - since_ms) / 1000);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(s / 3600),
                  (long long)(s % 3600 / 60));
  else if (s >= 60)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(s / 60),
                  (long long)(s % 60));
  else
    std::snprintf(buf, sizeof(buf), "%llds", (long long)s);
  return buf;
}

std::string exchange_label(const std::string& name) {
  return name.empty() ? "(default)" : name;
}

void print_objects(mg::Kind kind, const std::vector<mg::Object>& objs,
                   bool stats) {
  std::vector<row> rows;
  switch (kind) {
    case mg::QUEUE:
      for (auto& o : objs) {
        auto& q = o.queue();
        if (stats)
          rows.push_back(
            {q.name(), yn(q.durable()), yn(q.auto_delete()), yn(q.exclusive()),
             num(q.messages()), num(q.messages_ready()),
             num(q.messages_unacked()), num(q.stats().published()),
             num(q.stats().delivered()), num(q.bytes_ready()),
             num(q.consumers()), rate(q.stats().rates().publish()),
             rate(q.stats().rates().deliver()), rate(q.stats().rates().ack())});
        else
          rows.push_back({q.name(), yn(q.durable()), yn(q.auto_delete()),
                          yn(q.exclusive()), num(q.messages()),
                          num(q.consumers()), args_text(q.arguments())});
      }
      if (stats)
        print_table({"queue", "dur", "autoDel", "excl", "msg", "ready",
                     "unacked", "msgIn", "msgOut", "bytes", "cons", "in/s",
                     "out/s", "ack/s"},
                    rows);
      else
        print_table(
          {"queue", "dur", "autoDel", "excl", "msg", "cons", "arguments"},
          rows);
      return;
    case mg::EXCHANGE:
      if (stats) {
        for (auto& o : objs) {
          auto& x = o.exchange();
          rows.push_back({exchange_label(x.name()), x.type(), yn(x.durable()),
                          num(x.bindings()), num(x.messages_in()),
                          num(x.messages_out()), num(x.unroutable())});
        }
        print_table(
          {"exchange", "type", "dur", "bind", "msgIn", "msgOut", "unroutable"},
          rows);
        return;
      }
      for (auto& o : objs) {
        auto& x = o.exchange();
        rows.push_back({exchange_label(x.name()), x.type(), yn(x.durable()),
                        yn(x.auto_delete()), yn(x.internal()),
                        num(x.bindings()), x.alternate_exchange(),
                        args_text(x.arguments())});
      }
      print_table({"exchange", "type", "dur", "autoDel", "internal", "bind",
                   "altExchange", "arguments"},
                  rows);
      return;
    case mg::BINDING:
      for (auto& o : objs) {
        auto& b = o.binding();
        rows.push_back({b.source(), b.destination(), b.destination_type(),
                        b.routing_key(), args_text(b.arguments())});
      }
      print_table({"exchange", "destination", "type", "key", "arguments"},
                  rows);
      return;
    case mg::CONNECTION:
      if (stats) {
        for (auto& o : objs) {
          auto& c = o.connection();
          rows.push_back({num(c.id()), c.peer(), c.user(), num(c.channels()),
                          num(c.published()), num(c.delivered()),
                          num(c.published_bytes()), num(c.delivered_bytes()),
                          rate(c.rates().publish()), rate(c.rates().deliver()),
                          age(c.connected_at_ms())});
        }
        print_table({"id", "peer", "user", "chans", "msgIn", "msgOut",
                     "bytesIn", "bytesOut", "in/s", "out/s", "connected"},
                    rows);
        return;
      }
      for (auto& o : objs) {
        auto& c = o.connection();
        rows.push_back({num(c.id()), c.peer(), c.user(), c.vhost(),
                        c.client_product(), num(c.channels()),
                        num(c.consumers()), num(c.published()),
                        num(c.delivered()), age(c.connected_at_ms())});
      }
      print_table({"id", "peer", "user", "vhost", "client", "chans", "cons",
                   "msgIn", "msgOut", "connected"},
                  rows);
      return;
    case mg::CHANNEL:
      for (auto& o : objs) {
        auto& c = o.channel();
        rows.push_back({num(c.connection()), num(c.number()), c.user(),
                        num(c.prefetch()), num(c.global_prefetch()),
                        num(c.unacked()), num(c.consumers()), yn(c.confirm()),
                        yn(c.transactional())});
      }
      print_table({"connection", "channel", "user", "prefetch", "global",
                   "unacked", "cons", "confirm", "tx"},
                  rows);
      return;
    case mg::CONSUMER:
      for (auto& o : objs) {
        auto& c = o.consumer();
        rows.push_back({c.queue(), c.tag(), num(c.connection()),
                        num(c.channel()), c.user(), yn(c.ack_required())});
      }
      print_table({"queue", "tag", "connection", "channel", "user", "ack"},
                  rows);
      return;
    case mg::VHOST:
      for (auto& o : objs) {
        auto& v = o.vhost();
        rows.push_back({v.name(), num(v.queues()), num(v.exchanges()),
                        num(v.connections())});
      }
      print_table({"vhost", "queues", "exchanges", "connections"}, rows);
      return;
    case mg::USER:
      for (auto& o : objs) {
        auto& u = o.user();
        std::string tags;
        for (auto& t : u.tags())
          tags += (tags.empty() ? "" : ",") + t;
        std::string vhosts;
        for (auto& v : u.vhosts())
          vhosts += (vhosts.empty() ? "" : ",") + v;
        rows.push_back({u.name(), tags, vhosts});
      }
      print_table({"user", "tags", "vhosts"}, rows);
      return;
    case mg::BROKER:
      for (auto& o : objs) {
        auto& b = o.broker();
        rows.push_back({b.node(), b.cluster(), b.version(),
                        num(b.uptime_ms() / 1000) + "s",
                        num(b.memory_bytes() >> 20) + " MiB"});
      }
      print_table({"node", "cluster", "version", "uptime", "memory"}, rows);
      return;
    case mg::LINK:
      for (auto& o : objs) {
        auto& l = o.link();
        rows.push_back({l.name(), l.remote_node(), l.state(), num(l.bridges()),
                        num(l.messages_in()), num(l.bytes_in()),
                        num(l.messages_out()), num(l.bytes_out()),
                        num(l.connects()), l.last_error()});
      }
      print_table({"link", "remote", "state", "bridges", "msgIn", "bytesIn",
                   "msgOut", "bytesOut", "connects", "lastError"},
                  rows);
      return;
    case mg::BRIDGE:
      for (auto& o : objs) {
        auto& b = o.bridge();
        auto dropped
          = b.dropped_loop() + b.dropped_duplicate() + b.dropped_hops();
        rows.push_back(
          {b.name(), b.direction(),
           b.direction() == "out" || b.link().empty() ? b.peer() : b.link(),
           b.state() + (b.alarm() ? " ALARM" : ""), num(b.messages_in()),
           num(b.messages_out()), num(b.bytes_in()), num(b.bytes_out()),
           num(b.backlog()),
           num(static_cast<uint64_t>(std::max<int64_t>(0, b.lag_ms()))) + "ms",
           num(dropped), num(b.refused()), b.last_error()});
      }
      print_table({"route", "dir", "link/peer", "state", "msgIn", "msgOut",
                   "bytesIn", "bytesOut", "backlog", "lag", "dropped",
                   "refused", "lastError"},
                  rows);
      return;
    default:
      // HA and cluster objects do not exist yet.
      std::cout << "(no " << mg::Kind_Name(kind) << " objects)\n";
      return;
  }
}

// -- commands
// -------------------------------------------------------------------

int cmd_overview(session& s, const options& o) {
  mg::Request req;
  req.set_method(mg::OVERVIEW);
  auto resp = s.call(req);
  if (o.json) {
    std::cout << to_json(resp);
    return exit_ok;
  }
  auto& v = resp.overview();
  auto& b = v.broker();
  std::cout << "node        " << b.node() << " (cluster " << b.cluster()
            << ", version " << b.version() << ")\n"
            << "uptime      " << b.uptime_ms() / 1000 << " s\n"
            << "memory      " << (b.memory_bytes() >> 20) << " MiB\n"
            << "vhosts      " << v.vhosts() << "\n"
            << "exchanges   " << v.exchanges() << "\n"
            << "queues      " << v.queues() << "\n"
            << "bindings    " << v.bindings() << "\n"
            << "connections " << v.connections() << " (" << v.channels()
            << " channels, " << v.consumers() << " consumers)\n"
            << "messages    " << v.messages_ready() + v.messages_unacked()
            << " (" << v.messages_ready() << " ready, " << v.messages_unacked()
            << " unacked, " << v.bytes_ready() << " bytes)\n"
            << "rates       publish " << rate(v.rates().publish())
            << "/s, deliver " << rate(v.rates().deliver()) << "/s, ack "
            << rate(v.rates().ack()) << "/s\n";
  std::string alarms;
  for (auto& a : v.alarms())
    alarms += (alarms.empty() ? "" : ", ") + a;
  std::cout << "alarms      " << (alarms.empty() ? "none" : alarms) << "\n";
  return exit_ok;
}

int cmd_health(session& s, const options& o) {
  mg::Request req;
  req.set_method(mg::HEALTH);
  auto resp = s.call(req, true);
  if (o.json) {
    std::cout << to_json(resp);
  } else {
    std::vector<row> rows;
    for (auto& c : resp.health().checks())
      rows.push_back({c.name(), c.ok() ? "ok" : "FAILED", c.detail()});
    print_table({"check", "status", "detail"}, rows);
    std::cout << "health: " << resp.health().status() << "\n";
  }
  return resp.status() < 400 ? exit_ok : exit_refused;
}

/// Prints every object of a listing: one JSON reply with all of them
/// (--json), else a table (with statistics columns for `stat`).
int print_all(mg::Kind kind, const std::vector<mg::Object>& objs,
              const options& o, bool stats) {
  if (o.json) {
    mg::Response all;
    all.set_status(200);
    for (auto& x : objs)
      *all.add_objects() = x;
    all.set_total(objs.size());
    std::cout << to_json(all);
    return exit_ok;
  }
  print_objects(kind, objs, stats);
  return exit_ok;
}

int cmd_list(session& s, const options& o) {
  auto a = split(o.args, 1,
                 {{"--page", true},
                  {"--page-size", true},
                  {"--sort", true},
                  {"--reverse", false},
                  {"--pattern", true}});
  if (a.pos.empty())
    throw usage_error{"list needs a KIND"};
  auto kind = parse_kind(a.pos[0]);
  auto pattern = a.get("--pattern", a.pos.size() > 1 ? a.pos[1] : "");
  if (a.flag("--page") || a.flag("--page-size")) {
    mg::Request req;
    req.set_method(mg::LIST);
    req.set_kind(kind);
    auto& l = *req.mutable_list();
    l.set_page(to_uint(a.get("--page", "1"), "--page"));
    l.set_page_size(to_uint(a.get("--page-size", "100"), "--page-size"));
    l.set_pattern(pattern);
    l.set_sort(a.get("--sort"));
    l.set_sort_reverse(a.flag("--reverse"));
    auto resp = s.call(req);
    if (o.json) {
      std::cout << to_json(resp);
      return exit_ok;
    }
    std::vector<mg::Object> objs(resp.objects().begin(), resp.objects().end());
    print_objects(kind, objs, false);
    std::cout << "page " << resp.page() << " of " << resp.page_count() << " ("
              << resp.total() << " in all)\n";
    return exit_ok;
  }
  auto objs
    = s.list_all(kind, "", pattern, a.get("--sort"), a.flag("--reverse"));
  return print_all(kind, objs, o, false);
}

int cmd_get(session& s, const options& o) {
  if (o.args.size() < 3)
    throw usage_error{"get needs KIND and NAME"};
  mg::Request req;
  req.set_method(mg::GET);
  req.set_kind(parse_kind(o.args[1]));
  req.set_name(o.args[2]);
  auto resp = s.call(req);
  if (o.json) {
    std::cout << to_json(resp);
    return exit_ok;
  }
  // Every field, one per line, from the JSON mapping.
  for (auto& obj : resp.objects()) {
    gp::Struct st;
    std::string json;
    gp::util::JsonPrintOptions p;
    p.preserve_proto_field_names = true;
    p.always_print_primitive_fields = true;
    (void)gp::util::MessageToJsonString(obj, &json, p);
    (void)gp::util::JsonStringToMessage(json, &st);
    for (auto& [kind, value] : st.fields()) {
      (void)kind;
      std::function<void(const std::string&, const gp::Value&)> show;
      show = [&](const std::string& prefix, const gp::Value& v) {
        if (v.has_struct_value() && !v.struct_value().fields().empty()
            && prefix.find("arguments") == std::string::npos) {
          std::map<std::string, gp::Value> sorted(
            v.struct_value().fields().begin(), v.struct_value().fields().end());
          for (auto& [k, x] : sorted)
            show(prefix.empty() ? k : prefix + "." + k, x);
          return;
        }
        std::string text;
        if (v.has_string_value())
          text = v.string_value();
        else
          (void)gp::util::MessageToJsonString(v, &text);
        std::cout << prefix << ": " << text << "\n";
      };
      show("", value);
    }
  }
  return exit_ok;
}

int report_change(const mg::Response& resp, const options& o,
                  const std::string& done) {
  if (o.json)
    std::cout << to_json(resp);
  else
    std::cout << done << "\n";
  return exit_ok;
}

int cmd_config(session& s, const options& o) {
  if (o.args.size() < 3)
    throw usage_error{"config needs add|del and queue|exchange|binding"};
  auto& op = o.args[1];
  auto& what = o.args[2];
  if (op != "add" && op != "del")
    throw usage_error{"config takes add or del, not '" + op + "'"};
  bool add = op == "add";
  mg::Request req;
  req.set_method(add ? mg::CREATE : mg::DELETE);
  if (what == "queue") {
    auto a = split(o.args, 3,
                   {{"--durable", false},
                    {"--auto-delete", false},
                    {"--exclusive", false},
                    {"--alternate-exchange", true},
                    {"--replicate", true},
                    {"--max-length", true},
                    {"--max-length-bytes", true},
                    {"--message-ttl", true},
                    {"--argument", true},
                    {"--force", false},
                    {"--force-if-not-empty", false},
                    {"--force-if-used", false}});
    if (a.pos.size() != 1)
      throw usage_error{"config " + op + " queue needs exactly one NAME"};
    req.set_kind(mg::QUEUE);
    if (add) {
      auto& q = *req.mutable_queue();
      q.set_name(a.pos[0]);
      q.set_durable(a.flag("--durable"));
      q.set_auto_delete(a.flag("--auto-delete"));
      q.set_exclusive(a.flag("--exclusive"));
      q.set_alternate_exchange(a.get("--alternate-exchange"));
      q.set_replicate(a.get("--replicate"));
      auto& args = *q.mutable_arguments();
      for (auto [opt, key] :
           {std::pair{"--max-length", "x-max-length"},
            std::pair{"--max-length-bytes", "x-max-length-bytes"},
            std::pair{"--message-ttl", "x-message-ttl"}})
        if (a.flag(opt))
          (*args.mutable_fields())[key].set_number_value(
            to_uint(a.get(opt), opt));
      if (a.opts.count("--argument"))
        for (auto& kv : a.opts.at("--argument"))
          put_argument(args, kv);
      auto resp = s.call(req);
      return report_change(resp, o,
                           resp.status() == 201
                             ? "queue '" + a.pos[0] + "' created"
                             : "queue '" + a.pos[0] + "' exists already");
    }
    req.set_name(a.pos[0]);
    bool force = a.flag("--force");
    req.set_if_empty(!force && !a.flag("--force-if-not-empty"));
    req.set_if_unused(!force && !a.flag("--force-if-used"));
    auto resp = s.call(req);
    return report_change(resp, o,
                         "queue '" + a.pos[0] + "' deleted ("
                           + num(resp.message_count()) + " messages)");
  }
  if (what == "exchange") {
    auto a = split(o.args, 3,
                   {{"--durable", false},
                    {"--auto-delete", false},
                    {"--internal", false},
                    {"--alternate-exchange", true},
                    {"--replicate", true},
                    {"--argument", true},
                    {"--if-unused", false}});
    req.set_kind(mg::EXCHANGE);
    if (add) {
      if (a.pos.size() != 2)
        throw usage_error{"config add exchange needs TYPE and NAME"};
      auto& x = *req.mutable_exchange();
      x.set_type(a.pos[0]);
      x.set_name(a.pos[1]);
      x.set_durable(a.flag("--durable"));
      x.set_auto_delete(a.flag("--auto-delete"));
      x.set_internal(a.flag("--internal"));
      x.set_alternate_exchange(a.get("--alternate-exchange"));
      x.set_replicate(a.get("--replicate"));
      if (a.opts.count("--argument"))
        for (auto& kv : a.opts.at("--argument"))
          put_argument(*x.mutable_arguments(), kv);
      auto resp = s.call(req);
      return report_change(resp, o,
                           resp.status() == 201
                             ? "exchange '" + a.pos[1] + "' created"
                             : "exchange '" + a.pos[1] + "' exists already");
    }
    if (a.pos.size() != 1)
      throw usage_error{"config del exchange needs exactly one NAME"};
    req.set_name(a.pos[0]);
    req.set_if_unused(a.flag("--if-unused"));
    auto resp = s.call(req);
    return report_change(resp, o, "exchange '" + a.pos[0] + "' deleted");
  }
  if (what == "binding") {
    auto a = split(o.args, 3,
                   {{"--exchange-destination", false}, {"--argument", true}});
    if (a.pos.size() < 2 || a.pos.size() > 3)
      throw usage_error{"config " + op
                        + " binding needs EXCHANGE DESTINATION [KEY]"};
    req.set_kind(mg::BINDING);
    auto& b = *req.mutable_binding();
    b.set_source(a.pos[0]);
    b.set_destination(a.pos[1]);
    b.set_destination_type(a.flag("--exchange-destination") ? "exchange"
                                                            : "queue");
    if (a.pos.size() == 3)
      b.set_routing_key(a.pos[2]);
    if (a.opts.count("--argument"))
      for (auto& kv : a.opts.at("--argument"))
        put_argument(*b.mutable_arguments(), kv);
    auto resp = s.call(req);
    return report_change(
      resp, o, std::string{"binding "} + (add ? "created" : "deleted"));
  }
  throw usage_error{"config " + op + " takes queue, exchange or binding, not '"
                    + what + "'"};
}

int cmd_purge(session& s, const options& o) {
  if (o.args.size() != 2)
    throw usage_error{"purge needs exactly one QUEUE"};
  mg::Request req;
  req.set_method(mg::PURGE);
  req.set_kind(mg::QUEUE);
  req.set_name(o.args[1]);
  auto resp = s.call(req);
  return report_change(resp, o,
                       "queue '" + o.args[1] + "' purged ("
                         + num(resp.message_count()) + " messages)");
}

int cmd_peek(session& s, const options& o) {
  if (o.args.size() < 2 || o.args.size() > 3)
    throw usage_error{"peek needs QUEUE [COUNT]"};
  mg::Request req;
  req.set_method(mg::PEEK);
  req.set_kind(mg::QUEUE);
  req.set_name(o.args[1]);
  if (o.args.size() == 3)
    req.set_count(to_uint(o.args[2], "COUNT"));
  auto resp = s.call(req);
  if (o.json) {
    std::cout << to_json(resp);
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  size_t i = 0;
  for (auto& m : resp.messages()) {
    std::string body = m.body().substr(0, 60);
    for (auto& ch : body)
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
        ch = '.';
    if (m.body_size() > body.size())
      body += "...";
    rows.push_back({num(++i), exchange_label(m.exchange()), m.routing_key(),
                    yn(m.redelivered()), num(m.body_size()), body});
  }
  print_table({"#", "exchange", "routing key", "redeliv", "bytes", "body"},
              rows);
  std::cout << "(" << resp.messages_size() << " of "
            << num(resp.message_count()) << " ready messages)\n";
  return exit_ok;
}

int cmd_close(session& s, const options& o) {
  if (o.args.size() < 2 || o.args.size() > 3)
    throw usage_error{"close-connection needs ID [REASON]"};
  mg::Request req;
  req.set_method(mg::CLOSE_CONNECTION);
  req.set_kind(mg::CONNECTION);
  req.set_name(o.args[1]);
  if (o.args.size() == 3)
    req.set_reason(o.args[2]);
  auto resp = s.call(req);
  return report_change(resp, o, "connection " + o.args[1] + " closed");
}

int cmd_stat(session& s, const options& o) {
  auto a = split(o.args, 1,
                 {{"-c", false},
                  {"-q", false},
                  {"-e", false},
                  {"-u", false},
                  {"-g", false},
                  {"--sort", true},
                  {"-S", true},
                  {"--reverse", false},
                  {"--top", true},
                  {"--pattern", true}});
  std::string table;
  if (a.flag("-c"))
    table = "connections";
  else if (a.flag("-q"))
    table = "queues";
  else if (a.flag("-e"))
    table = "exchanges";
  else if (a.flag("-u"))
    table = "consumers";
  size_t next = 0;
  if (table.empty() && !a.pos.empty() && !a.flag("-g")) {
    table = a.pos[0];
    next = 1;
  }
  if (table.empty())
    return cmd_overview(s, o);
  auto kind
    = table == "routes" || table == "route" ? mg::BRIDGE : parse_kind(table);
  if (kind != mg::CONNECTION && kind != mg::QUEUE && kind != mg::EXCHANGE
      && kind != mg::CONSUMER && kind != mg::CHANNEL && kind != mg::LINK
      && kind != mg::BRIDGE)
    throw usage_error{"stat shows connections, queues, exchanges, consumers, "
                      "channels, links or routes, not '"
                      + table + "'"};
  auto pattern = a.get("--pattern", a.pos.size() > next ? a.pos[next] : "");
  auto sort = a.get("--sort", a.get("-S"));
  std::vector<mg::Object> objs;
  if (a.flag("--top")) {
    mg::Request req;
    req.set_method(mg::LIST);
    req.set_kind(kind);
    auto& l = *req.mutable_list();
    l.set_page(1);
    l.set_page_size(to_uint(a.get("--top"), "--top"));
    l.set_pattern(pattern);
    l.set_sort(sort);
    l.set_sort_reverse(a.flag("--reverse"));
    auto resp = s.call(req);
    objs.assign(resp.objects().begin(), resp.objects().end());
  } else {
    objs = s.list_all(kind, "", pattern, sort, a.flag("--reverse"));
  }
  return print_all(kind, objs, o, true);
}

int cmd_events(session& s, const options& o) {
  auto a = split(o.args, 1, {{"--count", true}, {"--duration", true}});
  auto key = a.pos.empty() ? std::string{"#"} : a.pos[0];
  uint32_t count = a.flag("--count") ? to_uint(a.get("--count"), "--count") : 0;
  auto duration = std::chrono::milliseconds(
    a.flag("--duration")
      ? uint64_t{to_uint(a.get("--duration"), "--duration")} * 1000
      : 0);
  uint32_t seen = 0;
  s.raw().watch_events(
    key, duration,
    [&] {
      // The ready line tells scripts the subscription exists.
      std::cerr << "listening for events on qmf.default.topic (" << key << ")"
                << std::endl;
    },
    [&](const std::string& rk, const std::string& body) {
      if (o.json) {
        std::cout << body << "\n";
      } else {
        mg::Event ev;
        gp::util::JsonParseOptions p;
        p.ignore_unknown_fields = true;
        if (gp::util::JsonStringToMessage(body, &ev, p).ok()) {
          std::time_t t = ev.timestamp_ms() / 1000;
          char when[32];
          std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
                        std::localtime(&t));
          std::cout << when << " " << rk << " vhost=" << ev.vhost()
                    << " name=" << ev.name();
          std::map<std::string, std::string> details(ev.details().begin(),
                                                     ev.details().end());
          for (auto& [k, v] : details)
            std::cout << " " << k << "=" << v;
          std::cout << "\n";
        } else {
          std::cout << rk << " " << body << "\n";
        }
      }
      std::cout.flush();
      return count == 0 || ++seen < count;
    });
  if (count != 0 && seen < count)
    std::cerr << "flotilla: " << seen << " of " << count
              << " events before the time limit\n";
  return exit_ok;
}

// -- definitions
// ----------------------------------------------------------------

void set_str(gp::Struct& s, const char* k, const std::string& v) {
  (*s.mutable_fields())[k].set_string_value(v);
}

void set_bool(gp::Struct& s, const char* k, bool v) {
  (*s.mutable_fields())[k].set_bool_value(v);
}

int cmd_definitions(session& s, const options& o) {
  if (o.args.size() != 3 || (o.args[1] != "export" && o.args[1] != "import"))
    throw usage_error{"definitions needs export FILE or import FILE"};
  auto& file = o.args[2];
  if (o.args[1] == "export") {
    gp::Struct doc;
    set_str(doc, "flotilla_version", "0.1.0");
    auto& vhosts = *(*doc.mutable_fields())["vhosts"].mutable_list_value();
    auto& exchanges
      = *(*doc.mutable_fields())["exchanges"].mutable_list_value();
    auto& queues = *(*doc.mutable_fields())["queues"].mutable_list_value();
    auto& bindings = *(*doc.mutable_fields())["bindings"].mutable_list_value();
    std::vector<std::string> names;
    if (!o.vhost.empty())
      names.push_back(o.vhost);
    else
      for (auto& v : s.list_all(mg::VHOST, ""))
        names.push_back(v.vhost().name());
    std::map<std::string, bool> exclusive; // vhost + '\0' + queue
    for (auto& vh : names) {
      set_str(*vhosts.add_values()->mutable_struct_value(), "name", vh);
      for (auto& obj : s.list_all(mg::EXCHANGE, vh)) {
        auto& x = obj.exchange();
        if (x.builtin())
          continue;
        auto& e = *exchanges.add_values()->mutable_struct_value();
        set_str(e, "name", x.name());
        set_str(e, "vhost", vh);
        set_str(e, "type", x.type());
        set_bool(e, "durable", x.durable());
        set_bool(e, "auto_delete", x.auto_delete());
        set_bool(e, "internal", x.internal());
        *(*e.mutable_fields())["arguments"].mutable_struct_value()
          = x.arguments();
      }
      for (auto& obj : s.list_all(mg::QUEUE, vh)) {
        auto& q = obj.queue();
        if (q.exclusive()) {
          exclusive[vh + '\0' + q.name()] = true;
          continue;
        }
        auto& e = *queues.add_values()->mutable_struct_value();
        set_str(e, "name", q.name());
        set_str(e, "vhost", vh);
        set_bool(e, "durable", q.durable());
        set_bool(e, "auto_delete", q.auto_delete());
        *(*e.mutable_fields())["arguments"].mutable_struct_value()
          = q.arguments();
      }
      for (auto& obj : s.list_all(mg::BINDING, vh)) {
        auto& b = obj.binding();
        if (b.source().empty())
          continue;
        if (b.destination_type() == "queue"
            && exclusive.count(vh + '\0' + b.destination()))
          continue;
        auto& e = *bindings.add_values()->mutable_struct_value();
        set_str(e, "source", b.source());
        set_str(e, "vhost", vh);
        set_str(e, "destination", b.destination());
        set_str(e, "destination_type", b.destination_type());
        set_str(e, "routing_key", b.routing_key());
        *(*e.mutable_fields())["arguments"].mutable_struct_value()
          = b.arguments();
      }
    }
    gp::util::JsonPrintOptions p;
    p.add_whitespace = true;
    std::string json;
    (void)gp::util::MessageToJsonString(doc, &json, p);
    if (file == "-") {
      std::cout << json;
    } else {
      std::ofstream out{file};
      out << json;
      if (!out)
        throw usage_error{"cannot write '" + file + "'"};
      std::cout << "exported " << names.size() << " vhosts, "
                << exchanges.values_size() << " exchanges, "
                << queues.values_size() << " queues, " << bindings.values_size()
                << " bindings to " << file << "\n";
    }
    return exit_ok;
  }
  std::stringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in{file};
    if (!in)
      throw usage_error{"cannot read '" + file + "'"};
    text << in.rdbuf();
  }
  mg::Definitions defs;
  gp::util::JsonParseOptions p;
  p.ignore_unknown_fields = true;
  auto st = gp::util::JsonStringToMessage(text.str(), &defs, p);
  if (!st.ok())
    throw usage_error{file + " is not a definitions file: " + st.ToString()};
  auto vhost_of = [&](const std::string& v) {
    return v.empty() ? (o.vhost.empty() ? s.url().vhost : o.vhost) : v;
  };
  size_t created = 0;
  for (auto& x : defs.exchanges()) {
    if (x.name().empty() || x.name().compare(0, 4, "amq.") == 0
        || x.name().compare(0, 12, "qmf.default.") == 0)
      continue;
    mg::Request req;
    req.set_method(mg::CREATE);
    req.set_kind(mg::EXCHANGE);
    req.set_vhost(vhost_of(x.vhost()));
    *req.mutable_exchange() = x;
    if (req.exchange().type().empty())
      req.mutable_exchange()->set_type("direct");
    created += s.call(req).status() == 201;
  }
  for (auto& q : defs.queues()) {
    mg::Request req;
    req.set_method(mg::CREATE);
    req.set_kind(mg::QUEUE);
    req.set_vhost(vhost_of(q.vhost()));
    *req.mutable_queue() = q;
    created += s.call(req).status() == 201;
  }
  for (auto& b : defs.bindings()) {
    mg::Request req;
    req.set_method(mg::CREATE);
    req.set_kind(mg::BINDING);
    req.set_vhost(vhost_of(b.vhost()));
    *req.mutable_binding() = b;
    s.call(req);
  }
  std::cout << "imported " << defs.exchanges_size() << " exchanges, "
            << defs.queues_size() << " queues, " << defs.bindings_size()
            << " bindings from " << file << " (" << created
            << " exchanges and queues were new)\n";
  return exit_ok;
}

int run(const options& o) {
  auto& verb = o.args[0];
  session s{o};
  int rc = exit_ok;
  if (verb == "overview")
    rc = cmd_overview(s, o);
  else if (verb == "health")
    rc = cmd_health(s, o);
  else if (verb == "list")
    rc = cmd_list(s, o);
  else if (verb == "get")
    rc = cmd_get(s, o);
  else if (verb == "config")
    rc = cmd_config(s, o);
  else if (verb == "purge")
    rc = cmd_purge(s, o);
  else if (verb == "close-connection")
    rc = cmd_close(s, o);
  else if (verb == "peek")
    rc = cmd_peek(s, o);
  else if (verb == "stat")
    rc = cmd_stat(s, o);
  else if (verb == "events")
    rc = cmd_events(s, o);
  else if (verb == "definitions")
    rc = cmd_definitions(s, o);
  s.raw().close();
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  try {
    auto o = parse_globals(argc, argv);
    if (o.args.empty()) {
      std::cout << main_help;
      return o.help ? exit_ok : exit_usage;
    }
    auto& verb = o.args[0];
    if (verb == "route" || verb == "link") // Federation: apps/flotilla_route.
      return flotilla::cli::route_main(o.args, o.json, o.timeout, o.help);
    auto h = verb_help.find(verb);
    if (h == verb_help.end())
      throw usage_error{"unknown command '" + verb + "'"};
    if (o.help) {
      std::cout << h->second;
      return exit_ok;
    }
    return run(o);
  } catch (const usage_error& e) {
    std::cerr << "flotilla: " << e.text << "\n"
              << "Try 'flotilla --help'.\n";
    return exit_usage;
  } catch (const broker_error& e) {
    std::cerr << "flotilla: " << e.status << " " << e.text << "\n";
    return exit_of(e.status);
  } catch (const mg::client_error& e) {
    std::cerr << "flotilla: " << e.what() << "\n";
    return exit_connect;
  }
}
