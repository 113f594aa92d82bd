#include "actors/queue_arguments.hpp"

#include <limits>
#include <string>

namespace flotilla {

namespace {

using protocol::field_table;
using protocol::field_value;

/// Returns RabbitMQ's name for the AMQP type of `v`, as its errors show it.
const char* type_name(const field_value& v) {
  switch (v.tag()) {
    case 't':
      return "bool";
    case 'b':
      return "byte";
    case 'B':
      return "unsignedbyte";
    case 's':
      return "short";
    case 'u':
      return "unsignedshort";
    case 'I':
      return "signedint";
    case 'i':
      return "unsignedint";
    case 'l':
      return "long";
    case 'f':
      return "float";
    case 'd':
      return "double";
    case 'D':
      return "decimal";
    case 'S':
      return "longstr";
    case 'x':
      return "binary";
    case 'A':
      return "array";
    case 'T':
      return "timestamp";
    case 'F':
      return "table";
    default:
      return "void";
  }
}

/// Collects the first validation error, in RabbitMQ's wording.
struct checker {
  const field_table& args;
  std::string& error_text;
  std::string_view queue_name;
  std::string_view vhost;

  errc fail(std::string_view arg, const std::string& why) {
    error_text = "invalid arg '";
    error_text += arg;
    error_text += '\'';
    if (!queue_name.empty()) {
      error_text += " for queue '";
      error_text += queue_name;
      error_text += "' in vhost '";
      error_text += vhost;
      error_text += '\'';
    }
    error_text += ": ";
    error_text += why;
    return errc::precondition_failed;
  }

  errc bad_type(std::string_view arg, const field_value& v) {
    return fail(arg, std::string{"{unacceptable_type,"} + type_name(v) + "}");
  }

  errc bad_value(std::string_view arg, const char* what, int64_t value) {
    return fail(arg,
                std::string{"{"} + what + "," + std::to_string(value) + "}");
  }

  /// Reads an integer argument in [min, max] into `out` when present.
  errc integer(std::string_view arg, int64_t min, int64_t max,
               const char* too_large, std::optional<int64_t>& out) {
    auto* v = args.find(arg);
    if (v == nullptr)
      return errc::none;
    auto i = v->as_int();
    if (!i)
      return bad_type(arg, *v);
    if (*i < min)
      return bad_value(arg, *i < 0 ? "value_negative" : "value_zero", *i);
    if (*i > max)
      return bad_value(arg, too_large, *i);
    out = *i;
    return errc::none;
  }

