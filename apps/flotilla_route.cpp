// flotilla route / flotilla link: federation routes between brokers, with
// qpid-route's argument order. Each broker is given by its AMQP address
// ([user/pass@]host:port); the CLI asks the source broker for its fabric
// port (management overview) and asks the destination broker to create the
// link and the bridge (the destination pulls from the source).

#include "apps/flotilla_route.hpp"

#include "apps/cli_errors.hpp"

#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include <google/protobuf/util/json_util.h>

#include "management/client.hpp"
#include "protocol/management.pb.h"

namespace flotilla::cli {

namespace {

namespace mg = flotilla::management;
namespace gp = google::protobuf;

const char* help_text = R"(Usage:
  flotilla link add DEST SRC [--durable]
                                      link DEST to SRC (DEST pulls from SRC)
  flotilla link del DEST SRC          delete the link and its routes
  flotilla link list DEST             links of DEST and their state
  flotilla link test DEST SRC [--ttl N]
                                      check, creating nothing, that DEST
                                      can link to SRC: management of both,
                                      fabric connection (TLS), login, hops
  flotilla link cut DEST SRC          fault injection: drop the link's
                                      session, do not reconnect
  flotilla link heal DEST SRC         let a cut link reconnect
  flotilla route add DEST SRC EXCHANGE KEY [--ack N] [--ttl N] [--durable]
                                      static route: SRC's EXCHANGE, bound
                                      with KEY, into DEST's EXCHANGE
  flotilla route dynamic add DEST SRC EXCHANGE [--ack N] [--ttl N] [--durable]
                                      dynamic route: DEST's bindings on
                                      EXCHANGE decide what crosses
  flotilla route queue add DEST SRC EXCHANGE QUEUE [--ack N] [--durable]
                                      queue route: SRC's QUEUE into DEST's
                                      EXCHANGE
  flotilla route del DEST SRC EXCHANGE KEY
  flotilla route dynamic del DEST SRC EXCHANGE
  flotilla route queue del DEST SRC EXCHANGE QUEUE
  flotilla route list DEST            the routes into DEST (and out of it)
  flotilla route flush DEST           delete every route into DEST
  flotilla route map BROKER           follow the links from BROKER

DEST, SRC and BROKER are AMQP addresses: [USER/PASS@]HOST:PORT (also
amqp://USER:PASS@HOST:PORT/VHOST); the default user is guest/guest. The link
logs in to SRC with SRC's user and password. --ack N: at most N messages in
flight (unacknowledged) per route (default 100). --ttl N: hop limit
(default 16). --durable: the link and route are kept in DEST's data dir
and come back after a restart; the route's queue on SRC is durable and
keeps messages while the link is down (give SRC a fixed --fabric-port).
--src-local: a push route, as qpid-route's: the link goes from SRC to DEST
(logging in to DEST with DEST's user) and the route lives on SRC, which
pushes; list and delete it on SRC. Not for dynamic routes.
)";

/// One management connection.
class conn {
public:
  conn(const std::string& address, int timeout)
    : client_(std::chrono::seconds(timeout)) {
    auto err = mg::parse_broker_url(address, url_);
    if (!err.empty())
      throw usage_error{err};
    client_.open(url_);
  }
  ~conn() {
    client_.close();
  }

  mg::Response call(mg::Request req, bool allow_error = false) {
    if (req.vhost().empty())
      req.set_vhost(url_.vhost);
    mg::Response resp;
    client_.call(req, resp);
    if (resp.status() >= 400 && !allow_error)
      throw broker_error{resp.status(), resp.error()};
    return resp;
  }

  std::vector<mg::Object> list(mg::Kind kind) {
    mg::Request req;
    req.set_method(mg::LIST);
    req.set_kind(kind);
    req.mutable_list()->set_page_size(1000);
    auto resp = call(req);
    return {resp.objects().begin(), resp.objects().end()};
  }

  const mg::broker_url& url() const {
    return url_;
  }

  /// "host:port" of the AMQP address.
  std::string address() const {
    return url_.host + ":" + std::to_string(url_.port);
  }

private:
  mg::client client_;
  mg::broker_url url_;
};

struct parsed {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opts;
};

parsed split(const std::vector<std::string>& args, size_t from) {
  static const std::map<std::string, bool> spec = {{"--ack", true},
                                                   {"--ttl", true},
                                                   {"--durable", false},
                                                   {"--src-local", false}};
  parsed p;
  for (size_t i = from; i < args.size(); ++i) {
    auto& a = args[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      auto name = a.substr(0, a.find('='));
      auto s = spec.find(name);
      if (s == spec.end())
        throw usage_error{"unknown option '" + name + "'"};
      if (!s->second) {
        p.opts[name] = "";
      } else if (a.find('=') != std::string::npos) {
        p.opts[name] = a.substr(a.find('=') + 1);
      } else {
        if (i + 1 >= args.size())
          throw usage_error{name + " needs a value"};
        p.opts[name] = args[++i];
      }
    } else {
      p.pos.push_back(a);
    }
  }
  return p;
}

uint32_t number(const parsed& p, const char* name) {
  auto i = p.opts.find(name);
  if (i == p.opts.end())
    return 0;
  char* end = nullptr;
  auto v = std::strtoul(i->second.c_str(), &end, 10);
  if (i->second.empty() || *end != '\0' || v > 1000000)
    throw usage_error{std::string{name} + " needs a number"};
  return static_cast<uint32_t>(v);
}

/// Returns the name of the link to the broker at AMQP `address` (its
/// "host:port", as ensure_link() names it).
std::string link_name_of(const std::string& address) {
  mg::broker_url url;
  auto err = mg::parse_broker_url(address, url);
  if (!err.empty())
    throw usage_error{err};
  return url.host + ":" + std::to_string(url.port);
}

/// Creates (or finds) the link from DEST to SRC; returns its name.
std::string ensure_link(conn& dest, conn& src, bool durable) {
  mg::Request ov;
  ov.set_method(mg::OVERVIEW);
  auto o = src.call(ov);
  auto& b = o.overview().broker();
  if (b.fabric_port() == 0)
    throw broker_error{503, src.address() + " reports no fabric port"};
  if (!b.federation_id().empty()) {
    mg::Request ov2;
    ov2.set_method(mg::OVERVIEW);
    auto d = dest.call(ov2);
    if (d.overview().broker().federation_id() == b.federation_id())
      throw usage_error{"DEST and SRC are the same broker"};
  }
  mg::Request req;
  req.set_method(mg::CREATE);
  req.set_kind(mg::LINK);
  auto& l = *req.mutable_link();
  l.set_name(src.address());
  auto host = b.fabric_interface();
  if (host.empty() || host == "0.0.0.0" || host == "::")
    host = src.url().host;
  l.set_host(host);
  l.set_port(b.fabric_port());
  l.set_user(src.url().user);
  l.set_password(src.url().password);
  l.set_durable(durable);
  dest.call(req);
  return src.address();
}

void print_json(const mg::Response& r) {
  gp::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.add_whitespace = true;
  std::string out;
  (void)gp::util::MessageToJsonString(r, &out, o);
  std::cout << out;
}

/// Returns a lag for people: "0", "850ms", "12.3s".
std::string lag_text(int64_t ms) {
  if (ms <= 0)
    return "0";
  if (ms < 1000)
    return std::to_string(ms) + "ms";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

void print_rows(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i)
        w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size())
        line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    std::cout << line << "\n";
  }
}

/// Deletes the link when no route uses it any more (as qpid-route does).
void drop_unused_link(conn& dest, const std::string& link) {
  mg::Request req;
  req.set_method(mg::GET);
  req.set_kind(mg::LINK);
  req.set_name(link);
  auto r = dest.call(req, true);
  if (r.status() != 200 || r.objects_size() == 0
      || r.objects(0).link().bridges() > 0)
    return;
  mg::Request del;
  del.set_method(mg::DELETE);
  del.set_kind(mg::LINK);
  del.set_name(link);
  dest.call(del, true);
}

/// Prints one check of 'link test'.
void print_check(const std::string& what, bool ok, const std::string& detail) {
  std::cout << "  " << what << " ... " << (ok ? "ok" : "FAILED")
            << (detail.empty() ? "" : ": " + detail) << "\n";
}

/// The broker at the other end of a link, for route map.
struct upstream {
  /// Its AMQP address, where route map can go on: the link's name if that
  /// is an AMQP address (as the CLI names links), else (a connector's
  /// link) its host and the AMQP port the remote gave when the link last
  /// logged in; empty for a duplex link (it has no host).
  std::string address;
  std::string remote_id; ///< Its federation id, once connected.
};

/// Returns the other ends of the links of the broker behind `c`, by link.
std::map<std::string, upstream> upstreams(conn& c) {
  auto is_address = [](const std::string& name) {
    // As ensure_link() names links: the "host:port" of a broker URL.
    mg::broker_url url;
    return mg::parse_broker_url(name, url).empty()
           && url.host + ":" + std::to_string(url.port) == name;
  };
  std::map<std::string, upstream> out;
  for (auto& o : c.list(mg::LINK)) {
    auto& l = o.link();
    auto& u = out[l.name()];
    u.remote_id = l.remote_id();
    if (is_address(l.name()))
      u.address = l.name();
    else if (!l.host().empty() && l.remote_amqp_port() != 0)
      u.address = l.host() + ":" + std::to_string(l.remote_amqp_port());
  }
  return out;
}

/// Returns the longest chain of links upstream of `start` (0: none), found
/// as route map does, with `user` credentials.
size_t upstream_depth(const std::string& start, const std::string& user,
                      int timeout) {
  std::map<std::string, size_t> depth{{start, 0}};
  std::deque<std::string> todo{start};
  size_t deepest = 0;
  while (!todo.empty()) {
    auto addr = todo.front();
    todo.pop_front();
    try {
      conn c{user + addr, timeout};
      deepest = std::max(deepest, depth[addr]);
      auto ups = upstreams(c);
      for (auto& o : c.list(mg::BRIDGE)) {
        auto& b = o.bridge();
        // (A route in without a link is a peer's push route.)
        auto up = ups.find(b.link());
        if (b.direction() != "in" || up == ups.end()
            || up->second.address.empty()
            || depth.count(up->second.address) > 0)
          continue;
        depth[up->second.address] = depth[addr] + 1;
        todo.push_back(up->second.address);
      }
    } catch (const std::exception&) {
      // Unreachable upstream brokers do not count, nor duplex links.
    } catch (const broker_error&) {
    } catch (const usage_error&) {
    }
  }
  return deepest;
}

/// Connects to `address` and reads its overview into `out`; prints the
/// check `what` as FAILED and returns nullptr if that does not work.
std::unique_ptr<conn> overview_of(const std::string& address, int timeout,
                                  const std::string& what, mg::Broker& out) {
  try {
    auto c = std::make_unique<conn>(address, timeout);
    mg::Request ov;
    ov.set_method(mg::OVERVIEW);
    out = c->call(ov).overview().broker();
    return c;
  } catch (const std::exception& e) {
    print_check(what, false, e.what());
  } catch (const broker_error& e) {
    print_check(what, false, e.text);
  }
  return nullptr;
}

/// flotilla link test DEST SRC [--ttl N]: what 'link add' and 'route add'
/// would need, checked before anything is created. Returns 0 if all pass.
int cmd_link_test(const parsed& p, int timeout) {
  auto ttl = number(p, "--ttl");
  if (ttl == 0)
    ttl = 16;
  std::cout << "Testing a link from " << p.pos[0] << " to " << p.pos[1]
            << ":\n";
  mg::Broker sb;
  auto src = overview_of(p.pos[1], timeout, "management lookup of SRC", sb);
  if (!src)
    return 1;
  if (sb.fabric_port() == 0) {
    print_check("management lookup of SRC", false,
                src->address() + " reports no fabric port");
    return 1;
  }
  print_check("management lookup of SRC " + src->address(), true,
              "fabric port " + std::to_string(sb.fabric_port()) + ", node "
                + sb.node());
  mg::Broker db;
  auto dest = overview_of(p.pos[0], timeout, "management of DEST", db);
  if (!dest)
    return 1;
  if (!db.federation_id().empty() && db.federation_id() == sb.federation_id()) {
    print_check("management of DEST", false,
                "DEST and SRC are the same broker");
    return 1;
  }
  print_check("management of DEST " + dest->address(), true, "");
  mg::Request req;
  req.set_method(mg::TEST);
  req.set_kind(mg::LINK);
  auto& l = *req.mutable_link();
  l.set_name(src->address());
  auto host = sb.fabric_interface();
  if (host.empty() || host == "0.0.0.0" || host == "::")
    host = src->url().host;
  l.set_host(host);
  l.set_port(sb.fabric_port());
  l.set_user(src->url().user);
  l.set_password(src->url().password);
  auto r = dest->call(req, true);
  if (r.status() >= 400 || r.objects_size() == 0) {
    print_check("fabric connection from DEST", false, r.error());
    return 1;
  }
  auto& t = r.objects(0).link();
  auto err = t.last_error();
  bool fabric_ok = err.compare(0, 7, "fabric:") != 0;
  print_check("fabric connection from DEST to " + host + ":"
                + std::to_string(sb.fabric_port()) + " (" + t.transport() + ")",
              fabric_ok, fabric_ok ? "" : err.substr(8));
  if (!fabric_ok)
    return 1;
  bool login_ok = t.state() == "Operational";
  print_check("login to SRC as '" + src->url().user + "'", login_ok,
              login_ok ? "" : err.substr(err.find(':') + 2));
  if (!login_ok)
    return 1;
  auto user = src->url().user + "/" + src->url().password + "@";
  auto depth = upstream_depth(src->address(), user, timeout);
  bool hops_ok = depth + 1 <= ttl;
  print_check("hop limit " + std::to_string(ttl), hops_ok,
              "brokers up to " + std::to_string(depth + 1)
                + " hops away would send through this route");
  return hops_ok ? 0 : 1;
}

int cmd_link(const std::vector<std::string>& args, bool json, int timeout) {
  if (args.size() < 2)
    throw usage_error{"link needs add, del, list, test, cut or heal"};
  auto& op = args[1];
  auto p = split(args, 2);
  if (op == "list") {
    if (p.pos.size() != 1)
      throw usage_error{"link list needs DEST"};
    conn dest{p.pos[0], timeout};
    mg::Request req;
    req.set_method(mg::LIST);
    req.set_kind(mg::LINK);
    auto r = dest.call(req);
    if (json) {
      print_json(r);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{
      {"link", "host", "port", "remote", "state", "bridges", "in", "out",
       "connects", "last error"},
      {"====", "====", "====", "======", "=====", "=======", "==", "===",
       "========", "=========="}};
    for (auto& o : r.objects()) {
      auto& l = o.link();
      auto state = l.state() + (l.durable() ? " durable" : "")
                   + (l.fault().empty() ? "" : " (" + l.fault() + ")");
      rows.push_back({l.name(), l.host(), std::to_string(l.port()),
                      l.remote_node().empty() ? "-" : l.remote_node(), state,
                      std::to_string(l.bridges()),
                      std::to_string(l.messages_in()),
                      std::to_string(l.messages_out()),
                      std::to_string(l.connects()), l.last_error()});
    }
    print_rows(rows);
    return 0;
  }
  if (p.pos.size() != 2)
    throw usage_error{"link " + op + " needs DEST and SRC"};
  if (op == "test")
    return cmd_link_test(p, timeout);
  conn dest{p.pos[0], timeout};
  if (op == "add") {
    conn src{p.pos[1], timeout};
    ensure_link(dest, src, p.opts.count("--durable") > 0);
    return 0;
  }
  if (op == "cut" || op == "heal") {
    // Fault injection (a CREATE naming the link, with the fault).
    mg::Request req;
    req.set_method(mg::CREATE);
    req.set_kind(mg::LINK);
    req.mutable_link()->set_name(link_name_of(p.pos[1]));
    req.mutable_link()->set_fault(op);
    dest.call(req);
    return 0;
  }
  if (op == "del") {
    mg::Request req;
    req.set_method(mg::DELETE);
    req.set_kind(mg::LINK);
    req.set_name(link_name_of(p.pos[1]));
    dest.call(req);
    return 0;
  }
  throw usage_error{"link takes add, del, list, test, cut or heal, not '" + op
                    + "'"};
}

void fill_route(mg::Bridge& b, const std::string& link, bool dynamic,
                bool queue, const std::vector<std::string>& pos,
                bool src_local) {
  b.set_link(link);
  b.set_src_local(src_local);
  b.set_dynamic(dynamic);
  b.set_queue_route(queue);
  if (queue) {
    b.set_destination(pos[2]);
    b.set_source(pos[3]);
  } else {
    b.set_source(pos[2]);
    if (!dynamic)
      b.set_key(pos.size() > 3 ? pos[3] : "");
  }
}

int cmd_map(conn& start, const std::string& first, int timeout) {
  std::cout << "\nFinding Linked Brokers:\n";
  std::deque<std::string> todo{first};
  std::set<std::string> seen{first};
  struct route {
    std::string dest, src, exchange, key;
    bool dynamic;
    std::string src_id; ///< The source's federation id, if src is no address.
  };
  std::vector<route> routes;
  std::map<std::string, std::string> address_of; // federation id -> address
  auto user = start.url().user + "/" + start.url().password + "@";
  while (!todo.empty()) {
    auto addr = todo.front();
    todo.pop_front();
    std::cout << "    " << addr << "... " << std::flush;
    try {
      conn c{user + addr, timeout};
      std::cout << "Ok\n";
      mg::Request ov;
      ov.set_method(mg::OVERVIEW);
      address_of[c.call(ov).overview().broker().federation_id()] = addr;
      auto ups = upstreams(c);
      for (auto& o : c.list(mg::BRIDGE)) {
        auto& b = o.bridge();
        if (b.direction() != "in" || b.link().empty())
          continue;
        // A link to follow; a duplex link is named after the broker found
        // at its other end, if the crawl reaches it (below).
        auto up = ups.find(b.link());
        if (up != ups.end() && !up->second.address.empty()) {
          auto& src = up->second.address;
          routes.push_back({addr, src, b.source(), b.key(), b.dynamic(), {}});
          if (seen.insert(src).second)
            todo.push_back(src);
        } else {
          routes.push_back({addr, b.link(), b.source(), b.key(), b.dynamic(),
                            up != ups.end() ? up->second.remote_id : ""});
        }
      }
    } catch (const std::exception& e) {
      std::cout << "Failed: " << e.what() << "\n";
    } catch (const broker_error& e) {
      std::cout << "Failed: " << e.text << "\n";
    } catch (const usage_error& e) {
      std::cout << "Failed: " << e.text << "\n";
    }
  }
  for (auto& r : routes)
    if (auto i = address_of.find(r.src_id);
        !r.src_id.empty() && i != address_of.end())
      r.src = i->second;
  for (bool dynamic : {true, false}) {
    std::cout << "\n" << (dynamic ? "Dynamic" : "Static") << " Routes:\n";
    std::map<std::string, std::set<std::pair<std::string, std::string>>> by_x;
    for (auto& r : routes)
      if (r.dynamic == dynamic)
        by_x[r.exchange + (dynamic ? "" : " " + r.key)].insert({r.src, r.dest});
    if (by_x.empty())
      std::cout << "  none found\n";
    for (auto& [x, pairs] : by_x) {
      std::cout << "\n  Exchange " << x << ":\n";
      for (auto& [a, b] : pairs) {
        bool both = pairs.count({b, a}) > 0;
        if (both && b < a)
          continue;
        std::cout << "    " << a << (both ? " <=> " : " => ") << b << "\n";
      }
    }
  }
  return 0;
}

int cmd_route(const std::vector<std::string>& args, bool json, int timeout) {
  if (args.size() < 2)
    throw usage_error{"route needs add, del, list, flush, map, dynamic or "
                      "queue"};
  size_t i = 1;
  bool dynamic = false;
  bool queue = false;
  if (args[i] == "dynamic" || args[i] == "queue") {
    dynamic = args[i] == "dynamic";
    queue = !dynamic;
    ++i;
  }
  if (i >= args.size())
    throw usage_error{"route " + args[1] + " needs add or del"};
  auto op = args[i];
  auto p = split(args, i + 1);
  if (op == "list" || op == "flush" || op == "map") {
    if (dynamic || queue || p.pos.size() != 1)
      throw usage_error{"route " + op + " needs exactly one broker"};
    conn dest{p.pos[0], timeout};
    if (op == "map")
      return cmd_map(dest, dest.address(), timeout);
    mg::Request req;
    req.set_method(mg::LIST);
    req.set_kind(mg::BRIDGE);
    req.mutable_list()->set_page_size(1000);
    auto r = dest.call(req);
    if (op == "flush") {
      std::set<std::string> links;
      for (auto& o : r.objects()) {
        auto& b = o.bridge();
        // A peer's push route (in, no link here) is the peer's to delete.
        if ((b.direction() != "in" && b.direction() != "push")
            || (b.direction() == "in" && b.link().empty()))
          continue;
        mg::Request del;
        del.set_method(mg::DELETE);
        del.set_kind(mg::BRIDGE);
        del.set_name(b.name());
        dest.call(del, true);
        links.insert(b.link());
      }
      for (auto& l : links)
        drop_unused_link(dest, l);
      return 0;
    }
    if (json) {
      print_json(r);
      return 0;
    }
    std::vector<std::vector<std::string>> rows{
      {"dest", "src", "exchange", "key", "kind", "state", "in", "out",
       "bytesIn", "bytesOut", "backlog", "lag", "dropped", "last error"},
      {"====", "===", "========", "===", "====", "=====", "==", "===",
       "=======", "========", "=======", "===", "=======", "=========="}};
    for (auto& o : r.objects()) {
      auto& b = o.bridge();
      bool in = b.direction() == "in";
      bool push = b.direction() == "push";
      std::string kind = b.dynamic()       ? "dynamic"
                         : b.queue_route() ? "queue " + b.queue()
                                           : "static";
      if (b.durable())
        kind += " durable";
      if (push || (in && b.src_local()))
        kind += " push"; // Pushed by this broker, or into it by the source.
      auto state = b.state() + (b.alarm() ? " ALARM" : "");
      std::string key = b.dynamic()
                          ? "(" + std::to_string(b.keys_size()) + " keys)"
                          : b.key();
      auto dropped
        = b.dropped_loop() + b.dropped_duplicate() + b.dropped_hops();
      rows.push_back(
        {in     ? dest.address()
         : push ? b.link()
                : b.peer(),
         in ? (b.link().empty() ? b.peer() : b.link()) : dest.address(),
         b.destination(), key, kind, state, std::to_string(b.messages_in()),
         std::to_string(b.messages_out()), std::to_string(b.bytes_in()),
         std::to_string(b.bytes_out()), std::to_string(b.backlog()),
         lag_text(b.lag_ms()), std::to_string(dropped), b.last_error()});
    }
    print_rows(rows);
    return 0;
  }
  size_t need = queue ? 4 : dynamic ? 3 : 4;
  if (p.pos.size() != need)
    throw usage_error{"route " + std::string{dynamic ? "dynamic " : ""}
                      + (queue ? "queue " : "") + op + " needs "
                      + (queue     ? "DEST SRC EXCHANGE QUEUE"
                         : dynamic ? "DEST SRC EXCHANGE"
                                   : "DEST SRC EXCHANGE KEY")};
  // --src-local (push): the link and the bridge live on SRC, the link goes
  // to DEST and logs in with DEST's user; else DEST pulls from SRC.
  bool push = p.opts.count("--src-local") > 0;
  if (push && dynamic)
    throw usage_error{"--src-local: dynamic routes are pulled by the "
                      "destination"};
  conn owner{p.pos[push ? 1 : 0], timeout};
  if (op == "add") {
    conn other{p.pos[push ? 0 : 1], timeout};
    bool durable = p.opts.count("--durable") > 0;
    auto link = ensure_link(owner, other, durable);
    mg::Request req;
    req.set_method(mg::CREATE);
    req.set_kind(mg::BRIDGE);
    auto& b = *req.mutable_bridge();
    fill_route(b, link, dynamic, queue, p.pos, push);
    b.set_credit(number(p, "--ack"));
    b.set_max_hops(number(p, "--ttl"));
    b.set_durable(durable);
    auto r = owner.call(req);
    if (json)
      print_json(r);
    return 0;
  }
  if (op == "del") {
    auto link = link_name_of(p.pos[push ? 0 : 1]);
    mg::Request req;
    req.set_method(mg::DELETE);
    req.set_kind(mg::BRIDGE);
    fill_route(*req.mutable_bridge(), link, dynamic, queue, p.pos, push);
    owner.call(req);
    drop_unused_link(owner, link);
    return 0;
  }
  throw usage_error{"route takes add, del, list, flush or map, not '" + op
                    + "'"};
}

} // namespace

int route_main(const std::vector<std::string>& args, bool json,
               int timeout_seconds, bool help) {
  if (help) {
    std::cout << help_text;
    return 0;
  }
  try {
    if (args[0] == "link")
      return cmd_link(args, json, timeout_seconds);
    return cmd_route(args, json, timeout_seconds);
  } catch (const usage_error& e) {
    std::cerr << "flotilla: " << e.text << "\n"
              << "Try 'flotilla route --help'.\n";
    return 2;
  } catch (const broker_error& e) {
    std::cerr << "flotilla: " << e.status << " " << e.text << "\n";
    return exit_of(e.status);
  } catch (const mg::client_error& e) {
    std::cerr << "flotilla: " << e.what() << "\n";
    return 3;
  }
}

} // namespace flotilla::cli
