#pragma once

#include <memory>
#include <string>

#include "actors/queue_model.hpp"

namespace flotilla {

/// Returns a pager that keeps a queue's paged messages in segment files
/// named `prefix`.N (created on the first write, 64 MiB each). A segment is
/// deleted once every message in it was read back or purged; the pager's
/// destruction deletes the rest. Nothing is synced: paged messages are a
/// cache of the queue's memory (persistent ones are also in the journal),
/// and the paging directory is emptied at startup.
std::unique_ptr<message_pager> make_file_pager(std::string prefix);

} // namespace flotilla
