#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace flotilla {

/// Severity of a log line. Lines at `error` contain the word ERROR, which the
/// integration harness treats as a failure unless allowed.
enum class log_level { trace, debug, info, notice, warning, error };

/// Returns the name printed in log lines ("INFO", "ERROR", ...).
const char* to_string(log_level);

/// Configures the process-wide logger. `output` is "stderr", "stdout" or a
/// file path (appended). Returns false if the file cannot be opened.
bool log_init(log_level min_level, const std::string& output);

/// Returns true if lines at `lvl` are written.
bool log_enabled(log_level lvl);

/// Writes one line (thread-safe; a timestamp and the level are prepended).
void log_write(log_level lvl, std::string_view line);

} // namespace flotilla

/// `expr` is evaluated only when `lvl` is enabled: never put work with side
/// effects in it (a restore call inside it was skipped at warning level).
#define FLOTILLA_LOG(lvl, expr)                                                \
  do {                                                                         \
    if (::flotilla::log_enabled(::flotilla::log_level::lvl)) {                 \
      std::ostringstream flotilla_log_os_;                                     \
      flotilla_log_os_ << expr;                                                \
      ::flotilla::log_write(::flotilla::log_level::lvl,                        \
                            flotilla_log_os_.str());                           \
    }                                                                          \
  } while (false)
