#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/errc.hpp"

namespace flotilla::protocol {

// AMQP field values as RabbitMQ encodes them. Wire tags:
//   t bool    b int8    B uint8    s int16   u uint16   I int32   i uint32
//   l int64   f float   d double   D decimal S string   x byte_array
//   A array   T timestamp          F table   V void
// On decode 'L' is also accepted and read as a signed 64-bit value, like
// RabbitMQ does; it is re-encoded as 'l'.

/// 'D': value / 10^scale.
struct decimal_value {
  uint8_t scale = 0;
  uint32_t value = 0;
};

/// 'x': raw bytes, kept apart from 'S' so they re-encode with their own tag.
struct byte_array {
  std::string bytes;
};

/// 'T': seconds since the epoch (64-bit, unsigned).
struct timestamp_value {
  uint64_t seconds = 0;
};

inline bool operator==(const decimal_value& a, const decimal_value& b) {
  return a.scale == b.scale && a.value == b.value;
}
inline bool operator!=(const decimal_value& a, const decimal_value& b) {
  return !(a == b);
}
inline bool operator==(const byte_array& a, const byte_array& b) {
  return a.bytes == b.bytes;
}
inline bool operator!=(const byte_array& a, const byte_array& b) {
  return !(a == b);
}
inline bool operator==(const timestamp_value& a, const timestamp_value& b) {
  return a.seconds == b.seconds;
}
inline bool operator!=(const timestamp_value& a, const timestamp_value& b) {
  return !(a == b);
}

struct field_value;

/// 'A': an ordered list of values.
using field_array = std::vector<field_value>;

/// 'F': an ordered list of (name, value) pairs, in wire order. Names are short
/// strings. Duplicates are kept as received; find() returns the first.
struct field_table {
  using entry = std::pair<std::string, field_value>;
  std::vector<entry> entries;

  field_table() = default;
  field_table(std::initializer_list<entry> init);

  /// Returns the value of the first entry named `key`, or nullptr.
  const field_value* find(std::string_view key) const;
  field_value* find(std::string_view key);

  /// Replaces the value of the first entry named `key`, or appends one.
  void set(std::string key, field_value v);

  /// Removes every entry named `key`; returns how many were removed.
  size_t erase(std::string_view key);

  bool empty() const {
    return entries.empty();
  }
  size_t size() const {
    return entries.size();
  }
  auto begin() const {
    return entries.begin();
  }
  auto end() const {
    return entries.end();
  }
  auto begin() {
    return entries.begin();
  }
  auto end() {
    return entries.end();
  }
};

/// One typed field value. Default-constructed it is void ('V').
struct field_value {
  using variant_type
    = std::variant<std::monostate, bool, int8_t, uint8_t, int16_t, uint16_t,
                   int32_t, uint32_t, int64_t, float, double, decimal_value,
                   std::string, byte_array, field_array, timestamp_value,
                   field_table>;

  variant_type value;

  /// True if T is one of the alternatives (plain type test, so it never asks
  /// whether field_value itself is constructible while it is incomplete).
  template<class T, class V = variant_type>
  struct is_alternative;
  template<class T, class... Ts>
  struct is_alternative<T, std::variant<Ts...>>
    : std::disjunction<std::is_same<T, Ts>...> {};

  field_value() = default;

  /// Wraps exactly one of the alternative types (no integer conversions: a
  /// plain `5` is int32_t 'I', `int64_t{5}` is 'l').
  template<class T,
           class = std::enable_if_t<is_alternative<std::decay_t<T>>::value>>
  field_value(T&& x)
    : value(std::in_place_type<std::decay_t<T>>, std::forward<T>(x)) {}

  /// A long string ('S').
  field_value(const char* s) : value(std::in_place_type<std::string>, s) {}

  /// A long string ('S').
  field_value(std::string_view s)
    : value(std::in_place_type<std::string>, s.data(), s.size()) {}

  /// Returns true for void ('V').
  bool is_void() const {
    return std::holds_alternative<std::monostate>(value);
  }

  /// Returns the value of any integer type (b B s u I i l), else nullopt.
  /// Booleans and timestamps are not integers here.
  std::optional<int64_t> as_int() const;

  /// Returns the bytes of a long string ('S') or byte array ('x'), else null.
  const std::string* as_string() const;

  /// Returns the nested table ('F'), else null.
  const field_table* as_table() const;

  /// Returns the array ('A'), else null.
  const field_array* as_array() const;

  /// Returns the boolean ('t'), else nullopt.
  std::optional<bool> as_bool() const;

  /// Returns the wire tag this value encodes with ('t', 'I', ...).
  char tag() const;
};

bool operator==(const field_value& a, const field_value& b);
bool operator!=(const field_value& a, const field_value& b);
bool operator==(const field_table& a, const field_table& b);
bool operator!=(const field_table& a, const field_table& b);

/// Maximum nesting of tables and arrays accepted by the decoders.
constexpr int max_field_depth = 64;

/// Decodes a table (32-bit byte length, then name/value pairs) from the front
/// of `in`, consuming it. Returns errc::syntax_error on truncated or malformed
/// data (length beyond the input, unknown tag, nesting over max_field_depth);
/// then `in` and `out` are unspecified. Replaces `out`.
errc decode_field_table(std::string_view& in, field_table& out);

/// Decodes an array (32-bit byte length, then tagged values); errors as for
/// decode_field_table.
errc decode_field_array(std::string_view& in, field_array& out);

/// Decodes one tagged value (tag octet, then the value); errors as for
/// decode_field_table.
errc decode_field_value(std::string_view& in, field_value& out);

/// Appends `t` as a table (32-bit byte length, then the pairs). Names longer
/// than 255 bytes are truncated.
void encode_field_table(std::string& out, const field_table& t);

/// Appends `a` as an array (32-bit byte length, then tagged values).
void encode_field_array(std::string& out, const field_array& a);

/// Appends `v` as a tag octet and its value.
void encode_field_value(std::string& out, const field_value& v);

/// Returns a short human-readable rendering for logs and the inspector, e.g.
/// `{"x-max-length": 10, "x-queue-type": "quorum"}`.
std::string describe(const field_table& t);
std::string describe(const field_value& v);

} // namespace flotilla::protocol
