#include "actors/store_codec.hpp"

#include "protocol/frame.hpp"
#include "protocol/properties.hpp"
#include "protocol/wire.hpp"

namespace flotilla {

namespace pr = protocol;

namespace {

std::string join_key(char kind, std::initializer_list<std::string_view> parts) {
  std::string key(1, kind);
  for (auto p : parts) {
    key += '\0';
    key.append(p.data(), p.size());
  }
  return key;
}

pr::field_value str(const std::string& s) {
  return pr::field_value{s};
}

bool get_str(const pr::field_table& t, const char* key, std::string& out) {
  auto* v = t.find(key);
  if (v == nullptr || v->as_string() == nullptr)
    return false;
  out = *v->as_string();
  return true;
}

bool get_bool(const pr::field_table& t, const char* key, bool& out) {
  auto* v = t.find(key);
  if (v == nullptr || !v->as_bool())
    return false;
  out = *v->as_bool();
  return true;
}

bool get_table(const pr::field_table& t, const char* key,
               pr::field_table& out) {
  auto* v = t.find(key);
  if (v == nullptr || v->as_table() == nullptr)
    return false;
  out = *v->as_table();
  return true;
}

std::string encode_table(const pr::field_table& t) {
  std::string out;
  pr::encode_field_table(out, t);
  return out;
}

bool decode_table(std::string_view payload, pr::field_table& out) {
  return pr::decode_field_table(payload, out) == errc::none && payload.empty();
}

} // namespace

std::string exchange_key(std::string_view vhost, std::string_view name) {
  return join_key('x', {vhost, name});
}

std::string queue_key(std::string_view vhost, std::string_view name) {
  return join_key('q', {vhost, name});
}

std::string binding_key(const stored_binding& b) {
  auto args = encode_table(b.arguments);
  return join_key('b', {b.vhost, b.source, b.to_exchange ? "x" : "q",
                        b.destination, b.key, args});
}

char meta_kind(std::string_view key) {
  if (key.size() < 2 || key[1] != '\0')
    return 0;
  return key[0];
}

std::string encode(const stored_exchange& x) {
  pr::field_table t;
  t.set("vhost", str(x.vhost));
  t.set("name", str(x.name));
  t.set("type", str(x.type));
  t.set("auto_delete", pr::field_value{x.auto_delete});
  t.set("internal", pr::field_value{x.internal});
  t.set("arguments", pr::field_value{x.arguments});
  return encode_table(t);
}

std::string encode(const stored_queue& q) {
  pr::field_table t;
  t.set("vhost", str(q.vhost));
  t.set("name", str(q.name));
  t.set("queue_id", pr::field_value{static_cast<int64_t>(q.queue_id)});
  t.set("auto_delete", pr::field_value{q.auto_delete});
  t.set("arguments", pr::field_value{q.arguments});
  return encode_table(t);
}

std::string encode(const stored_binding& b) {
  pr::field_table t;
  t.set("vhost", str(b.vhost));
  t.set("source", str(b.source));
  t.set("to_exchange", pr::field_value{b.to_exchange});
  t.set("destination", str(b.destination));
  t.set("key", str(b.key));
  t.set("arguments", pr::field_value{b.arguments});
  return encode_table(t);
}

bool decode(std::string_view payload, stored_exchange& out) {
  pr::field_table t;
  return decode_table(payload, t) && get_str(t, "vhost", out.vhost)
         && get_str(t, "name", out.name) && get_str(t, "type", out.type)
         && get_bool(t, "auto_delete", out.auto_delete)
         && get_bool(t, "internal", out.internal)
         && get_table(t, "arguments", out.arguments);
}

bool decode(std::string_view payload, stored_queue& out) {
  pr::field_table t;
  if (!decode_table(payload, t) || !get_str(t, "vhost", out.vhost)
      || !get_str(t, "name", out.name)
      || !get_bool(t, "auto_delete", out.auto_delete)
      || !get_table(t, "arguments", out.arguments))
    return false;
  auto* id = t.find("queue_id");
  if (id == nullptr || !id->as_int() || *id->as_int() <= 0
      || *id->as_int() > UINT32_MAX)
    return false;
  out.queue_id = static_cast<uint32_t>(*id->as_int());
  return true;
}

bool decode(std::string_view payload, stored_binding& out) {
  pr::field_table t;
  return decode_table(payload, t) && get_str(t, "vhost", out.vhost)
         && get_str(t, "source", out.source)
         && get_bool(t, "to_exchange", out.to_exchange)
         && get_str(t, "destination", out.destination)
         && get_str(t, "key", out.key)
         && get_table(t, "arguments", out.arguments);
}

std::string encode_message(const message& m) {
  pr::field_table t;
  t.set("exchange", str(m.exchange));
  t.set("routing_key", str(m.routing_key));
  t.set("published_at", pr::field_value{static_cast<int64_t>(m.published_at)});
  std::string out;
  pr::encode_field_table(out, t);
  std::string header = m.raw_header;
  if (header.empty()) {
    // Encode the properties as a header frame and keep only its payload.
    std::string frame;
    pr::append_header_frame(frame, 0, m.body.size(), m.properties);
    header = frame.substr(pr::frame_header_size,
                          frame.size() - pr::frame_header_size - 1);
  }
  char len[4];
  pr::wire::store_u32(len, static_cast<uint32_t>(header.size()));
  out.append(len, 4);
  out += header;
  out += m.body;
  return out;
}

message_ptr decode_message(std::string_view payload) {
  pr::field_table t;
  if (pr::decode_field_table(payload, t) != errc::none || payload.size() < 4)
    return nullptr;
  auto m = std::make_shared<message>();
  if (!get_str(t, "exchange", m->exchange)
      || !get_str(t, "routing_key", m->routing_key))
    return nullptr;
  if (auto* p = t.find("published_at"); p != nullptr && p->as_int())
    m->published_at = *p->as_int();
  auto header_len = pr::wire::load_u32(payload.data());
  payload.remove_prefix(4);
  if (header_len > payload.size())
    return nullptr;
  auto header = payload.substr(0, header_len);
  pr::content_header h;
  if (pr::decode_content_header(header, h) != errc::none)
    return nullptr;
  payload.remove_prefix(header_len);
  if (h.body_size != payload.size())
    return nullptr;
  m->properties = std::move(h.properties);
  m->raw_header.assign(header.data(), header.size());
  m->body.assign(payload.data(), payload.size());
  return m;
}

} // namespace flotilla
