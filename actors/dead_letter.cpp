#include "actors/dead_letter.hpp"

#include <utility>

#include "protocol/field_table.hpp"

namespace flotilla {

namespace {

using protocol::field_array;
using protocol::field_table;
using protocol::field_value;

/// Returns the long string in `t` under `key`, or nullptr.
const std::string* string_of(const field_table& t, std::string_view key) {
  auto* v = t.find(key);
  return v != nullptr && v->tag() == 'S' ? v->as_string() : nullptr;
}

bool same(const std::string* s, std::string_view expected) {
  return s != nullptr && *s == expected;
}

/// Appends the long strings of the array header `key` (CC or BCC) to `out`.
void append_routes(const field_table& headers, std::string_view key,
                   field_array& out) {
  auto* v = headers.find(key);
  auto* routes = v != nullptr ? v->as_array() : nullptr;
  if (routes == nullptr)
    return;
  for (auto& r : *routes)
    if (r.tag() == 'S')
      out.emplace_back(*r.as_string());
}

} // namespace

const char* to_string(dead_letter_reason r) {
  switch (r) {
    case dead_letter_reason::rejected:
      return "rejected";
    case dead_letter_reason::expired:
      return "expired";
    default:
      return "maxlen";
  }
}

message_ptr
make_dead_lettered(const message& original, const std::string& queue_name,
                   dead_letter_reason reason, millis now,
                   const std::optional<std::string>& dlx_routing_key,
                   const std::string& dead_letter_exchange) {
  auto copy = std::make_shared<message>();
  copy->exchange = dead_letter_exchange;
  copy->routing_key = dlx_routing_key ? *dlx_routing_key : original.routing_key;
  copy->properties = original.properties;
  copy->body = original.body;
  copy->published_at = now;
  auto& props = copy->properties;
  auto& headers = props.headers ? *props.headers : props.headers.emplace();
  std::string reason_text = to_string(reason);
  // The routing keys the original was routed with: the published one first,
  // then the sender-selected distribution keys.
  field_array routing_keys;
  routing_keys.emplace_back(original.routing_key);
  append_routes(headers, "CC", routing_keys);
  append_routes(headers, "BCC", routing_keys);
  auto new_entry = [&] {
    field_table t;
    t.entries.reserve(7);
    t.set("count", int64_t{1});
    t.set("reason", reason_text);
    t.set("queue", queue_name);
    t.set("time", protocol::timestamp_value{
                    static_cast<uint64_t>(now > 0 ? now / 1000 : 0)});
    t.set("exchange", original.exchange);
    t.set("routing-keys", std::move(routing_keys));
    if (props.expiration)
      t.set("original-expiration", *props.expiration);
    return t;
  };
  auto* old_value = headers.find("x-death");
  auto* old = old_value != nullptr ? old_value->as_array() : nullptr;
  field_array deaths;
  if (old == nullptr) {
    headers.set("x-first-death-reason", reason_text);
    headers.set("x-first-death-queue", queue_name);
    headers.set("x-first-death-exchange", original.exchange);
    deaths.emplace_back(new_entry());
  } else {
    // Entries for this (queue, reason) merge into one at the front; several
    // can only come from old brokers that appended instead of counting.
    deaths.reserve(old->size() + 1);
    deaths.emplace_back(); // The front entry, filled below.
    std::optional<field_table> match;
    int64_t count = 0;
    for (auto& v : *old) {
      auto* t = v.as_table();
      if (t != nullptr && same(string_of(*t, "queue"), queue_name)
          && same(string_of(*t, "reason"), reason_text)) {
        auto* c = t->find("count");
        auto n = c != nullptr ? c->as_int() : std::nullopt;
        count += n && *n > 0 ? *n : 1;
        if (!match)
          match = *t;
        continue;
      }
      deaths.push_back(v);
    }
    if (match) {
      match->set("count", int64_t{count + 1});
      deaths.front() = std::move(*match);
    } else {
      deaths.front() = new_entry();
    }
  }
  headers.set("x-death", std::move(deaths));
  headers.set("x-last-death-reason", reason_text);
  headers.set("x-last-death-queue", queue_name);
  headers.set("x-last-death-exchange", original.exchange);
  if (dlx_routing_key)
    headers.erase("CC");
  props.expiration.reset();
  return copy;
}

bool is_dead_letter_cycle(const message& dead_lettered,
                          dead_letter_reason reason,
                          std::string_view target_queue) {
  if (reason == dead_letter_reason::rejected)
    return false;
  auto& headers = dead_lettered.properties.headers;
  if (!headers)
    return false;
  auto* v = headers->find("x-death");
  auto* deaths = v != nullptr ? v->as_array() : nullptr;
  if (deaths == nullptr)
    return false;
  for (auto& d : *deaths) {
    auto* t = d.as_table();
    if (t == nullptr)
      continue;
    bool rejected = same(string_of(*t, "reason"), "rejected");
    if (same(string_of(*t, "queue"), target_queue))
      return !rejected;
    if (rejected)
      return false;
  }
  return false;
}

} // namespace flotilla
