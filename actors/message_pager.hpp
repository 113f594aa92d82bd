#pragma once

#include <functional>
#include <memory>
#include <string>

#include "actors/queue_model.hpp"

namespace flotilla {

/// Lets a later layer rewrite a message just before a queue pages it out:
/// federation writes the origin number into the messages of its export
/// queues, so that copies read back in two queues still carry the same
/// number (a paged message comes back as a new object). Set once at
/// startup (thread-safe); queues call apply() when they page.
class page_out_hook {
public:
  using function
    = std::function<message_ptr(const std::string& queue, const message_ptr&)>;

  void set(function f);

  /// Returns what to write for `m` of `queue`: `m` unless a hook is set.
  message_ptr apply(const std::string& queue, const message_ptr& m) const;

private:
  std::shared_ptr<const function> fn_;
};

/// Returns a pager that keeps a queue's paged messages in segment files
/// named `prefix`.N (created on the first write, 64 MiB each). A segment is
/// deleted once every message in it was read back or purged; the pager's
/// destruction deletes the rest. Nothing is synced: paged messages are a
/// cache of the queue's memory (persistent ones are also in the journal),
/// and the paging directory is emptied at startup.
std::unique_ptr<message_pager> make_file_pager(std::string prefix);

} // namespace flotilla
