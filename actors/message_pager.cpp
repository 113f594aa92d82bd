#include "actors/message_pager.hpp"

#include <cerrno>
#include <map>

#include <fcntl.h>
#include <unistd.h>

#include "actors/store_codec.hpp"

namespace flotilla {

namespace {

constexpr uint64_t segment_bytes = uint64_t{64} << 20;

class file_pager : public message_pager {
public:
  explicit file_pager(std::string prefix) : prefix_(std::move(prefix)) {}

  ~file_pager() override {
    for (auto& kv : segments_)
      drop(kv.first, kv.second);
  }

  bool write(const message& m, location& out) override {
    auto data = encode_message(m);
    if (segments_.empty() || head_offset_ >= segment_bytes) {
      if (!open_segment())
        return false;
    }
    auto& seg = segments_.rbegin()->second;
    if (!write_all(seg.fd, data, head_offset_))
      return false;
    out.segment = segments_.rbegin()->first;
    out.offset = head_offset_;
    out.length = static_cast<uint32_t>(data.size());
    head_offset_ += data.size();
    ++seg.live;
    return true;
  }

  message_ptr read(const location& loc) override {
    auto i = segments_.find(loc.segment);
    if (i == segments_.end())
      return nullptr;
    std::string data(loc.length, '\0');
    size_t done = 0;
    while (done < data.size()) {
      auto n = ::pread(i->second.fd, data.data() + done, data.size() - done,
                       static_cast<off_t>(loc.offset + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return nullptr;
      done += static_cast<size_t>(n);
    }
    return decode_message(data);
  }

  void release(const location& loc) override {
    auto i = segments_.find(loc.segment);
    if (i == segments_.end() || --i->second.live > 0)
      return;
    if (std::next(i) == segments_.end()) {
      // The head segment is empty: start it over instead of a new file.
      if (::ftruncate(i->second.fd, 0) == 0)
        head_offset_ = 0;
      return;
    }
    drop(i->first, i->second);
    segments_.erase(i);
  }

private:
  struct segment {
    int fd = -1;
    uint64_t live = 0;
  };

  std::string path(uint32_t n) const {
    return prefix_ + "." + std::to_string(n);
  }

  bool open_segment() {
    auto n = next_segment_++;
    int fd
      = ::open(path(n).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
      return false;
    segments_.emplace(n, segment{fd, 0});
    head_offset_ = 0;
    return true;
  }

  void drop(uint32_t n, segment& s) {
    if (s.fd >= 0)
      ::close(s.fd);
    s.fd = -1;
    ::unlink(path(n).c_str());
  }

  static bool write_all(int fd, const std::string& data, uint64_t offset) {
    size_t done = 0;
    while (done < data.size()) {
      auto n = ::pwrite(fd, data.data() + done, data.size() - done,
                        static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  std::string prefix_;
  std::map<uint32_t, segment>
    segments_; ///< Oldest first; the last is the head.
  uint32_t next_segment_ = 0;
  uint64_t head_offset_ = 0;
};

} // namespace

void page_out_hook::set(function f) {
  std::atomic_store(&fn_, std::make_shared<const function>(std::move(f)));
}

message_ptr page_out_hook::apply(const std::string& queue,
                                 const message_ptr& m) const {
  auto f = std::atomic_load(&fn_);
  return f && *f ? (*f)(queue, m) : m;
}

std::unique_ptr<message_pager> make_file_pager(std::string prefix) {
  return std::make_unique<file_pager>(std::move(prefix));
}

} // namespace flotilla
