#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "store/crash_points.hpp"
#include "store/journal.hpp"
#include "store/record.hpp"

namespace flotilla::store::test {

/// A fresh directory under /tmp, removed with everything in it at scope end.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/flotilla-store-test-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    path = p != nullptr ? p : "/tmp/flotilla-store-test-failed";
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  /// Returns path + "/" + name.
  std::string operator/(const std::string& name) const {
    return path + "/" + name;
  }
};

/// One recovered message.
struct msg {
  uint32_t queue_id;
  uint64_t msg_id;
  std::string payload;
  bool operator==(const msg& o) const {
    return queue_id == o.queue_id && msg_id == o.msg_id && payload == o.payload;
  }
};

inline std::ostream& operator<<(std::ostream& os, const msg& m) {
  return os << "{" << m.queue_id << "," << m.msg_id << ",\"" << m.payload
            << "\"}";
}

/// Records what recovery hands out.
struct recorder : recovery_visitor {
  std::map<std::string, std::string> meta;
  std::vector<msg> messages;
  std::vector<std::string> meta_order;
  void on_meta(std::string_view key, std::string_view payload) override {
    meta_order.emplace_back(key);
    meta.emplace(std::string{key}, std::string{payload});
  }
  void on_message(uint32_t queue_id, uint64_t msg_id,
                  std::string_view payload) override {
    messages.push_back(msg{queue_id, msg_id, std::string{payload}});
  }
};

/// An open() with everything it produced.
struct opened {
  std::unique_ptr<journal> j;
  recorder rec;
  recovery_report report;
  std::string error;
};

inline journal_options options(const std::string& dir) {
  journal_options o;
  o.dir = dir;
  return o;
}

inline std::unique_ptr<opened> open_journal(const journal_options& o) {
  auto r = std::make_unique<opened>();
  r->j = journal::open(o, r->rec, r->report, r->error);
  return r;
}

inline std::unique_ptr<opened> open_journal(const std::string& dir) {
  return open_journal(options(dir));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in},
                     std::istreambuf_iterator<char>{}};
}

inline void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline uint64_t file_size(const std::string& path) {
  return std::filesystem::file_size(path);
}

/// Returns the segment files of `dir`, oldest first, as full paths.
inline std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator{dir}) {
    auto name = e.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".seg")
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Copies the regular files of `from` (not subdirectories) into `to`.
inline void copy_files(const std::string& from, const std::string& to) {
  for (auto& e : std::filesystem::directory_iterator{from})
    if (e.is_regular_file())
      std::filesystem::copy_file(
        e.path(), to + "/" + e.path().filename().string(),
        std::filesystem::copy_options::overwrite_existing);
}

/// Size of an encoded publish record with `payload_size` payload bytes.
constexpr size_t publish_size(size_t payload_size) {
  return record_header_size + 12 + payload_size;
}

/// Runs `body` in a forked child with crash point `point` armed. Returns the
/// child's exit status (99: it died at the crash point; 0: it got through;
/// anything else: `body` reported a problem by exiting with it).
template<class F>
int run_child(const char* point, F body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    set_crash_point_for_test(point);
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace flotilla::store::test
