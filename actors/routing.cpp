#include "actors/routing.hpp"

#include <algorithm>
#include <mutex>

#include "protocol/matching.hpp"

namespace flotilla {

const char* to_string(exchange_kind x) {
  switch (x) {
    case exchange_kind::direct:
      return "direct";
    case exchange_kind::fanout:
      return "fanout";
    case exchange_kind::topic:
      return "topic";
    case exchange_kind::headers:
      return "headers";
  }
  return "?";
}

bool parse_exchange_kind(const std::string& name, exchange_kind& out) {
  if (name == "direct")
    out = exchange_kind::direct;
  else if (name == "fanout")
    out = exchange_kind::fanout;
  else if (name == "topic")
    out = exchange_kind::topic;
  else if (name == "headers")
    out = exchange_kind::headers;
  else
    return false;
  return true;
}

namespace {

std::string alternate_of(const protocol::field_table& args) {
  if (auto* v = args.find("alternate-exchange"))
    if (auto* s = v->as_string())
      return *s;
  return {};
}

} // namespace

exchange_entry::exchange_entry(std::string name, exchange_kind kind,
                               bool durable, bool auto_delete, bool internal,
                               protocol::field_table arguments)
  : name(std::move(name)), kind(kind), durable(durable),
    auto_delete(auto_delete), internal(internal),
    arguments(std::move(arguments)),
    alternate_exchange(alternate_of(this->arguments)) {}

bool exchange_entry::add_binding(binding b) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto same = [&](const binding& x) {
    return x.key == b.key && x.dest.same_target(b.dest)
           && x.arguments == b.arguments;
  };
  if (kind == exchange_kind::direct) {
    auto& vec = direct_[b.key];
    if (std::any_of(vec.begin(), vec.end(), same))
      return false;
    vec.push_back(std::move(b));
  } else {
    if (std::any_of(bindings_.begin(), bindings_.end(), same))
      return false;
    bindings_.push_back(std::move(b));
  }
  ++count_;
  return true;
}

bool exchange_entry::remove_binding(const std::string& key,
                                    const protocol::field_table& arguments,
                                    const binding_dest& dest) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto same = [&](const binding& x) {
    return x.key == key && x.dest.same_target(dest) && x.arguments == arguments;
  };
  if (kind == exchange_kind::direct) {
    auto i = direct_.find(key);
    if (i == direct_.end())
      return false;
    auto j = std::find_if(i->second.begin(), i->second.end(), same);
    if (j == i->second.end())
      return false;
    i->second.erase(j);
    if (i->second.empty())
      direct_.erase(i);
  } else {
    auto j = std::find_if(bindings_.begin(), bindings_.end(), same);
    if (j == bindings_.end())
      return false;
    bindings_.erase(j);
  }
  --count_;
  return true;
}

size_t exchange_entry::remove_bindings_to(bool to_exchange,
                                          const std::string& name) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  auto hit = [&](const binding& x) {
    return x.dest.to_exchange == to_exchange && x.dest.name == name;
  };
  size_t removed = 0;
  auto prune = [&](std::vector<binding>& vec) {
    auto i = std::remove_if(vec.begin(), vec.end(), hit);
    removed += static_cast<size_t>(vec.end() - i);
    vec.erase(i, vec.end());
  };
  if (kind == exchange_kind::direct) {
    for (auto i = direct_.begin(); i != direct_.end();) {
      prune(i->second);
      if (i->second.empty())
        i = direct_.erase(i);
      else
        ++i;
    }
  } else {
    prune(bindings_);
  }
  count_ -= removed;
  return removed;
}

size_t exchange_entry::binding_count() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  return count_;
}

std::vector<binding> exchange_entry::bindings() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<binding> result;
  result.reserve(count_);
  if (kind == exchange_kind::direct) {
    for (auto& kv : direct_)
      result.insert(result.end(), kv.second.begin(), kv.second.end());
  } else {
    result = bindings_;
  }
  return result;
}

bool binding_matches(exchange_kind kind, const binding& b,
                     const std::string& key,
                     const protocol::field_table* headers) {
  switch (kind) {
    case exchange_kind::direct:
      return b.key == key;
    case exchange_kind::fanout:
      return true;
    case exchange_kind::topic:
      return protocol::topic_match(b.key, key);
    case exchange_kind::headers:
      return protocol::headers_match(b.arguments, headers);
  }
  return false;
}

exchange_entry_ptr vhost_table::find_exchange(const std::string& name) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = exchanges_.find(name);
  return i != exchanges_.end() ? i->second : nullptr;
}

queue_entry_ptr vhost_table::find_queue(const std::string& name) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = queues_.find(name);
  return i != queues_.end() ? i->second : nullptr;
}

