#include "protocol/field_table.hpp"

#include <cstdio>
#include <cstring>

#include "protocol/wire.hpp"

namespace flotilla::protocol {

// -- field_table and field_value members -------------------------------------

field_table::field_table(std::initializer_list<entry> init) : entries(init) {}

const field_value* field_table::find(std::string_view key) const {
  for (auto& [k, v] : entries)
    if (k == key)
      return &v;
  return nullptr;
}

field_value* field_table::find(std::string_view key) {
  for (auto& [k, v] : entries)
    if (k == key)
      return &v;
  return nullptr;
}

void field_table::set(std::string key, field_value v) {
  if (auto* existing = find(key)) {
    *existing = std::move(v);
    return;
  }
  entries.emplace_back(std::move(key), std::move(v));
}

size_t field_table::erase(std::string_view key) {
  auto before = entries.size();
  size_t out = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].first == key)
      continue;
    if (out != i)
      entries[out] = std::move(entries[i]);
    ++out;
  }
  entries.resize(out);
  return before - out;
}

std::optional<int64_t> field_value::as_int() const {
  return std::visit(
    [](const auto& x) -> std::optional<int64_t> {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
        return static_cast<int64_t>(x);
      else
        return std::nullopt;
    },
    value);
}

const std::string* field_value::as_string() const {
  if (auto* s = std::get_if<std::string>(&value))
    return s;
  if (auto* b = std::get_if<byte_array>(&value))
    return &b->bytes;
  return nullptr;
}

const field_table* field_value::as_table() const {
  return std::get_if<field_table>(&value);
}

const field_array* field_value::as_array() const {
  return std::get_if<field_array>(&value);
}

std::optional<bool> field_value::as_bool() const {
  if (auto* b = std::get_if<bool>(&value))
    return *b;
  return std::nullopt;
}

namespace {

// Wire tags by variant index.
constexpr char tags[] = {'V', 't', 'b', 'B', 's', 'u', 'I', 'i', 'l',
                         'f', 'd', 'D', 'S', 'x', 'A', 'T', 'F'};
static_assert(sizeof(tags) == std::variant_size_v<field_value::variant_type>);

} // namespace

char field_value::tag() const {
  return tags[value.index()];
}

bool operator==(const field_value& a, const field_value& b) {
  return a.value == b.value;
}

bool operator!=(const field_value& a, const field_value& b) {
  return !(a == b);
}

bool operator==(const field_table& a, const field_table& b) {
  return a.entries == b.entries;
}

bool operator!=(const field_table& a, const field_table& b) {
  return !(a == b);
}

// -- decoding -----------------------------------------------------------------

namespace {

// Recursive-descent decoder; `depth` counts enclosing tables and arrays, so a
// peer cannot exhaust our stack with deeply nested values.
struct field_decoder {
  wire::reader r;

  explicit field_decoder(std::string_view in) : r(in) {}

  bool value(field_value& out, int depth) {
    uint8_t tag;
    if (!r.u8(tag))
      return false;
    switch (tag) {
      case 'V':
        out.value.emplace<std::monostate>();
        return true;
      case 't': {
        uint8_t x;
        if (!r.u8(x))
          return false;
        out.value.emplace<bool>(x != 0);
        return true;
      }
      case 'b': {
        uint8_t x;
        if (!r.u8(x))
          return false;
        out.value.emplace<int8_t>(static_cast<int8_t>(x));
        return true;
      }
      case 'B': {
        uint8_t x;
        if (!r.u8(x))
          return false;
        out.value.emplace<uint8_t>(x);
        return true;
      }
      case 's': {
        uint16_t x;
        if (!r.u16(x))
          return false;
        out.value.emplace<int16_t>(static_cast<int16_t>(x));
        return true;
      }
      case 'u': {
        uint16_t x;
        if (!r.u16(x))
          return false;
        out.value.emplace<uint16_t>(x);
        return true;
      }
      case 'I': {
        uint32_t x;
        if (!r.u32(x))
          return false;
        out.value.emplace<int32_t>(static_cast<int32_t>(x));
        return true;
      }
      case 'i': {
        uint32_t x;
        if (!r.u32(x))
          return false;
        out.value.emplace<uint32_t>(x);
        return true;
      }
      case 'l':
      case 'L': {
        uint64_t x;
        if (!r.u64(x))
          return false;
        out.value.emplace<int64_t>(static_cast<int64_t>(x));
        return true;
      }
      case 'f': {
        uint32_t x;
        if (!r.u32(x))
          return false;
        float f;
        std::memcpy(&f, &x, sizeof(f));
        out.value.emplace<float>(f);
        return true;
      }
      case 'd': {
        uint64_t x;
        if (!r.u64(x))
          return false;
        double d;
        std::memcpy(&d, &x, sizeof(d));
        out.value.emplace<double>(d);
        return true;
      }
      case 'D': {
        decimal_value d;
        if (!r.u8(d.scale) || !r.u32(d.value))
          return false;
        out.value.emplace<decimal_value>(d);
        return true;
      }
      case 'S': {
        std::string_view s;
        if (!r.longstr(s))
          return false;
        out.value.emplace<std::string>(s.data(), s.size());
        return true;
      }
      case 'x': {
        std::string_view s;
        if (!r.longstr(s))
          return false;
        out.value.emplace<byte_array>().bytes.assign(s.data(), s.size());
        return true;
      }
      case 'T': {
        uint64_t x;
        if (!r.u64(x))
          return false;
        out.value.emplace<timestamp_value>(timestamp_value{x});
        return true;
      }
      case 'A':
        return array(out.value.emplace<field_array>(), depth + 1);
      case 'F':
        return table(out.value.emplace<field_table>(), depth + 1);
      default:
        return false;
    }
  }

