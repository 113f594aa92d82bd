#pragma once

#include <string>

namespace flotilla {
class broker;
} // namespace flotilla

namespace flotilla::management {

/// Applies the definitions file at `path` (JSON: RabbitMQ's definitions
/// format, see docs/management.md) to `node` at startup: creates its vhosts,
/// then exchanges, queues and bindings, like the same declarations from a
/// client (an equivalent existing entity is fine). Sections and fields it
/// does not know (users, permissions, policies, ...) are ignored. Call after
/// restore and before install_agents. Blocks on the vhost actors.
/// Returns false and sets `error` (naming the file and the entity) on the
/// first failure; else sets `summary` to a line for the log.
bool load_definitions(broker& node, const std::string& path,
                      std::string& summary, std::string& error);

} // namespace flotilla::management
