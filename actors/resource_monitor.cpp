#include "actors/resource_monitor.hpp"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>

#include <malloc.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/broker.hpp"
#include "actors/log.hpp"

namespace flotilla {

namespace {

/// Returns the cgroup v2 (or v1) memory limit, or UINT64_MAX without one.
uint64_t cgroup_limit() {
  for (auto* path : {"/sys/fs/cgroup/memory.max",
                     "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in{path};
    std::string text;
    if (!(in >> text) || text == "max")
      continue;
    try {
      return std::stoull(text);
    } catch (...) {
      continue;
    }
  }
  return std::numeric_limits<uint64_t>::max();
}

struct monitor_state {
  static inline const char* name = "resource_monitor";
};

/// Checks both resources; returns the delay until the next check: the
/// interval, or a tenth of it when a resource is within a factor of two of
/// its limit (a fast publisher fills a disk in seconds).
std::chrono::milliseconds check(broker& node, const resource_limits& lim) {
  bool close = false;
  if (lim.memory_high_watermark != 0) {
    auto used = memory_in_use();
    node.set_alarm(broker::memory_alarm, used > lim.memory_high_watermark);
    close = close || used > lim.memory_high_watermark / 2;
  }
  if (lim.disk_free_limit != 0 && !lim.data_dir.empty()) {
    auto free = disk_free(lim.data_dir);
    node.set_alarm(broker::disk_alarm, free < lim.disk_free_limit);
    close = close || free / 2 < lim.disk_free_limit;
  }
  auto interval = std::chrono::milliseconds(lim.interval_ms);
  return close ? interval / 10 : interval;
}

} // namespace

uint64_t total_memory() {
  auto pages = sysconf(_SC_PHYS_PAGES);
  auto page = sysconf(_SC_PAGESIZE);
  uint64_t phys = pages > 0 && page > 0
                    ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                    : 0;
  auto cg = cgroup_limit();
  return phys == 0 ? (cg == std::numeric_limits<uint64_t>::max() ? 0 : cg)
                   : std::min(phys, cg);
}

uint64_t resident_bytes() {
  std::ifstream in{"/proc/self/statm"};
  uint64_t pages = 0;
  uint64_t resident = 0;
  if (!(in >> pages >> resident))
    return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t memory_in_use() {
  auto mi = mallinfo2();
  uint64_t used = mi.uordblks + mi.hblkhd;
  // Under ASan glibc's arenas hold almost nothing: use the RSS then.
  if (used < (uint64_t{4} << 20))
    return resident_bytes();
  return used;
}

uint64_t disk_free(const std::string& dir) {
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0)
    return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

static caf::behavior monitor_impl(caf::stateful_actor<monitor_state>* self,
                                  broker* node, resource_limits limits) {
  self->delayed_send(self, check(*node, limits), tick_atom::value);
  return {
    [=](tick_atom) {
      self->delayed_send(self, check(*node, limits), tick_atom::value);
    },
  };
}

caf::actor spawn_resource_monitor(caf::actor_system& sys, broker& node,
                                  resource_limits limits) {
  // Detached: statvfs and mallinfo2 (which walks every malloc arena) must
  // not hold a scheduler thread that queues and connections need. (Spawned
  // with arguments: CAF 0.17 dereferences a null argument tuple for
  // argument-less function actors, which UBSan reports.)
  return sys.spawn<caf::detached + caf::hidden>(monitor_impl, &node,
                                                std::move(limits));
}

} // namespace flotilla
