#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <unistd.h>

namespace flotilla::config::test {

/// A temporary directory removed (with the files written through it) when
/// the object goes out of scope.
class temp_dir {
public:
  temp_dir() {
    char tmpl[] = "/tmp/flotilla-config-test-XXXXXX";
    if (char* p = ::mkdtemp(tmpl))
      path_ = p;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    for (auto& f : files_)
      std::remove(f.c_str());
    ::rmdir(path_.c_str());
  }

  /// Writes `text` to `name` in this directory; returns the file's path.
  std::string write(const std::string& name, const std::string& text) {
    auto p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    files_.push_back(p);
    return p;
  }

  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
  std::vector<std::string> files_;
};

/// Owns the storage of an argv for parse_command_line().
class args {
public:
  args(std::initializer_list<std::string> xs) : strings_(xs) {
    strings_.insert(strings_.begin(), "flotillad");
    for (auto& s : strings_)
      ptrs_.push_back(s.data());
    ptrs_.push_back(nullptr);
  }
  args(const args&) = delete;
  args& operator=(const args&) = delete;
  int argc() const {
    return static_cast<int>(strings_.size());
  }
  char** argv() {
    return ptrs_.data();
  }

private:
  std::vector<std::string> strings_;
  std::vector<char*> ptrs_;
};

} // namespace flotilla::config::test
