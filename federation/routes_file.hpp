#pragma once

// Durable links and routes (flotilla link/route add --durable): their
// configuration as plain structs, and the file in the data dir that keeps
// them across restarts. Plain C++ (no CAF): the hub calls load/save, the
// fuzz target and the unit tests call decode/encode.
//
// The file is text, one record per line, fields separated by one space and
// percent-encoded (%XX for bytes outside '!'..'~', for '%' and '~'; an empty
// field is '~'):
//
//   flotilla-federation-routes 1
//   link NAME HOST PORT USER PASSWORD
//   bridge NAME LINK VHOST EXCHANGE KEY QUEUE DYNAMIC CREDIT HOPS SRC_LOCAL
//   end RECORDS CRC
//
// CRC is the CRC-32C (8 hex digits) of every byte before the "end" line; a
// file without it, with a wrong count or checksum, or with anything after it
// is corrupt. save_routes_file() writes a temporary file, fsyncs it, renames
// it over the old one and fsyncs the directory: a crash leaves the old or
// the new file, never half of one.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/connectors.hpp"

namespace flotilla::federation {

/// Hop limit used when a route does not set one (--ttl).
constexpr uint32_t default_max_hops = 16;

/// Configuration of a link (from management, the CLI or the routes file).
struct link_config {
  std::string name;
  std::string host;  ///< Fabric host.
  uint16_t port = 0; ///< Fabric port.
  std::string user;
  std::string password;
  bool durable = false; ///< Kept in the routes file.
};

/// Configuration of a bridge (a route on the destination broker).
struct bridge_config {
  std::string name;
  std::string link;
  std::string vhost;
  std::string exchange; ///< Source exchange; also the local destination.
  std::string key;      ///< Static routes.
  bool dynamic = false;
  std::string queue; ///< Queue routes: the source queue.
  uint32_t credit = 100;
  uint32_t max_hops = default_max_hops;
  /// Kept in the routes file; its source queue is durable and survives the
  /// link (see docs/federation.md).
  bool durable = false;
  /// A push route (--src-local): this broker is the source; the link goes
  /// to the destination, which imports what the bridge's export forwards.
  bool src_local = false;
  /// Dynamic routes: which binding keys may propagate (connectors of the
  /// config file; not kept in the routes file).
  config::key_filter filter;
};

/// What the routes file holds: the durable links and bridges.
struct durable_routes {
  std::vector<link_config> links;
  std::vector<bridge_config> bridges;
};

bool operator==(const link_config& a, const link_config& b);
bool operator==(const bridge_config& a, const bridge_config& b);

/// Returns the file's bytes for `r` (the `durable` flags are not written:
/// everything in the file is durable).
std::string encode_routes(const durable_routes& r);

/// Parses the bytes of a routes file into `out` (every entry durable).
/// Returns false with a reason (and the line number) in `error`.
bool decode_routes(std::string_view bytes, durable_routes& out,
                   std::string& error);

/// Reads `path`; a missing file is empty. Returns false with a reason that
/// names the file in `error` if it cannot be read or is corrupt.
bool load_routes_file(const std::string& path, durable_routes& out,
                      std::string& error);

/// Replaces `path` with `r`, crash-safely (temporary file, fsync, rename,
/// fsync of the directory), mode 0600 (it holds link passwords). Returns
/// false with a reason that names the file in `error`.
bool save_routes_file(const std::string& path, const durable_routes& r,
                      std::string& error);

} // namespace flotilla::federation
