#include "store/crash_points.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

namespace flotilla::store {

namespace {

// Function-local so the first crash_point() during another translation
// unit's static initialization still sees the environment.
std::string& configured() {
  static std::string name = [] {
    const char* env = std::getenv("FLOTILLA_CRASH_POINT");
    return std::string{env != nullptr ? env : ""};
  }();
  return name;
}

bool init_armed() {
  return !configured().empty();
}

} // namespace

namespace detail {

bool crash_point_armed = init_armed();

void crash_point_check(const char* name) {
  if (configured() != name)
    return;
  // stderr is unbuffered; write() directly anyway, nothing else may run.
  std::string msg = "crash point ";
  msg += name;
  msg += '\n';
  auto ignored = ::write(STDERR_FILENO, msg.data(), msg.size());
  (void)ignored;
  ::_exit(99);
}

} // namespace detail

void set_crash_point_for_test(const char* name) {
  configured() = name != nullptr ? name : "";
  detail::crash_point_armed = !configured().empty();
}

const char* configured_crash_point() {
  return configured().c_str();
}

} // namespace flotilla::store
