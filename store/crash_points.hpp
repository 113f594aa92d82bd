#pragma once

namespace flotilla::store {

// Named crash points for crash-recovery tests. A test process sets
// FLOTILLA_CRASH_POINT=<name>; the first time execution reaches
// crash_point("<name>") it prints "crash point <name>" to stderr and calls
// _exit(99): no destructors, no buffered stdio, open files as they are, the
// same as kill -9 at that instant (the page cache survives, as it does when
// only the process dies).
//
// Points in the journal (docs/store-format.md explains each):
//   journal.after_write_before_sync   batch written, fdatasync not yet called
//   journal.after_sync                batch durable, index not yet updated
//   journal.roll_after_create         new head segment created, still empty
//   journal.compact_after_copy        live records copied, not yet synced
//   journal.compact_before_delete     copies durable, no segment deleted
//   journal.compact_mid_delete        first old segment deleted, others not

namespace detail {

/// True if a crash point name is set; read once at start-up.
extern bool crash_point_armed;

/// Compares `name` with the configured one and exits on a match.
void crash_point_check(const char* name);

} // namespace detail

/// Exits the process with status 99 if `name` is the configured crash point.
/// Costs one predictable branch when none is configured.
inline void crash_point(const char* name) {
  if (__builtin_expect(detail::crash_point_armed, false))
    detail::crash_point_check(name);
}

/// Replaces the configured crash point (nullptr or "" disarms), for tests
/// that fork a child instead of setting the environment before start-up.
void set_crash_point_for_test(const char* name);

/// Returns the configured crash point name, "" if none.
const char* configured_crash_point();

} // namespace flotilla::store