  // Reads a length-prefixed body and runs `f` on a sub-decoder over it; the
  // body must be consumed exactly.
  template<class F>
  bool nested(int depth, F&& f) {
    if (depth > max_field_depth)
      return false;
    std::string_view body;
    if (!r.longstr(body))
      return false;
    field_decoder sub{body};
    while (!sub.r.empty())
      if (!f(sub))
        return false;
    return true;
  }

  bool table(field_table& out, int depth) {
    out.entries.clear();
    return nested(depth, [&](field_decoder& sub) {
      std::string_view name;
      if (!sub.r.shortstr(name))
        return false;
      auto& e = out.entries.emplace_back();
      e.first.assign(name.data(), name.size());
      return sub.value(e.second, depth);
    });
  }

  bool array(field_array& out, int depth) {
    out.clear();
    return nested(depth, [&](field_decoder& sub) {
      return sub.value(out.emplace_back(), depth);
    });
  }
};

} // namespace

errc decode_field_table(std::string_view& in, field_table& out) {
  field_decoder d{in};
  if (!d.table(out, 1))
    return errc::syntax_error;
  in = d.r.rest();
  return errc::none;
}

errc decode_field_array(std::string_view& in, field_array& out) {
  field_decoder d{in};
  if (!d.array(out, 1))
    return errc::syntax_error;
  in = d.r.rest();
  return errc::none;
}

errc decode_field_value(std::string_view& in, field_value& out) {
  field_decoder d{in};
  if (!d.value(out, 0))
    return errc::syntax_error;
  in = d.r.rest();
  return errc::none;
}

// -- encoding -----------------------------------------------------------------

