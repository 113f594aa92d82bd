#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// Federation connectors declared in flotillad's config file (the
/// `connector` option), in the spirit of ActiveMQ's networkConnectors: a
/// link to a remote broker and the routes that use it, created at boot.
/// Plain C++, no CAF; parsed once at startup, then copied read-only.
namespace flotilla::config {

/// Returns true if the binding or routing key `key` matches `pattern`. Both
/// are split into words at '.'. In the pattern, `*` is exactly one word, `#`
/// zero or more words (AMQP topic semantics) and `>` (ActiveMQ's) one or
/// more words, allowed as the last word only: `mcollective.>` matches
/// `mcollective.a` and `mcollective.a.b` but not `mcollective`. Characters
/// of `key` are literal: a binding key `a.*` matches the pattern `a.*` and
/// `a.>`, and the pattern `a.b` does not match the key `a.*`.
bool key_pattern_match(std::string_view pattern, std::string_view key);

/// Returns an empty string if `pattern` is a valid key pattern, else why not
/// (`>` not last, empty pattern, spaces).
std::string check_key_pattern(std::string_view pattern);

/// Which keys may cross a connector: a key passes if it matches an include
/// pattern (or there are none) and no exclude pattern.
struct key_filter {
  std::vector<std::string> include;
  std::vector<std::string> exclude;

  /// Returns true if `key` may cross.
  bool allows(std::string_view key) const;

  /// True if the filter lets every key through.
  bool empty() const {
    return include.empty() && exclude.empty();
  }
};

/// A static route of a connector: messages of `exchange` bound with `key`.
struct static_route {
  std::string exchange;
  std::string key;
};

/// One `connector = ...` line. Invariant after parse_connector(): name,
/// host and port are set and every route's key passes `filter`.
struct connector_spec {
  std::string name;
  std::string host; ///< The remote broker's fabric address.
  uint16_t port = 0;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  /// Exchanges with a dynamic route (bindings on this broker pull).
  std::vector<std::string> exchanges;
  std::vector<static_route> statics;
  key_filter filter;
  /// The remote broker also pulls from this one over the same connection
  /// (the same exchanges, keys and filter).
  bool duplex = false;
  /// Duplex: the name the remote gives its end of the link (default
  /// "duplex:NODE/NAME"); e.g. this broker's AMQP address, so that
  /// `flotilla route map` can follow it.
  std::string remote_name;
  uint32_t max_hops = 16;
  uint32_t credit = 100;
};

/// Parses the value of a `connector` option: space-separated `key=value`
/// fields, e.g.
/// `name=to-a address=fed/secret@127.0.0.1:7001 exchange=amq.direct
///  include=mcollective.> exclude=*.orders duplex=yes max-hops=4`.
/// Fields: name, address (`[user/password@]host:port`, the remote fabric
/// port), user, password, vhost, exchange (repeatable, or a comma list),
/// static (`EXCHANGE/KEY`, repeatable), include, exclude (repeatable, or
/// comma lists), duplex (yes/no), remote-name, max-hops (1-255), credit
/// (1-65535).
/// Returns an empty string on success, else the reason (without file and
/// line; the option parser adds them). Never throws.
std::string parse_connector(std::string_view text, connector_spec& out);

} // namespace flotilla::config
