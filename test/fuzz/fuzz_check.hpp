#pragma once

#include <cstdio>
#include <cstdlib>

/// Aborts with a message when a fuzz invariant fails; works in release
/// builds and under the replay driver.
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__,         \
                   __LINE__, #cond);                                           \
      std::abort();                                                            \
    }                                                                          \
  } while (false)
