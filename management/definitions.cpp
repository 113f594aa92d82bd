#include "management/definitions.hpp"

#include <fstream>
#include <sstream>

#include <caf/all.hpp>
#include <google/protobuf/util/json_util.h>

#include "actors/broker.hpp"
#include "actors/messages.hpp"
#include "management/convert.hpp"
#include "protocol/management.pb.h"

namespace flotilla::management {

namespace {

namespace gp = google::protobuf;
namespace pr = flotilla::protocol;

bool builtin_exchange(const std::string& name) {
  return name.empty() || name.compare(0, 4, "amq.") == 0
         || name == "qmf.default.direct" || name == "qmf.default.topic";
}

/// Sends `req` to the vhost actor of `vhost` and waits for the outcome.
template<class Req>
bool declare(broker& node, const std::string& vhost, Req req,
             const std::string& what, std::string& error) {
  auto* vh = node.find_vhost(vhost);
  if (vh == nullptr) {
    error = what + ": no vhost '" + vhost + "'";
    return false;
  }
  caf::scoped_actor self{node.system()};
  bool ok = false;
  self->request(vh->actor, std::chrono::seconds(30), std::move(req))
    .receive(
      [&](op_result& r) {
        ok = r.ok();
        if (!ok)
          error = what + ": " + r.text;
      },
      [&](caf::error& e) {
        error = what + ": " + node.system().render(e);
      });
  return ok;
}

std::string vhost_of(const std::string& v) {
  return v.empty() ? std::string{"/"} : v;
}

bool with_options(const gp::Struct& in, const std::string& alternate,
                  const char* alternate_key, const std::string& replicate,
                  pr::field_table& out, std::string& error) {
  if (!from_struct(in, out, error))
    return false;
  if (!alternate.empty())
    out.set(alternate_key, pr::field_value{alternate});
  if (!replicate.empty())
    out.set("qpid.replicate", pr::field_value{replicate});
  return true;
}

} // namespace

bool load_definitions(broker& node, const std::string& path,
                      std::string& summary, std::string& error) {
  std::ifstream in{path};
  if (!in) {
    error = path + ": cannot read the definitions file";
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  Definitions defs;
  gp::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  o.case_insensitive_enum_parsing = true;
  auto status = gp::util::JsonStringToMessage(text.str(), &defs, o);
  if (!status.ok()) {
    error = path + ": not a definitions file: " + status.ToString();
    return false;
  }
  for (auto& v : defs.vhosts())
    if (!v.name().empty())
      node.add_vhost(v.name());
  size_t exchanges = 0;
  for (auto& x : defs.exchanges()) {
    if (builtin_exchange(x.name()))
      continue;
    exchange_declare_req req;
    req.name = x.name();
    req.type = x.type().empty() ? "direct" : x.type();
    req.durable = x.durable();
    req.auto_delete = x.auto_delete();
    req.internal = x.internal();
    auto what = path + ": exchange '" + x.name() + "'";
    if (!with_options(x.arguments(), x.alternate_exchange(),
                      "alternate-exchange", x.replicate(), req.arguments,
                      error)) {
      error = what + ": " + error;
      return false;
    }
    if (!declare(node, vhost_of(x.vhost()), std::move(req), what, error))
      return false;
    ++exchanges;
  }
  for (auto& q : defs.queues()) {
    queue_declare_req req;
    req.name = q.name();
    req.durable = q.durable();
    req.auto_delete = q.auto_delete();
    auto what = path + ": queue '" + q.name() + "'";
    if (q.name().empty()) {
      error = what + ": a queue needs a name";
      return false;
    }
    if (!with_options(q.arguments(), q.alternate_exchange(),
                      "x-dead-letter-exchange", q.replicate(), req.arguments,
                      error)) {
      error = what + ": " + error;
      return false;
    }
    if (!declare(node, vhost_of(q.vhost()), std::move(req), what, error))
      return false;
  }
  for (auto& b : defs.bindings()) {
    bind_req req;
    req.to_exchange = b.destination_type() == "exchange";
    req.source = b.source();
    req.destination = b.destination();
    req.key = b.routing_key();
    auto what
      = path + ": binding of '" + b.destination() + "' to '" + b.source() + "'";
    if (!from_struct(b.arguments(), req.arguments, error)) {
      error = what + ": " + error;
      return false;
    }
    if (!declare(node, vhost_of(b.vhost()), std::move(req), what, error))
      return false;
  }
  summary = std::to_string(defs.vhosts_size()) + " vhosts, "
            + std::to_string(exchanges) + " exchanges, "
            + std::to_string(defs.queues_size()) + " queues, "
            + std::to_string(defs.bindings_size()) + " bindings from " + path;
  return true;
}

} // namespace flotilla::management
