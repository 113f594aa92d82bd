#pragma once

// How the broker's durable state is encoded in journal records (the journal
// itself treats payloads as opaque bytes). Plain C++; see
// docs/store-format.md, "Payloads".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "actors/message.hpp"
#include "protocol/field_table.hpp"

namespace flotilla {

/// A durable exchange as stored under exchange_key().
struct stored_exchange {
  std::string vhost;
  std::string name;
  std::string type;
  bool auto_delete = false;
  bool internal = false;
  protocol::field_table arguments;
};

/// A durable queue as stored under queue_key().
struct stored_queue {
  std::string vhost;
  std::string name;
  uint32_t queue_id = 0;
  bool auto_delete = false;
  protocol::field_table arguments;
};

/// A binding between durable ends as stored under binding_key().
struct stored_binding {
  std::string vhost;
  std::string source;
  bool to_exchange = false;
  std::string destination;
  std::string key;
  protocol::field_table arguments;
};

/// Metadata keys: a kind letter, then NUL-separated names, so any vhost or
/// entity name (which may contain '/') is unambiguous.
std::string exchange_key(std::string_view vhost, std::string_view name);
std::string queue_key(std::string_view vhost, std::string_view name);
std::string binding_key(const stored_binding& b);

/// Returns the kind letter of a metadata key ('x', 'q', 'b'), or 0.
char meta_kind(std::string_view key);

std::string encode(const stored_exchange& x);
std::string encode(const stored_queue& q);
std::string encode(const stored_binding& b);

/// Decoders return false on malformed input (a damaged or foreign record).
bool decode(std::string_view payload, stored_exchange& out);
bool decode(std::string_view payload, stored_queue& out);
bool decode(std::string_view payload, stored_binding& out);

/// Encodes a persistent message: exchange, routing key, the content header
/// payload (properties) and the body.
std::string encode_message(const message& m);

/// Decodes encode_message()'s output; nullptr if malformed.
message_ptr decode_message(std::string_view payload);

} // namespace flotilla
