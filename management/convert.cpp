#include "management/convert.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <google/protobuf/struct.pb.h>

namespace flotilla::management {

namespace gp = google::protobuf;
namespace pr = flotilla::protocol;

namespace {

void to_value(const pr::field_value& v, gp::Value& out);

void to_list(const pr::field_array& a, gp::ListValue& out) {
  for (auto& x : a)
    to_value(x, *out.add_values());
}

void to_value(const pr::field_value& v, gp::Value& out) {
  std::visit(
    [&](auto& x) {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, std::monostate>) {
        out.set_null_value(gp::NULL_VALUE);
      } else if constexpr (std::is_same_v<T, bool>) {
        out.set_bool_value(x);
      } else if constexpr (std::is_arithmetic_v<T>) {
        out.set_number_value(static_cast<double>(x));
      } else if constexpr (std::is_same_v<T, pr::decimal_value>) {
        out.set_number_value(static_cast<double>(x.value)
                             / std::pow(10.0, x.scale));
      } else if constexpr (std::is_same_v<T, std::string>) {
        out.set_string_value(x);
      } else if constexpr (std::is_same_v<T, pr::byte_array>) {
        out.set_string_value(x.bytes);
      } else if constexpr (std::is_same_v<T, pr::field_array>) {
        to_list(x, *out.mutable_list_value());
      } else if constexpr (std::is_same_v<T, pr::timestamp_value>) {
        out.set_number_value(static_cast<double>(x.seconds));
      } else if constexpr (std::is_same_v<T, pr::field_table>) {
        to_struct(x, *out.mutable_struct_value());
      }
    },
    v.value);
}

bool from_value(const gp::Value& v, pr::field_value& out, std::string& error);

bool from_list(const gp::ListValue& l, pr::field_array& out,
               std::string& error) {
  for (auto& x : l.values()) {
    pr::field_value fv;
    if (!from_value(x, fv, error))
      return false;
    out.push_back(std::move(fv));
  }
  return true;
}

bool from_value(const gp::Value& v, pr::field_value& out, std::string& error) {
  switch (v.kind_case()) {
    case gp::Value::kNullValue:
    case gp::Value::KIND_NOT_SET:
      out = pr::field_value{};
      return true;
    case gp::Value::kBoolValue:
      out = pr::field_value{v.bool_value()};
      return true;
    case gp::Value::kNumberValue: {
      auto d = v.number_value();
      if (std::floor(d) == d && std::fabs(d) < 9007199254740992.0)
        out = pr::field_value{static_cast<int64_t>(d)};
      else
        out = pr::field_value{d};
      return true;
    }
    case gp::Value::kStringValue:
      out = pr::field_value{v.string_value()};
      return true;
    case gp::Value::kListValue: {
      pr::field_array a;
      if (!from_list(v.list_value(), a, error))
        return false;
      out = pr::field_value{std::move(a)};
      return true;
    }
    case gp::Value::kStructValue: {
      pr::field_table t;
      if (!from_struct(v.struct_value(), t, error))
        return false;
      out = pr::field_value{std::move(t)};
      return true;
    }
  }
  return true;
}

} // namespace

void to_struct(const pr::field_table& t, gp::Struct& out) {
  auto& fields = *out.mutable_fields();
  for (auto& [key, value] : t)
    if (fields.find(key) == fields.end())
      to_value(value, fields[key]);
}

bool from_struct(const gp::Struct& s, pr::field_table& out,
                 std::string& error) {
  std::vector<std::string> keys;
  for (auto& kv : s.fields())
    keys.push_back(kv.first);
  std::sort(keys.begin(), keys.end());
  for (auto& key : keys) {
    if (key.size() > 255) {
      error
        = "argument name longer than 255 bytes: '" + key.substr(0, 40) + "...'";
      return false;
    }
    pr::field_value v;
    if (!from_value(s.fields().at(key), v, error))
      return false;
    out.set(key, std::move(v));
  }
  return true;
}

} // namespace flotilla::management