namespace {

// Reserves a 32-bit length, runs `f`, then patches in the byte count.
template<class F>
void with_length(std::string& out, F&& f) {
  auto at = out.size();
  out.append(4, '\0');
  f();
  wire::store_u32(&out[at], static_cast<uint32_t>(out.size() - at - 4));
}

void encode_value_body(std::string& out, const field_value& v);

void encode_table_body(std::string& out, const field_table& t) {
  with_length(out, [&] {
    for (auto& [k, v] : t.entries) {
      wire::put_shortstr(out, k);
      out.push_back(v.tag());
      encode_value_body(out, v);
    }
  });
}

void encode_array_body(std::string& out, const field_array& a) {
  with_length(out, [&] {
    for (auto& v : a) {
      out.push_back(v.tag());
      encode_value_body(out, v);
    }
  });
}

void encode_value_body(std::string& out, const field_value& v) {
  std::visit(
    [&out](const auto& x) {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, std::monostate>) {
        // 'V' has no body.
      } else if constexpr (std::is_same_v<T, bool>) {
        wire::put_u8(out, x ? 1 : 0);
      } else if constexpr (std::is_same_v<
                             T, int8_t> || std::is_same_v<T, uint8_t>) {
        wire::put_u8(out, static_cast<uint8_t>(x));
      } else if constexpr (std::is_same_v<
                             T, int16_t> || std::is_same_v<T, uint16_t>) {
        wire::put_u16(out, static_cast<uint16_t>(x));
      } else if constexpr (std::is_same_v<
                             T, int32_t> || std::is_same_v<T, uint32_t>) {
        wire::put_u32(out, static_cast<uint32_t>(x));
      } else if constexpr (std::is_same_v<T, int64_t>) {
        wire::put_u64(out, static_cast<uint64_t>(x));
      } else if constexpr (std::is_same_v<T, float>) {
        uint32_t bits;
        std::memcpy(&bits, &x, sizeof(bits));
        wire::put_u32(out, bits);
      } else if constexpr (std::is_same_v<T, double>) {
        uint64_t bits;
        std::memcpy(&bits, &x, sizeof(bits));
        wire::put_u64(out, bits);
      } else if constexpr (std::is_same_v<T, decimal_value>) {
        wire::put_u8(out, x.scale);
        wire::put_u32(out, x.value);
      } else if constexpr (std::is_same_v<T, std::string>) {
        wire::put_longstr(out, x);
      } else if constexpr (std::is_same_v<T, byte_array>) {
        wire::put_longstr(out, x.bytes);
      } else if constexpr (std::is_same_v<T, field_array>) {
        encode_array_body(out, x);
      } else if constexpr (std::is_same_v<T, timestamp_value>) {
        wire::put_u64(out, x.seconds);
      } else {
        static_assert(std::is_same_v<T, field_table>);
        encode_table_body(out, x);
      }
    },
    v.value);
}

} // namespace

void encode_field_table(std::string& out, const field_table& t) {
  encode_table_body(out, t);
}

void encode_field_array(std::string& out, const field_array& a) {
  encode_array_body(out, a);
}

void encode_field_value(std::string& out, const field_value& v) {
  out.push_back(v.tag());
  encode_value_body(out, v);
}

// -- describe -----------------------------------------------------------------

namespace {

void append_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void describe_to(std::string& out, const field_table& t);

void describe_to(std::string& out, const field_value& v) {
  std::visit(
    [&out](const auto& x) {
      using T = std::decay_t<decltype(x)>;
      char buf[64];
      if constexpr (std::is_same_v<T, std::monostate>) {
        out += "void";
      } else if constexpr (std::is_same_v<T, bool>) {
        out += x ? "true" : "false";
      } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
        std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(x));
        out += buf;
      } else if constexpr (std::is_integral_v<T>) {
        std::snprintf(buf, sizeof(buf), "%llu",
                      static_cast<unsigned long long>(x));
        out += buf;
      } else if constexpr (std::is_floating_point_v<T>) {
        std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(x));
        out += buf;
      } else if constexpr (std::is_same_v<T, decimal_value>) {
        std::snprintf(buf, sizeof(buf), "decimal(%u,%u)",
                      static_cast<unsigned>(x.value),
                      static_cast<unsigned>(x.scale));
        out += buf;
      } else if constexpr (std::is_same_v<T, std::string>) {
        append_quoted(out, x);
      } else if constexpr (std::is_same_v<T, byte_array>) {
        out += "bytes";
        append_quoted(out, x.bytes);
      } else if constexpr (std::is_same_v<T, field_array>) {
        out.push_back('[');
        for (size_t i = 0; i < x.size(); ++i) {
          if (i > 0)
            out += ", ";
          describe_to(out, x[i]);
        }
        out.push_back(']');
      } else if constexpr (std::is_same_v<T, timestamp_value>) {
        std::snprintf(buf, sizeof(buf), "timestamp(%llu)",
                      static_cast<unsigned long long>(x.seconds));
        out += buf;
      } else {
        describe_to(out, x);
      }
    },
    v.value);
}

void describe_to(std::string& out, const field_table& t) {
  out.push_back('{');
  bool first = true;
  for (auto& [k, v] : t.entries) {
    if (!first)
      out += ", ";
    first = false;
    append_quoted(out, k);
    out += ": ";
    describe_to(out, v);
  }
  out.push_back('}');
}

} // namespace

std::string describe(const field_table& t) {
  std::string out;
  describe_to(out, t);
  return out;
}

std::string describe(const field_value& v) {
  std::string out;
  describe_to(out, v);
  return out;
}

} // namespace flotilla::protocol
