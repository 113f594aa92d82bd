#include "actors/resource_monitor.hpp"

#include <algorithm>
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

/// What the last trim left (see trim()).
struct trim_state {
  uint64_t rss = 0;  ///< Resident bytes after it.
  uint64_t used = 0; ///< Memory in use then.
};

struct monitor_state {
  static inline const char* name = "resource_monitor";
  trim_state trim;
};

/// Free memory above this is given back to the kernel (see trim()).
constexpr uint64_t trim_slack = uint64_t{128} << 20;

/// Returns memory the allocator keeps free to the kernel once a backlog has
/// drained: glibc only ever trims the top of each arena, so a broker that
/// held a million messages kept its peak RSS after they were consumed.
/// Tries again only once the RSS grew or the memory in use fell by
/// trim_slack since (a fragmented heap may not shrink).
void trim(trim_state& last) {
  auto rss = resident_bytes();
  auto used = memory_in_use();
  if (rss <= used || rss - used < std::max(trim_slack, used / 2))
    return;
  if (last.rss != 0 && rss < last.rss + trim_slack
      && used + trim_slack > last.used)
    return;
  malloc_trim(0);
  last.rss = resident_bytes();
  last.used = used;
  FLOTILLA_LOG(info, "memory: returned "
                       << (rss > last.rss ? rss - last.rss : 0) / (1 << 20)
                       << " MiB of free memory to the kernel");
}

/// Checks both resources; returns the delay until the next check: the
/// interval, or a tenth of it when a resource is within a factor of two of
/// its limit (a fast publisher fills a disk in seconds).
std::chrono::milliseconds check(broker& node, const resource_limits& lim,
                                trim_state& last_trim) {
  trim(last_trim);
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
#if defined(__SANITIZE_ADDRESS__)
  // ASan replaces malloc: glibc's arenas hold almost nothing, use the RSS.
  return resident_bytes();
#else
  // Not "RSS when mallinfo2 reports little": after a backlog drained, the
  // memory in use is rightly small while the RSS is still the peak.
  auto mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

uint64_t disk_free(const std::string& dir) {
  struct statvfs fs {};
  if (statvfs(dir.c_str(), &fs) != 0)
    return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

static caf::behavior monitor_impl(caf::stateful_actor<monitor_state>* self,
                                  broker* node, resource_limits limits) {
  auto& last = self->state.trim;
  self->delayed_send(self, check(*node, limits, last), tick_atom::value);
  return {
    [=](tick_atom) {
      auto& last = self->state.trim;
      self->delayed_send(self, check(*node, limits, last), tick_atom::value);
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
