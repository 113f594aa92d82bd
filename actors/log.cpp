#include "actors/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace flotilla {

namespace {

std::atomic<int> min_level{static_cast<int>(log_level::info)};
std::mutex out_mtx;
FILE* out_file = stderr;

} // namespace

const char* to_string(log_level x) {
  switch (x) {
    case log_level::trace:
      return "TRACE";
    case log_level::debug:
      return "DEBUG";
    case log_level::info:
      return "INFO";
    case log_level::notice:
      return "NOTICE";
    case log_level::warning:
      return "WARNING";
    case log_level::error:
      return "ERROR";
  }
  return "?";
}

bool log_init(log_level lvl, const std::string& output) {
  min_level = static_cast<int>(lvl);
  std::lock_guard<std::mutex> guard{out_mtx};
  if (output.empty() || output == "stderr") {
    out_file = stderr;
  } else if (output == "stdout") {
    out_file = stdout;
  } else {
    auto* f = std::fopen(output.c_str(), "a");
    if (f == nullptr)
      return false;
    out_file = f;
  }
  return true;
}

bool log_enabled(log_level lvl) {
  return static_cast<int>(lvl) >= min_level.load(std::memory_order_relaxed);
}

void log_write(log_level lvl, std::string_view line) {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard<std::mutex> guard{out_mtx};
  std::fprintf(out_file, "%s.%03dZ [%s] %.*s\n", stamp, static_cast<int>(ms),
               to_string(lvl), static_cast<int>(line.size()), line.data());
  std::fflush(out_file);
}

} // namespace flotilla