namespace {

const char* bool_text(bool x) {
  return x ? "true" : "false";
}

} // namespace

void vhost_table::notify(broker_event e) const {
  if (!events_)
    return;
  e.vhost = name_;
  events_->publish(std::move(e));
}

void vhost_table::put_exchange(exchange_entry_ptr x) {
  broker_event e;
  if (events_)
    e = broker_event{"exchange",
                     "created",
                     {},
                     x->name,
                     {{"type", to_string(x->kind)},
                      {"durable", bool_text(x->durable)},
                      {"auto_delete", bool_text(x->auto_delete)},
                      {"internal", bool_text(x->internal)}}};
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto name = x->name;
    exchanges_[name] = std::move(x);
  }
  notify(std::move(e));
}

void vhost_table::erase_exchange(const std::string& name) {
  size_t n = 0;
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    n = exchanges_.erase(name);
  }
  if (n > 0)
    notify(broker_event{"exchange", "deleted", {}, name, {}});
}

void vhost_table::put_queue(queue_entry_ptr q) {
  broker_event e;
  if (events_)
    e = broker_event{"queue",
                     "created",
                     {},
                     q->name,
                     {{"durable", bool_text(q->durable)},
                      {"auto_delete", bool_text(q->auto_delete)},
                      {"exclusive", bool_text(q->exclusive)}}};
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    auto name = q->name;
    queues_[name] = std::move(q);
  }
  notify(std::move(e));
}

void vhost_table::erase_queue(const std::string& name) {
  size_t n = 0;
  {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    n = queues_.erase(name);
  }
  if (n > 0)
    notify(broker_event{"queue", "deleted", {}, name, {}});
}

size_t vhost_table::queue_count() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  return queues_.size();
}

size_t vhost_table::exchange_count() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  return exchanges_.size();
}

std::vector<exchange_entry_ptr> vhost_table::exchanges() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<exchange_entry_ptr> result;
  result.reserve(exchanges_.size());
  for (auto& kv : exchanges_)
    result.push_back(kv.second);
  return result;
}

std::vector<queue_entry_ptr> vhost_table::queues() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<queue_entry_ptr> result;
  result.reserve(queues_.size());
  for (auto& kv : queues_)
    result.push_back(kv.second);
  return result;
}

namespace {

void add_unique(std::vector<caf::actor>& out, std::vector<std::string>* names,
                const caf::actor& a, const std::string& name) {
  if (std::find(out.begin(), out.end(), a) != out.end())
    return;
  out.push_back(a);
  if (names != nullptr)
    names->push_back(name);
}

} // namespace

void vhost_table::route(const std::string& exchange, const std::string& key,
                        const protocol::field_table* headers,
                        std::vector<caf::actor>& out,
                        std::vector<std::string>* names) const {
  if (exchange.empty()) {
    // The default exchange: every queue is bound by its own name.
    if (auto q = find_queue(key))
      add_unique(out, names, q->actor, q->name);
    return;
  }
  auto x = find_exchange(exchange);
  if (!x)
    return;
  std::vector<const exchange_entry*> visited;
  auto before = out.size();
  route_impl(*x, key, headers, out, names, visited);
  x->messages_in.fetch_add(1, std::memory_order_relaxed);
  if (out.size() > before)
    x->messages_out.fetch_add(out.size() - before, std::memory_order_relaxed);
  else
    x->unroutable.fetch_add(1, std::memory_order_relaxed);
}

void vhost_table::route_impl(
  const exchange_entry& x, const std::string& key,
  const protocol::field_table* headers, std::vector<caf::actor>& out,
  std::vector<std::string>* names,
  std::vector<const exchange_entry*>& visited) const {
  if (std::find(visited.begin(), visited.end(), &x) != visited.end())
    return; // A cycle of exchange-to-exchange bindings.
  visited.push_back(&x);
  bool matched_any = false;
  // Exchange destinations are collected and followed after the shared lock
  // of `x` is released.
  std::vector<std::string> next_exchanges;
  x.for_each_match(key, headers, [&](const binding_dest& d) {
    if (!d.to_exchange) {
      add_unique(out, names, d.queue, d.name);
      matched_any = true;
    } else {
      next_exchanges.push_back(d.name);
    }
  });
  for (auto& name : next_exchanges) {
    if (auto next = find_exchange(name)) {
      auto n = out.size();
      route_impl(*next, key, headers, out, names, visited);
      matched_any = matched_any || out.size() > n;
    }
  }
  if (!matched_any && !x.alternate_exchange.empty())
    if (auto alt = find_exchange(x.alternate_exchange))
      route_impl(*alt, key, headers, out, names, visited);
}

} // namespace flotilla
