#pragma once

// Errors and exit codes shared by the parts of the `flotilla` CLI
// (flotilla.cpp, flotilla_route.cpp).

#include <cstdint>
#include <string>

namespace flotilla::cli {

enum exit_code : int {
  exit_ok = 0,
  exit_refused = 1,
  exit_usage = 2,
  exit_connect = 3,
  exit_not_found = 4,
  exit_denied = 5,
};

/// A usage error: printed with a hint, exit code 2.
struct usage_error {
  std::string text;
};

/// A refusal by the broker (status >= 400).
struct broker_error {
  uint32_t status;
  std::string text;
};

/// The exit code for a broker's refusal with `status`.
inline int exit_of(uint32_t status) {
  if (status == 404)
    return exit_not_found;
  if (status == 401 || status == 403)
    return exit_denied;
  return exit_refused;
}

} // namespace flotilla::cli
