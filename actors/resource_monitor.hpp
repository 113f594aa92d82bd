#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>

namespace flotilla {

class broker;

/// What the resource monitor watches. A limit of 0 turns its alarm off.
struct resource_limits {
  /// Memory in use (see memory_in_use()) above which the memory alarm is
  /// set.
  uint64_t memory_high_watermark = 0;
  /// Free bytes of data_dir's file system below which the disk alarm is set.
  uint64_t disk_free_limit = 0;
  /// The directory whose file system is watched; empty: no disk alarm.
  std::string data_dir;
  /// Milliseconds between checks; a tenth of it while memory use is above
  /// half the watermark or free space below twice the limit.
  uint32_t interval_ms = 1000;
};

/// Returns the memory available to this process: the machine's physical
/// memory, or the cgroup's memory limit when that is lower.
uint64_t total_memory();

/// Returns the bytes this process has allocated (glibc's mallinfo2: in use
/// plus mmapped chunks), or its resident set size where that reports
/// nothing (e.g. under a sanitizer's allocator). Freed memory counts as
/// freed even while the allocator keeps it, so an alarm clears when
/// messages are consumed.
uint64_t memory_in_use();

/// Returns the resident set size of this process in bytes (0 if unknown).
uint64_t resident_bytes();

/// Returns the free bytes (for unprivileged users) of the file system
/// holding `dir`, or UINT64_MAX if it cannot be read.
uint64_t disk_free(const std::string& dir);

/// Spawns the actor that checks memory and disk periodically and sets or
/// clears the broker's memory and disk alarms (broker::set_alarm), which
/// block publishing connections. Runs until the actor system stops.
caf::actor spawn_resource_monitor(caf::actor_system& sys, broker& node,
                                  resource_limits limits);

} // namespace flotilla
