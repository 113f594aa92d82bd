#include "config/connectors.hpp"

#include <algorithm>
#include <charconv>

#include "config/broker_options.hpp"
#include "config/users.hpp"
#include "protocol/matching.hpp"

namespace flotilla::config {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'
         || c == '\v';
}

bool has_blank_or_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return is_blank(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

bool parse_number(std::string_view text, uint32_t lo, uint32_t hi,
                  uint32_t& out) {
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()
      || v < lo || v > hi)
    return false;
  out = v;
  return true;
}

// "[user/password@]host:port"; IPv6 literals in brackets ("[::1]:7001").
std::string parse_address(std::string_view text, connector_spec& out) {
  auto at = text.rfind('@');
  if (at != std::string_view::npos) {
    auto cred = text.substr(0, at);
    auto slash = cred.find('/');
    if (slash == std::string_view::npos || slash == 0)
      return "address '" + std::string(text)
             + "': expected user/password before '@'";
    out.user = std::string(cred.substr(0, slash));
    out.password = std::string(cred.substr(slash + 1));
    text.remove_prefix(at + 1);
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return "address '" + std::string(text) + "': expected host:port";
  auto host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  uint32_t port = 0;
  if (!parse_number(text.substr(colon + 1), 1, 65535, port))
    return "address '" + std::string(text)
           + "': expected a port 1-65535 after ':'";
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(port);
  return {};
}

std::string add_patterns(std::string_view field, std::string_view value,
                         std::vector<std::string>& out) {
  for (auto p : split(value, ',')) {
    if (auto why = check_key_pattern(p); !why.empty())
      return std::string(field) + " '" + std::string(p) + "': " + why;
    out.emplace_back(p);
  }
  return {};
}

std::string parse_field(std::string_view key, std::string_view value,
                        connector_spec& out) {
  auto bad = [&](const char* expected) {
    return std::string(key) + "='" + std::string(value) + "': " + expected;
  };
  if (key == "name") {
    if (value.empty() || value.size() > 255)
      return bad("expected a name of 1-255 bytes");
    out.name = std::string(value);
  } else if (key == "address") {
    return parse_address(value, out);
  } else if (key == "user") {
    if (value.empty())
      return bad("expected a user name");
    out.user = std::string(value);
  } else if (key == "password") {
    out.password = std::string(value);
  } else if (key == "vhost") {
    if (value.empty())
      return bad("expected a vhost name");
    out.vhost = std::string(value);
  } else if (key == "exchange") {
    for (auto x : split(value, ',')) {
      if (x.empty())
        return bad("expected exchange names separated by ','");
      out.exchanges.emplace_back(x);
    }
  } else if (key == "static") {
    auto slash = value.find('/');
    if (slash == std::string_view::npos || slash == 0)
      return bad("expected EXCHANGE/KEY");
    out.statics.push_back(static_route{std::string(value.substr(0, slash)),
                                       std::string(value.substr(slash + 1))});
  } else if (key == "include") {
    return add_patterns(key, value, out.filter.include);
  } else if (key == "exclude") {
    return add_patterns(key, value, out.filter.exclude);
  } else if (key == "duplex") {
    if (!parse_yes_no(value, out.duplex))
      return bad("expected yes or no");
  } else if (key == "remote-name") {
    if (value.empty() || value.size() > 255)
      return bad("expected a name of 1-255 bytes");
    out.remote_name = std::string(value);
  } else if (key == "max-hops") {
    if (!parse_number(value, 1, 255, out.max_hops))
      return bad("expected an integer 1-255");
  } else if (key == "credit") {
    if (!parse_number(value, 1, 65535, out.credit))
      return bad("expected an integer 1-65535");
  } else {
    return "unknown connector field '" + std::string(key)
           + "' (expected name, address, user, password, vhost, exchange, "
             "static, include, exclude, duplex, remote-name, max-hops or "
             "credit)";
  }
  return {};
}

} // namespace

bool key_pattern_match(std::string_view pattern, std::string_view key) {
  // ActiveMQ's trailing '>' is "one or more words": '*' then '#'.
  if (pattern == ">")
    return protocol::topic_match("*.#", key);
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ".>") {
    std::string p(pattern.substr(0, pattern.size() - 1));
    p += "*.#";
    return protocol::topic_match(p, key);
  }
  return protocol::topic_match(pattern, key);
}

std::string check_key_pattern(std::string_view pattern) {
  if (pattern.empty())
    return "empty pattern";
  if (pattern.size() > 255)
    return "longer than 255 bytes";
  if (has_blank_or_control(pattern))
    return "spaces or control characters";
  auto words = split(pattern, '.');
  for (size_t i = 0; i + 1 < words.size(); ++i)
    if (words[i] == ">")
      return "'>' is allowed as the last word only";
  return {};
}

bool key_filter::allows(std::string_view key) const {
  auto match = [key](const std::string& p) {
    return key_pattern_match(p, key);
  };
  if (!include.empty() && std::none_of(include.begin(), include.end(), match))
    return false;
  return std::none_of(exclude.begin(), exclude.end(), match);
}

std::string parse_connector(std::string_view text, connector_spec& out) {
  connector_spec spec;
  bool have_address = false;
  while (!text.empty()) {
    while (!text.empty() && is_blank(text.front()))
      text.remove_prefix(1);
    if (text.empty())
      break;
    size_t end = 0;
    while (end < text.size() && !is_blank(text[end]))
      ++end;
    auto field = text.substr(0, end);
    text.remove_prefix(end);
    auto eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return "expected key=value, got '" + std::string(field) + "'";
    auto key = field.substr(0, eq);
    if (key == "address")
      have_address = true;
    if (auto why = parse_field(key, field.substr(eq + 1), spec); !why.empty())
      return why;
  }
  if (spec.name.empty())
    return "a connector needs name=NAME";
  if (!have_address)
    return "connector '" + spec.name
           + "' needs address=[USER/PASSWORD@]HOST:FABRIC_PORT";
  if (spec.exchanges.empty() && spec.statics.empty())
    return "connector '" + spec.name
           + "' has no routes (give exchange=NAME or static=EXCHANGE/KEY)";
  for (auto& r : spec.statics)
    if (!spec.filter.allows(r.key))
      return "connector '" + spec.name + "': static key '" + r.key
             + "' is not allowed by its include/exclude patterns";
  out = std::move(spec);
  return {};
}

} // namespace flotilla::config
