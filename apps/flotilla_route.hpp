#pragma once

#include <string>
#include <vector>

namespace flotilla::cli {

/// Runs `flotilla route ...` and `flotilla link ...` (federation, in the
/// spirit of qpid-route; docs/federation.md). `args` starts with the verb
/// ("route" or "link"); global options were already taken out. Returns the
/// process exit code (the CLI's codes: 0 ok, 1 refused, 2 usage, 3 cannot
/// connect, 4 not found, 5 denied).
int route_main(const std::vector<std::string>& args, bool json,
               int timeout_seconds, bool help);

} // namespace flotilla::cli