  /// Reads a long string argument into `out` when present.
  errc string(std::string_view arg, std::optional<std::string>& out) {
    auto* v = args.find(arg);
    if (v == nullptr)
      return errc::none;
    if (v->tag() != 'S')
      return bad_type(arg, *v);
    out = *v->as_string();
    return errc::none;
  }
};

} // namespace

const char* to_string(queue_config::overflow_policy p) {
  switch (p) {
    case queue_config::overflow_policy::reject_publish:
      return "reject-publish";
    case queue_config::overflow_policy::reject_publish_dlx:
      return "reject-publish-dlx";
    default:
      return "drop-head";
  }
}

errc parse_queue_arguments(const protocol::field_table& args, queue_config& out,
                           std::string& error_text, std::string_view queue_name,
                           std::string_view vhost) {
  constexpr auto no_limit = std::numeric_limits<int64_t>::max();
  out = queue_config{};
  checker c{args, error_text, queue_name, vhost};
  if (auto e = c.integer("x-expires", 1, max_expiry_ms, "value_too_large",
                         out.expires);
      e != errc::none)
    return e;
  if (auto e = c.integer("x-message-ttl", 0, max_expiry_ms, "value_too_large",
                         out.message_ttl);
      e != errc::none)
    return e;
  if (auto e = c.string("x-dead-letter-exchange", out.dead_letter_exchange);
      e != errc::none)
    return e;
  if (auto e
      = c.string("x-dead-letter-routing-key", out.dead_letter_routing_key);
      e != errc::none)
    return e;
  if (out.dead_letter_routing_key && !out.dead_letter_exchange)
    return c.fail("x-dead-letter-routing-key",
                  "routing_key_but_no_dlx_defined");
  if (auto e = c.integer("x-max-length", 0, no_limit, "", out.max_length);
      e != errc::none)
    return e;
  if (auto e
      = c.integer("x-max-length-bytes", 0, no_limit, "", out.max_length_bytes);
      e != errc::none)
    return e;
  std::optional<int64_t> priority;
  if (auto e = c.integer("x-max-priority", 0, max_supported_priority,
                         "max_value_exceeded", priority);
      e != errc::none)
    return e;
  out.max_priority = static_cast<uint8_t>(priority.value_or(0));
  if (auto* v = args.find("x-overflow")) {
    if (v->tag() != 'S')
      return c.bad_type("x-overflow", *v);
    auto& s = *v->as_string();
    if (s == "drop-head")
      out.overflow = queue_config::overflow_policy::drop_head;
    else if (s == "reject-publish")
      out.overflow = queue_config::overflow_policy::reject_publish;
    else if (s == "reject-publish-dlx")
      out.overflow = queue_config::overflow_policy::reject_publish_dlx;
    else
      return c.fail("x-overflow", "{invalid_overflow,<<\"" + s + "\">>}");
  }
  if (auto* v = args.find("x-single-active-consumer")) {
    auto b = v->as_bool();
    if (!b)
      return c.bad_type("x-single-active-consumer", *v);
    out.single_active_consumer = *b;
  }
  return errc::none;
}

const char* first_inequivalent_arg(const queue_config& a,
                                   const queue_config& b) {
  if (a.expires != b.expires)
    return "x-expires";
  if (a.message_ttl != b.message_ttl)
    return "x-message-ttl";
  if (a.dead_letter_exchange != b.dead_letter_exchange)
    return "x-dead-letter-exchange";
  if (a.dead_letter_routing_key != b.dead_letter_routing_key)
    return "x-dead-letter-routing-key";
  if (a.max_length != b.max_length)
    return "x-max-length";
  if (a.max_length_bytes != b.max_length_bytes)
    return "x-max-length-bytes";
  if (a.max_priority != b.max_priority)
    return "x-max-priority";
  if (a.overflow != b.overflow)
    return "x-overflow";
  if (a.single_active_consumer != b.single_active_consumer)
    return "x-single-active-consumer";
  return nullptr;
}

bool equivalent(const queue_config& a, const queue_config& b) {
  return first_inequivalent_arg(a, b) == nullptr;
}

errc parse_expiration(const std::optional<std::string>& expiration,
                      std::optional<int64_t>& ttl_ms, std::string* error_text) {
  ttl_ms.reset();
  if (!expiration)
    return errc::none;
  auto& s = *expiration;
  // Like Erlang's string:to_integer/1: an optional sign, then digits, and
  // nothing after them.
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-'))
    negative = s[i++] == '-';
  size_t digits_begin = i;
  int64_t value = 0;
  bool huge = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (value > max_expiry_ms)
      huge = true; // Keep scanning; the value no longer matters.
    else
      value = value * 10 + (s[i] - '0');
  }
  auto fail = [&](const std::string& why) {
    if (error_text != nullptr)
      *error_text = "invalid expiration '" + s + "': " + why;
    return errc::precondition_failed;
  };
  if (i == digits_begin)
    return fail("no_integer");
  if (i != s.size())
    return fail("{leftover_string,\"" + s.substr(i) + "\"}");
  std::string shown = huge ? s.substr(digits_begin) : std::to_string(value);
  if (negative && (value != 0 || huge))
    return fail("{value_negative,-" + shown + "}");
  if (huge || value > max_expiry_ms)
    return fail("{value_too_large," + shown + "}");
  ttl_ms = value;
  return errc::none;
}

std::optional<int64_t>
parse_expiration(const std::optional<std::string>& expiration) {
  std::optional<int64_t> ttl;
  if (parse_expiration(expiration, ttl) != errc::none)
    return std::nullopt;
  return ttl;
}

} // namespace flotilla
