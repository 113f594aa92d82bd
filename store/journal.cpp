#include "store/journal.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/crash_points.hpp"
#include "store/crc32c.hpp"

namespace flotilla::store {

recovery_visitor::~recovery_visitor() = default;

namespace {

constexpr uint64_t max_segment_bytes = uint64_t{1} << 30;

// The index keeps 32-bit offsets: no record may start at or beyond 4 GiB.
constexpr uint64_t max_record_offset = 0xFFFFFFFFu;

// Read window of payload_reader: recovery and compaction read records in
// (mostly) file order, so one pread serves many records.
constexpr size_t reader_window = size_t{1} << 20;

// A buffer that grew beyond this for one huge batch is released afterwards.
constexpr size_t max_kept_buffer = size_t{64} << 20;

std::string sys_error(const char* what, const std::string& path, int err) {
  std::string s = what;
  s += ' ';
  s += path;
  s += ": ";
  s += std::strerror(err);
  return s;
}

bool pwrite_all(int fd, const char* p, size_t n, uint64_t off, int& err) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      return false;
    }
    if (w == 0) {
      err = EIO;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return true;
}

// Reads up to `n` bytes at `off`; `got` < n only at end of file.
bool pread_some(int fd, char* p, size_t n, uint64_t off, size_t& got,
                int& err) {
  got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      err = errno;
      return false;
    }
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return true;
}

// Maps the whole file read-only. Recovery reads segments through mappings:
// no copy of the data, and the per-queue delivery pass, which jumps around
// in the files, costs no system call per record.
bool map_file(int fd, std::string_view& out, int& err) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    err = errno;
    return false;
  }
  out = {};
  if (st.st_size == 0)
    return true;
  void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
                   MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    err = errno;
    return false;
  }
  ::madvise(p, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
  out = std::string_view{static_cast<const char*>(p),
                         static_cast<size_t>(st.st_size)};
  return true;
}

bool fsync_path(const std::string& path, int& err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    return false;
  }
  bool ok = ::fsync(fd) == 0;
  if (!ok)
    err = errno;
  ::close(fd);
  return ok;
}

std::string segment_name(uint64_t seq) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "journal-%020" PRIu64 ".seg", seq);
  return buf;
}

// Parses "journal-<20 digits><suffix>"; returns false for any other name.
bool parse_segment_name(std::string_view name, std::string_view suffix,
                        uint64_t& seq) {
  constexpr std::string_view prefix = "journal-";
  if (name.size() != prefix.size() + 20 + suffix.size()
      || name.substr(0, prefix.size()) != prefix
      || name.substr(prefix.size() + 20) != suffix)
    return false;
  uint64_t v = 0;
  for (char c : name.substr(prefix.size(), 20)) {
    if (c < '0' || c > '9')
      return false;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  seq = v;
  return true;
}

uint32_t random_salt() {
  std::random_device rd;
  uint32_t s = 0;
  while (s == 0)
    s = rd();
  return s;
}

bool all_zero(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == 0;
  });
}

uint64_t id_after(uint64_t msg_id) {
  return msg_id == UINT64_MAX ? msg_id : msg_id + 1;
}

// Records found intact after a damaged spot by trying every byte offset.
struct tail_scan {
  struct found {
    uint64_t offset;
    record rec;
  };
  std::vector<found> records;
  uint64_t unreadable_bytes = 0; // not covered by a found record
  bool exhausted = false;        // gave up: too much checksumming
};

// Scans bytes[x+1 ..] for intact records (whole, checksum valid, body valid)
// so that damage can be told from a torn tail and its effect reported. The
// checksumming is capped (garbage can make every offset look like the start
// of a long record); when the cap is hit the scan is `exhausted`.
tail_scan scan_after_damage(std::string_view bytes, size_t x, uint32_t seed) {
  tail_scan ts;
  uint64_t budget = 64 * uint64_t{bytes.size() - x} + (uint64_t{1} << 20);
  uint64_t covered = 0;
  size_t p = x + 1;
  while (p + record_header_size <= bytes.size()) {
    auto u = reinterpret_cast<const uint8_t*>(bytes.data() + p);
    uint32_t len = uint32_t{u[0]} | (uint32_t{u[1]} << 8)
                   | (uint32_t{u[2]} << 16) | (uint32_t{u[3]} << 24);
    uint8_t type = u[8] & record_type_mask;
    if (len <= max_body_size && len <= bytes.size() - p - record_header_size
        && type >= 1 && type <= 5) {
      if (budget < uint64_t{len} + 1) {
        ts.exhausted = true;
        break;
      }
      budget -= uint64_t{len} + 1;
      record r;
      if (decode_record(bytes.substr(p), seed, r) == decode_status::ok) {
        ts.records.push_back({p, r});
        covered += r.size;
        p += r.size;
        continue;
      }
    }
    ++p;
  }
  ts.unreadable_bytes = (bytes.size() - x) - covered;
  return ts;
}

// A damaged spot in the last segment is a torn tail if everything intact
// after it can belong to the one batch whose write was interrupted: no later
// batch starts (batch_first) and nothing follows a batch end (batch_last).
bool is_torn(const tail_scan& ts) {
  if (ts.exhausted)
    return false;
  bool seen_last = false;
  for (auto& f : ts.records) {
    if ((f.rec.flags & batch_first_flag) != 0 || seen_last)
      return false;
    if ((f.rec.flags & batch_last_flag) != 0)
      seen_last = true;
  }
  return true;
}

std::string describe_found(const tail_scan& ts) {
  uint64_t counts[6] = {};
  for (auto& f : ts.records)
    ++counts[static_cast<uint8_t>(f.rec.type) % 6];
  std::string s = std::to_string(ts.records.size()) + " intact records ("
                  + std::to_string(counts[3]) + " publish, "
                  + std::to_string(counts[4]) + " ack, "
                  + std::to_string(counts[1] + counts[2]) + " metadata, "
                  + std::to_string(counts[5]) + " drop_queue) and "
                  + std::to_string(ts.unreadable_bytes) + " unreadable bytes";
  if (ts.exhausted)
    s += " (scan stopped early)";
  return s;
}

} // namespace

// -- test hooks ---------------------------------------------------------------

struct journal::test_hooks {
  int write_errno = 0;
  size_t write_partial = 0;
  bool fail_truncate = false;
  int fdatasync_errno = 0;
};

void journal::fail_next_write_for_test(int err, size_t partial_bytes,
                                       bool fail_truncate) {
  if (!hooks_)
    hooks_ = std::make_unique<test_hooks>();
  hooks_->write_errno = err;
  hooks_->write_partial = partial_bytes;
  hooks_->fail_truncate = fail_truncate;
}

void journal::fail_next_fdatasync_for_test(int err) {
  if (!hooks_)
    hooks_ = std::make_unique<test_hooks>();
  hooks_->fdatasync_errno = err;
}

bool journal::do_write(int fd, const char* p, size_t n, uint64_t off,
                       int& err) {
  if (hooks_ && hooks_->write_errno != 0) {
    int e = hooks_->write_errno;
    hooks_->write_errno = 0;
    size_t part = std::min(n, hooks_->write_partial);
    if (part > 0 && !pwrite_all(fd, p, part, off, err))
      return false;
    err = e;
    return false;
  }
  return pwrite_all(fd, p, n, off, err);
}

bool journal::do_truncate(int fd, uint64_t size) {
  if (hooks_ && hooks_->fail_truncate) {
    hooks_->fail_truncate = false;
    errno = EIO;
    return false;
  }
  // Durable too: otherwise a power loss could bring the cut bytes back after
  // the head rolled, as damage in a segment that is no longer the last.
  return ::ftruncate(fd, static_cast<off_t>(size)) == 0
         && (!opts_.sync || ::fdatasync(fd) == 0);
}

// -- payload_reader -----------------------------------------------------------

// Reads whole records from segments through a 1 MiB window.
class journal::payload_reader {
public:
  explicit payload_reader(const journal& j) : j_(j) {}

  // Points `out` at the `len` bytes at `off` of segment `seg`; valid until
  // the next call.
  bool read(uint32_t seg, uint32_t off, uint32_t len, std::string_view& out,
            std::string& error) {
    if (seg == seg_ && off >= start_ && off + uint64_t{len} <= start_ + n_) {
      out = std::string_view{win_.data() + (off - start_), len};
      return true;
    }
    const segment& s = j_.seg_by_id(seg);
    std::string& dst = len > reader_window ? big_ : win_;
    // The window, but not past the end of the segment (small segments and
    // the tail of big ones need no 1 MiB buffer).
    size_t want = len;
    if (len <= reader_window && s.size > off)
      want = static_cast<size_t>(std::min<uint64_t>(
        reader_window, std::max<uint64_t>(len, s.size - off)));
    dst.resize(want);
    size_t got = 0;
    int err = 0;
    if (!pread_some(s.fd, dst.data(), want, off, got, err)) {
      error = sys_error("read", s.path, err);
      return false;
    }
    if (got < len) {
      error = "read " + s.path + ": file ends before the record at offset "
              + std::to_string(off);
      return false;
    }
    if (&dst == &win_) {
      seg_ = seg;
      start_ = off;
      n_ = got;
    }
    out = std::string_view{dst.data(), len};
    return true;
  }

private:
  const journal& j_;
  uint32_t seg_ = dead_seg;
  uint64_t start_ = 0;
  uint64_t n_ = 0;
  std::string win_;
  std::string big_;
};

// -- construction -------------------------------------------------------------

journal::journal(const journal_options& opts) : opts_(opts) {}

journal::~journal() {
  for (auto& s : segs_)
    if (s.fd >= 0)
      ::close(s.fd);
  if (dir_fd_ >= 0)
    ::close(dir_fd_);
  if (lock_fd_ >= 0)
    ::close(lock_fd_); // releases the flock
}

journal::segment& journal::seg_by_id(uint32_t id) {
  return segs_[id - segs_.front().id];
}

const journal::segment& journal::seg_by_id(uint32_t id) const {
  return segs_[id - segs_.front().id];
}

std::string journal::segment_path(uint64_t first_seq) const {
  return opts_.dir + "/" + segment_name(first_seq);
}

bool journal::sync_dir(std::string& error) {
  if (!opts_.sync)
    return true;
  if (::fsync(dir_fd_) != 0) {
    error = sys_error("fsync", opts_.dir, errno);
    return false;
  }
  return true;
}

bool journal::create_segment(uint64_t first_seq, std::string& error) {
  auto path = segment_path(first_seq);
  auto tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = sys_error("create", tmp, errno);
    return false;
  }
  std::string h;
  encode_segment_header(h, segment_header{salt_, first_seq, next_msg_id_});
  int err = 0;
  bool ok = pwrite_all(fd, h.data(), h.size(), 0, err);
  if (!ok)
    error = sys_error("write", tmp, err);
  if (ok && opts_.sync && ::fdatasync(fd) != 0) {
    ok = false;
    error = sys_error("fdatasync", tmp, errno);
  }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    error = sys_error("rename", tmp, errno);
  }
  if (!ok) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  segment s;
  s.id = next_seg_id_++;
  s.first_seq = first_seq;
  s.size = segment_header_size;
  s.fd = fd;
  s.path = path;
  segs_.push_back(std::move(s));
  // The file is in place; until its directory entry is durable no batch in
  // it may be confirmed (write_batch retries the directory fsync).
  dir_sync_pending_ = true;
  std::string dir_error;
  if (sync_dir(dir_error))
    dir_sync_pending_ = false;
  return true;
}

bool journal::roll(std::string& error) {
  if (!create_segment(next_seq_, error))
    return false;
  crash_point("journal.roll_after_create");
  return true;
}

// -- index --------------------------------------------------------------------

void journal::account(uint32_t seg, uint32_t len, bool add) {
  auto& s = seg_by_id(seg);
  if (add) {
    s.live_bytes += len;
    ++s.live_records;
  } else {
    s.live_bytes -= len;
    --s.live_records;
  }
}

namespace {

template<class Deque>
auto find_msg(Deque& d, uint64_t m) {
  if (!d.empty() && d.front().msg_id == m)
    return d.begin();
  return std::lower_bound(d.begin(), d.end(), m,
                          [](const auto& e, uint64_t id) {
                            return e.msg_id < id;
                          });
}

} // namespace

const journal::msg_entry* journal::find_entry(uint32_t q, uint64_t m) const {
  auto qi = queues_.find(q);
  if (qi == queues_.end())
    return nullptr;
  auto& d = qi->second.entries;
  if (d.empty() || d.back().msg_id < m)
    return nullptr;
  auto it = find_msg(d, m);
  if (it == d.end() || it->msg_id != m || it->seg == dead_seg)
    return nullptr;
  return &*it;
}

bool journal::is_live(uint32_t queue_id, uint64_t msg_id) const {
  return find_entry(queue_id, msg_id) != nullptr;
}

void journal::add_message(uint32_t q, uint64_t m, uint32_t seg, uint32_t off,
                          uint32_t len) {
  auto& qi = queues_[q];
  auto& d = qi.entries;
  account(seg, len, true);
  if (d.empty() || d.back().msg_id < m) {
    d.push_back(msg_entry{m, seg, off, len});
  } else {
    auto it = find_msg(d, m);
    if (it != d.end() && it->msg_id == m) {
      if (it->seg != dead_seg) {
        // Published again: a compaction copy. The newer copy is the one.
        account(it->seg, it->len, false);
        it->seg = seg;
        it->off = off;
        it->len = len;
        return;
      }
      --qi.dead; // a tombstone comes back to life
      *it = msg_entry{m, seg, off, len};
    } else {
      d.insert(it, msg_entry{m, seg, off, len});
    }
  }
  ++qi.live;
  ++live_messages_;
}

bool journal::remove_message(uint32_t q, uint64_t m) {
  auto qit = queues_.find(q);
  if (qit == queues_.end())
    return false;
  auto& qi = qit->second;
  auto& d = qi.entries;
  if (d.empty() || d.back().msg_id < m)
    return false;
  auto it = find_msg(d, m);
  if (it == d.end() || it->msg_id != m || it->seg == dead_seg)
    return false;
  account(it->seg, it->len, false);
  it->seg = dead_seg;
  --qi.live;
  ++qi.dead;
  --live_messages_;
  while (!d.empty() && d.front().seg == dead_seg) {
    d.pop_front();
    --qi.dead;
  }
  while (!d.empty() && d.back().seg == dead_seg) {
    d.pop_back();
    --qi.dead;
  }
  if (d.empty()) {
    queues_.erase(qit);
  } else if (qi.dead > 64 && qi.dead > qi.live) {
    d.erase(std::remove_if(d.begin(), d.end(),
                           [](const msg_entry& e) {
                             return e.seg == dead_seg;
                           }),
            d.end());
    qi.dead = 0;
  }
  return true;
}

void journal::drop_queue(uint32_t q) {
  auto qit = queues_.find(q);
  if (qit == queues_.end())
    return;
  for (auto& e : qit->second.entries)
    if (e.seg != dead_seg)
      account(e.seg, e.len, false);
  live_messages_ -= qit->second.live;
  queues_.erase(qit);
}

void journal::apply(const record& r, uint32_t seg, uint64_t off) {
  auto len = static_cast<uint32_t>(r.size);
  auto off32 = static_cast<uint32_t>(off);
  switch (r.type) {
    case record_type::publish:
      add_message(r.queue_id, r.msg_id, seg, off32, len);
      break;
    case record_type::ack:
      remove_message(r.queue_id, r.msg_id);
      break;
    case record_type::drop_queue:
      drop_queue(r.queue_id);
      break;
    case record_type::meta_put: {
      auto it = meta_.find(r.key);
      if (it != meta_.end()) {
        account(it->second.seg, it->second.len, false);
        it->second = meta_loc{seg, off32, len};
      } else {
        meta_.emplace(std::string{r.key}, meta_loc{seg, off32, len});
      }
      account(seg, len, true);
      break;
    }
    case record_type::meta_del: {
      auto it = meta_.find(r.key);
      if (it != meta_.end()) {
        account(it->second.seg, it->second.len, false);
        meta_.erase(it);
      }
      break;
    }
  }
}

void journal::apply_buffer(uint32_t seg_id, uint64_t base_offset) {
  std::string_view all{buf_};
  size_t p = 0;
  record r;
  while (p < all.size()) {
    decode_record(all.substr(p), seed_, r, false);
    apply(r, seg_id, base_offset + p);
    p += r.size;
  }
}

// -- appending ----------------------------------------------------------------

bool journal::append_meta_put(std::string_view key, std::string_view payload) {
  if (key.size() > max_key_size || payload.size() > max_payload_size)
    return false;
  last_record_off_ = buf_.size();
  encode_meta_put(buf_, seed_, key, payload);
  ++buffered_records_;
  return true;
}

bool journal::append_meta_del(std::string_view key) {
  if (key.size() > max_key_size)
    return false;
  last_record_off_ = buf_.size();
  encode_meta_del(buf_, seed_, key);
  ++buffered_records_;
  return true;
}

bool journal::append_publish(uint32_t queue_id, uint64_t msg_id,
                             std::string_view payload) {
  if (payload.size() > max_payload_size || is_live(queue_id, msg_id))
    return false;
  last_record_off_ = buf_.size();
  encode_publish(buf_, seed_, queue_id, msg_id, payload);
  ++buffered_records_;
  return true;
}

void journal::append_ack(uint32_t queue_id, uint64_t msg_id) {
  last_record_off_ = buf_.size();
  encode_ack(buf_, seed_, queue_id, msg_id);
  ++buffered_records_;
}

void journal::append_drop_queue(uint32_t queue_id) {
  last_record_off_ = buf_.size();
  encode_drop_queue(buf_, seed_, queue_id);
  ++buffered_records_;
}

void journal::discard_buffer() {
  buf_.clear();
  buffered_records_ = 0;
  last_record_off_ = 0;
  if (buf_.capacity() > max_kept_buffer)
    std::string{}.swap(buf_);
}

void journal::mark_batch_flags() {
  if (last_record_off_ == 0) {
    set_batch_flags(buf_.data(), batch_first_flag | batch_last_flag, seed_);
    return;
  }
  set_batch_flags(buf_.data(), batch_first_flag, seed_);
  set_batch_flags(buf_.data() + last_record_off_, batch_last_flag, seed_);
}

// -- group commit -------------------------------------------------------------

bool journal::sync(std::string& error) {
  return write_batch(error, "journal.after_write_before_sync",
                     "journal.after_sync");
}

bool journal::write_batch(std::string& error, const char* after_write,
                          const char* after_sync) {
  if (buf_.empty())
    return true;
  auto fail = [&] {
    discard_buffer();
    ++counters_.failed_syncs;
    return false;
  };
  if (broken_) {
    error = broken_error_;
    return fail();
  }
  segment* head = &segs_.back();
  if (dirty_tail_) {
    if (!do_truncate(head->fd, head->size)) {
      error = sys_error("truncate", head->path, errno)
              + " (cutting back an earlier failed write)";
      return fail();
    }
    dirty_tail_ = false;
  }
  if (buf_.size() > max_record_offset - segment_header_size) {
    error = "journal batch of " + std::to_string(buf_.size())
            + " bytes is too large; sync more often";
    return fail();
  }
  if (head->records > 0
      && (head->size >= opts_.segment_bytes
          || head->size + buf_.size() > max_record_offset)) {
    if (!roll(error))
      return fail();
    head = &segs_.back();
  }
  if (dir_sync_pending_) {
    if (!sync_dir(error))
      return fail();
    dir_sync_pending_ = false;
  }
  mark_batch_flags();
  int err = 0;
  if (!do_write(head->fd, buf_.data(), buf_.size(), head->size, err)) {
    error = sys_error("write", head->path, err);
    // Cut the partial write back so the next batch starts clean; if even
    // that fails, the next sync() tries again before anything else (no roll
    // in between), and open() would see a torn tail (the garbage is in the
    // last segment, after the last batch).
    if (!do_truncate(head->fd, head->size))
      dirty_tail_ = true;
    return fail();
  }
  if (after_write != nullptr)
    crash_point(after_write);
  if (opts_.sync) {
    int e = 0;
    if (hooks_ && hooks_->fdatasync_errno != 0) {
      e = hooks_->fdatasync_errno;
      hooks_->fdatasync_errno = 0;
    } else if (::fdatasync(head->fd) != 0) {
      e = errno;
    }
    if (e != 0) {
      error = sys_error("fdatasync", head->path, e);
      // After a failed fdatasync the kernel may have marked the pages clean
      // without writing them; what the file holds is unknown. Cut the batch
      // off and make the cut durable, or refuse to go on.
      if (!do_truncate(head->fd, head->size)) {
        broken_ = true;
        broken_error_ = error
                        + " (cutting the batch back failed too; the journal "
                          "must be reopened)";
      }
      return fail();
    }
  }
  if (after_sync != nullptr)
    crash_point(after_sync);
  apply_buffer(head->id, head->size);
  head->size += buf_.size();
  head->records += buffered_records_;
  next_seq_ += buffered_records_;
  ++counters_.syncs;
  buf_.clear();
  buffered_records_ = 0;
  last_record_off_ = 0;
  if (buf_.capacity() > max_kept_buffer)
    std::string{}.swap(buf_);
  return true;
}

// -- compaction ---------------------------------------------------------------

bool journal::compact(std::string& error) {
  if (!buf_.empty()) {
    error = "compact: " + std::to_string(buffered_records_)
            + " appended records are not synced; call sync() first";
    return false;
  }
  if (broken_) {
    error = broken_error_;
    return false;
  }
  // The longest run of oldest segments, never the head, worth rewriting.
  constexpr size_t none = SIZE_MAX;
  size_t k = none;
  uint64_t total = 0;
  uint64_t live = 0;
  for (size_t i = 0; i + 1 < segs_.size(); ++i) {
    total += segs_[i].size - segment_header_size;
    live += segs_[i].live_bytes;
    if (live > opts_.compact_max_copy_bytes)
      break;
    if (static_cast<double>(live)
        <= opts_.compact_live_ratio * static_cast<double>(total))
      k = i;
  }
  if (k == none)
    return true;
  uint32_t last_id = segs_[k].id;
  // Live records of the run, in file order.
  struct item {
    uint32_t seg;
    uint32_t off;
    uint32_t len;
  };
  std::vector<item> items;
  for (auto& kv : queues_)
    for (auto& e : kv.second.entries)
      if (e.seg != dead_seg && e.seg <= last_id)
        items.push_back(item{e.seg, e.off, e.len});
  for (auto& kv : meta_)
    if (kv.second.seg <= last_id)
      items.push_back(item{kv.second.seg, kv.second.off, kv.second.len});
  std::sort(items.begin(), items.end(), [](const item& a, const item& b) {
    return a.seg != b.seg ? a.seg < b.seg : a.off < b.off;
  });
  payload_reader reader{*this};
  uint64_t copied = 0;
  for (auto& it : items) {
    std::string_view bytes;
    if (!reader.read(it.seg, it.off, it.len, bytes, error)) {
      discard_buffer();
      return false;
    }
    record r;
    auto st = decode_record(bytes, seed_, r);
    if (st != decode_status::ok
        || (r.type != record_type::publish
            && r.type != record_type::meta_put)) {
      error = "compact: live record at " + seg_by_id(it.seg).path + " offset "
              + std::to_string(it.off) + " does not read back (" + to_string(st)
              + "); nothing compacted";
      discard_buffer();
      return false;
    }
    last_record_off_ = buf_.size();
    if (r.type == record_type::publish)
      encode_publish(buf_, seed_, r.queue_id, r.msg_id, r.payload);
    else
      encode_meta_put(buf_, seed_, r.key, r.payload);
    ++buffered_records_;
    copied += r.size;
  }
  // Copy forward as one synced batch. A crash before it is durable leaves a
  // torn tail; after, duplicates that recovery resolves (newest copy wins).
  if (!write_batch(error, "journal.compact_after_copy", nullptr))
    return false;
  for (size_t i = 0; i <= k; ++i) {
    if (segs_[i].live_records != 0) {
      error = "compact: internal error: " + segs_[i].path
              + " still holds live records after the copy";
      return false;
    }
  }
  crash_point("journal.compact_before_delete");
  // Oldest first, each deletion durable before the next: an ack is deleted
  // only after every older segment (which could hold its publish) is gone.
  for (size_t i = 0; i <= k; ++i) {
    auto& s = segs_.front();
    if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) {
      error = sys_error("unlink", s.path, errno);
      return false;
    }
    ::close(s.fd);
    segs_.pop_front();
    ++counters_.compacted_segments;
    if (!sync_dir(error))
      return false;
    if (i == 0 && k > 0)
      crash_point("journal.compact_mid_delete");
  }
  ++counters_.compactions;
  counters_.compacted_copy_bytes += copied;
  return true;
}

// -- reading ------------------------------------------------------------------

bool journal::read_payload(uint32_t queue_id, uint64_t msg_id, std::string& out,
                           std::string* error) const {
  const msg_entry* e = find_entry(queue_id, msg_id);
  if (e == nullptr)
    return false;
  const segment& s = seg_by_id(e->seg);
  out.resize(e->len);
  size_t got = 0;
  int err = 0;
  if (!pread_some(s.fd, out.data(), e->len, e->off, got, err)
      || got != e->len) {
    if (error != nullptr)
      *error = got != e->len && err == 0
                 ? "read " + s.path + ": file ends before offset "
                     + std::to_string(e->off + e->len)
                 : sys_error("read", s.path, err);
    out.clear();
    return false;
  }
  record r;
  auto st = decode_record(out, seed_, r);
  if (st != decode_status::ok || r.type != record_type::publish
      || r.queue_id != queue_id || r.msg_id != msg_id) {
    if (error != nullptr)
      *error = "read " + s.path + " offset " + std::to_string(e->off)
               + ": record does not read back (" + to_string(st) + ")";
    out.clear();
    return false;
  }
  auto pos = static_cast<size_t>(r.payload.data() - out.data());
  auto n = r.payload.size();
  out.erase(0, pos);
  out.resize(n);
  return true;
}

journal_stats journal::stats() const {
  journal_stats s = counters_;
  s.segments = segs_.size();
  for (auto& seg : segs_) {
    s.disk_bytes += seg.size;
    s.live_bytes += seg.live_bytes;
    s.dead_bytes += seg.size - segment_header_size - seg.live_bytes;
  }
  s.live_messages = live_messages_;
  s.meta_entries = meta_.size();
  s.buffered_records = buffered_records_;
  s.buffered_bytes = buf_.size();
  return s;
}

// -- recovery -----------------------------------------------------------------

std::string recovery_report::to_string() const {
  std::string s = "journal recovery: " + std::to_string(segments)
                  + " segments, " + std::to_string(records) + " records, "
                  + std::to_string(bytes) + " bytes read, "
                  + std::to_string(live_messages) + " live messages ("
                  + std::to_string(live_bytes) + " payload bytes), "
                  + std::to_string(meta_entries) + " metadata entries in "
                  + std::to_string(seconds) + " s";
  if (!truncated_file.empty())
    s += "; torn tail: " + truncated_file + " cut at offset "
         + std::to_string(truncated_offset) + " ("
         + std::to_string(truncated_bytes) + " bytes, "
         + std::to_string(torn_records_dropped)
         + " intact records of the unfinished batch)";
  for (auto& f : removed_files)
    s += "; removed leftover " + f;
  for (auto& d : damaged) {
    s += "; REPAIRED " + d.file + " at offset " + std::to_string(d.offset)
         + " (" + d.reason + "): kept " + std::to_string(d.kept_records)
         + " records, dropped " + std::to_string(d.dropped_bytes) + " bytes ("
         + std::to_string(d.dropped_records) + " intact records, "
         + std::to_string(d.unreadable_bytes)
         + " unreadable bytes), original in " + d.quarantined_as;
    if (d.removed)
      s += ", segment removed";
  }
  if (!damaged.empty())
    s += "; lost messages: " + std::to_string(lost_messages.size())
         + ", delivered again: " + std::to_string(resurrected_messages.size())
         + ", affected metadata keys: "
         + std::to_string(affected_meta_keys.size());
  return s;
}

struct journal::recovery {
  journal& j;
  recovery_report& rep;
  std::string& error;

  bool have_salt = false;
  uint64_t id_floor = 1; // next_msg_id must be at least this
  uint64_t end_seq = 0;  // sequence after the previous kept segment

  // File changes, made only once every segment was found acceptable.
  struct action {
    std::string path;
    std::string name;
    int fd = -1;
    uint64_t cut_at = 0;     // new size
    bool quarantine = false; // copy `original` to quarantine/ first
    bool remove = false;     // unlink instead of cutting
    bool new_header = false; // cut to 0 and write a fresh header
    uint64_t header_seq = 0;
    std::string original;
    size_t damaged_index = SIZE_MAX; // into rep.damaged
  };
  std::vector<action> actions;

  // Repair bookkeeping: effects of dropped records, checked against what is
  // kept after them.
  std::set<message_ref> dropped_publishes;
  std::vector<message_ref> dropped_ack_targets;
  std::set<std::string> dropped_keys;

  recovery(journal& jj, recovery_report& r, std::string& e)
    : j(jj), rep(r), error(e) {}

  // Every segment file, mapped; and by segment id the kept ones, for
  // delivery (a cut segment is only read below its new end).
  std::vector<std::string_view> maps;
  std::vector<std::string_view> seg_views;

  ~recovery() {
    // Descriptors of segments planned for removal are owned here until the
    // action ran (others belong to the journal's segments).
    for (auto& a : actions)
      if (a.remove && a.fd >= 0)
        ::close(a.fd);
    for (auto m : maps)
      ::munmap(const_cast<char*>(m.data()), m.size());
  }

  bool fail(std::string msg) {
    error = std::move(msg);
    return false;
  }

  bool run(recovery_visitor& visitor);
  bool read_segment(const std::string& name, uint64_t seq, bool is_last);
  bool damage(const std::string& path, const std::string& name, int fd,
              std::string_view bytes, uint64_t x, const std::string& reason,
              const std::string& why_not_torn, uint64_t kept,
              const tail_scan& ts, bool header);
  void note_kept(const record& r);
  void note_dropped(const record& r);
  void erase_queue(uint32_t q);
  bool execute(action& a);
  bool deliver(recovery_visitor& visitor);
};

void journal::recovery::note_kept(const record& r) {
  if (r.type == record_type::publish || r.type == record_type::ack)
    id_floor = std::max(id_floor, id_after(r.msg_id));
  if (dropped_publishes.empty())
    return;
  switch (r.type) {
    case record_type::publish:
    case record_type::ack:
      dropped_publishes.erase(message_ref{r.queue_id, r.msg_id});
      break;
    case record_type::drop_queue:
      erase_queue(r.queue_id);
      break;
    default:
      break;
  }
}

void journal::recovery::erase_queue(uint32_t q) {
  auto lo = dropped_publishes.lower_bound(message_ref{q, 0});
  auto hi = q == UINT32_MAX
              ? dropped_publishes.end()
              : dropped_publishes.lower_bound(message_ref{q + 1, 0});
  dropped_publishes.erase(lo, hi);
}

void journal::recovery::note_dropped(const record& r) {
  switch (r.type) {
    case record_type::publish:
      id_floor = std::max(id_floor, id_after(r.msg_id));
      if (!j.is_live(r.queue_id, r.msg_id))
        dropped_publishes.insert(message_ref{r.queue_id, r.msg_id});
      break;
    case record_type::ack:
      id_floor = std::max(id_floor, id_after(r.msg_id));
      if (dropped_publishes.erase(message_ref{r.queue_id, r.msg_id}) == 0
          && j.is_live(r.queue_id, r.msg_id))
        dropped_ack_targets.push_back(message_ref{r.queue_id, r.msg_id});
      break;
    case record_type::drop_queue: {
      auto qi = j.queues_.find(r.queue_id);
      if (qi != j.queues_.end())
        for (auto& e : qi->second.entries)
          if (e.seg != dead_seg)
            dropped_ack_targets.push_back(message_ref{r.queue_id, e.msg_id});
      erase_queue(r.queue_id);
      break;
    }
    case record_type::meta_put:
    case record_type::meta_del:
      dropped_keys.insert(std::string{r.key});
      break;
  }
}

bool journal::recovery::damage(const std::string& path, const std::string& name,
                               int fd, std::string_view bytes, uint64_t x,
                               const std::string& reason,
                               const std::string& why_not_torn, uint64_t kept,
                               const tail_scan& ts, bool header) {
  uint64_t affected = bytes.size() - x;
  if (!j.opts_.repair) {
    std::string msg = "journal segment " + path + " is damaged at byte offset "
                      + std::to_string(x) + " (" + reason + "): ";
    if (header)
      msg += "the segment header is unreadable, so all "
             + std::to_string(bytes.size()) + " bytes of the segment are "
             + "affected (" + describe_found(ts) + ")";
    else
      msg += "the " + std::to_string(affected)
             + " bytes from there to the end of the segment are affected ("
             + describe_found(ts) + "), the " + std::to_string(kept)
             + " records before it are intact";
    msg += "; not a torn tail because " + why_not_torn
           + ". Open with repair to quarantine the segment, keep the records "
             "before the damage and list what is lost.";
    return fail(std::move(msg));
  }
  damaged_segment d;
  d.file = path;
  d.offset = x;
  d.dropped_bytes = affected;
  d.reason = reason;
  d.kept_records = kept;
  d.dropped_records = ts.records.size();
  d.unreadable_bytes = ts.unreadable_bytes;
  d.removed = header;
  rep.damaged.push_back(d);
  for (auto& f : ts.records)
    note_dropped(f.rec);
  action a;
  a.path = path;
  a.name = name;
  a.fd = fd;
  a.cut_at = x;
  a.quarantine = true;
  a.remove = header;
  a.original.assign(bytes.data(), bytes.size());
  a.damaged_index = rep.damaged.size() - 1;
  actions.push_back(std::move(a));
  return true;
}

bool journal::recovery::read_segment(const std::string& name, uint64_t seq,
                                     bool is_last) {
  auto path = j.opts_.dir + "/" + name;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return fail(sys_error("open", path, errno));
  std::string_view bytes;
  int err = 0;
  if (!map_file(fd, bytes, err)) {
    ::close(fd);
    return fail(sys_error("map", path, err));
  }
  maps.push_back(bytes); // unmapped when recovery ends
  ++rep.segments;
  rep.bytes += bytes.size();
  // From here on, `fd` belongs to a segment or an action (closed by the
  // journal's destructor or after the action).
  segment_header h;
  auto hs = decode_segment_header(bytes, h);
  std::string header_problem;
  if (hs == header_status::unsupported_version) {
    ::close(fd);
    return fail("journal segment " + path
                + ": unsupported format version (written by a newer "
                  "Flotilla?); refusing to open");
  }
  if (hs != header_status::ok) {
    if (is_last && all_zero(bytes)) {
      // Created but never written (unsafe mode + power loss): no record can
      // be in it. Give it a fresh header.
      rep.truncated_file = path;
      rep.truncated_offset = 0;
      rep.truncated_bytes = bytes.size();
      action a;
      a.path = path;
      a.name = name;
      a.fd = fd;
      a.new_header = true;
      a.header_seq = seq;
      actions.push_back(std::move(a));
      segment s;
      s.id = j.next_seg_id_++;
      s.first_seq = seq;
      s.size = segment_header_size;
      s.fd = fd;
      s.path = path;
      j.segs_.push_back(std::move(s));
      seg_views.resize(j.next_seg_id_);
      end_seq = seq;
      return true;
    }
    header_problem = to_string(hs);
  } else if (have_salt && h.salt != j.salt_) {
    header_problem = "salt differs from the other segments' (a segment of "
                     "another journal?)";
  } else if (h.first_seq != seq) {
    header_problem = "header says first sequence " + std::to_string(h.first_seq)
                     + ", file name " + std::to_string(seq);
  } else if (seq < end_seq) {
    header_problem = "first sequence " + std::to_string(seq)
                     + " overlaps the previous segment (ends at "
                     + std::to_string(end_seq) + ")";
  }
  if (!header_problem.empty()) {
    uint32_t salt = j.salt_;
    if (!have_salt && bytes.size() >= 12)
      std::memcpy(&salt, bytes.data() + 8, 4); // best guess, for the report
    auto ts = scan_after_damage(bytes, 0, crc_seed(salt));
    end_seq = std::max(end_seq, seq);
    auto why = is_last ? std::string{"a torn write cannot damage a header "
                                     "that was synced before use"}
                       : std::string{"it is not the last segment"};
    if (!damage(path, name, fd, bytes, 0, header_problem, why, 0, ts, true)) {
      ::close(fd);
      return false;
    }
    return true; // `fd` now belongs to the removal action
  }
  if (!have_salt) {
    have_salt = true;
    j.salt_ = h.salt;
    j.seed_ = crc_seed(h.salt);
  }
  id_floor = std::max(id_floor, h.next_msg_id);
  segment s;
  s.id = j.next_seg_id_++;
  s.first_seq = seq;
  s.size = bytes.size();
  s.fd = fd;
  s.path = path;
  j.segs_.push_back(std::move(s));
  uint32_t id = j.segs_.back().id;
  seg_views.resize(j.next_seg_id_);
  seg_views[id] = bytes;
  std::string_view all{bytes};
  size_t p = segment_header_size;
  uint64_t kept = 0;
  record r;
  while (p < all.size()) {
    auto st = p <= max_record_offset ? decode_record(all.substr(p), j.seed_, r)
                                     : decode_status::bad_length;
    if (st == decode_status::ok) {
      j.apply(r, id, p);
      note_kept(r);
      ++kept;
      p += r.size;
      continue;
    }
    auto ts = scan_after_damage(all, p, j.seed_);
    bool tearable = st == decode_status::incomplete
                    || st == decode_status::bad_length
                    || st == decode_status::bad_checksum;
    if (is_last && tearable && is_torn(ts)) {
      rep.truncated_file = path;
      rep.truncated_offset = p;
      rep.truncated_bytes = all.size() - p;
      rep.torn_records_dropped = ts.records.size();
      for (auto& f : ts.records)
        if (f.rec.type == record_type::publish
            || f.rec.type == record_type::ack)
          id_floor = std::max(id_floor, id_after(f.rec.msg_id));
      action a;
      a.path = path;
      a.name = name;
      a.fd = fd;
      a.cut_at = p;
      actions.push_back(std::move(a));
    } else {
      std::string why;
      if (!is_last)
        why = "it is not in the last segment";
      else if (!tearable)
        why = "the record's checksum is valid, so it was written whole";
      else if (ts.exhausted)
        why = "the rest of the segment could not be scanned";
      else
        why = "intact records of a later sync batch follow it, so it had "
              "been synced";
      if (st == decode_status::bad_type)
        why += " (an unknown record type: written by a newer Flotilla?)";
      if (!damage(path, name, fd, bytes, p, to_string(st), why, kept, ts,
                  false))
        return false;
    }
    j.segs_.back().size = p;
    break;
  }
  j.segs_.back().records = kept;
  rep.records += kept;
  end_seq = seq + kept;
  return true;
}

bool journal::recovery::execute(action& a) {
  int err = 0;
  if (a.quarantine) {
    auto qdir = j.opts_.dir + "/quarantine";
    if (::mkdir(qdir.c_str(), 0755) != 0 && errno != EEXIST)
      return fail(sys_error("mkdir", qdir, errno));
    std::string dest;
    for (int n = 1;; ++n) {
      dest = qdir + "/" + a.name + "." + std::to_string(n);
      struct stat st;
      if (::stat(dest.c_str(), &st) != 0)
        break;
    }
    auto tmp = dest + ".tmp";
    int fd
      = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return fail(sys_error("create", tmp, errno));
    bool ok = pwrite_all(fd, a.original.data(), a.original.size(), 0, err)
              && (!j.opts_.sync || ::fdatasync(fd) == 0);
    if (!ok && err == 0)
      err = errno;
    ::close(fd);
    if (!ok)
      return fail(sys_error("write", tmp, err));
    if (::rename(tmp.c_str(), dest.c_str()) != 0)
      return fail(sys_error("rename", tmp, errno));
    if (j.opts_.sync) {
      if (!fsync_path(qdir, err))
        return fail(sys_error("fsync", qdir, err));
      if (!fsync_path(j.opts_.dir, err))
        return fail(sys_error("fsync", j.opts_.dir, err));
    }
    rep.damaged[a.damaged_index].quarantined_as = dest;
  }
  if (a.remove) {
    ::close(a.fd);
    a.fd = -1;
    if (::unlink(a.path.c_str()) != 0)
      return fail(sys_error("unlink", a.path, errno));
    if (j.opts_.sync && !fsync_path(j.opts_.dir, err))
      return fail(sys_error("fsync", j.opts_.dir, err));
    return true;
  }
  if (a.new_header) {
    std::string h;
    encode_segment_header(
      h, segment_header{j.salt_, a.header_seq, j.next_msg_id_});
    if (::ftruncate(a.fd, 0) != 0)
      return fail(sys_error("truncate", a.path, errno));
    if (!pwrite_all(a.fd, h.data(), h.size(), 0, err))
      return fail(sys_error("write", a.path, err));
  } else if (::ftruncate(a.fd, static_cast<off_t>(a.cut_at)) != 0) {
    return fail(sys_error("truncate", a.path, errno));
  }
  if (j.opts_.sync && ::fdatasync(a.fd) != 0)
    return fail(sys_error("fdatasync", a.path, errno));
  return true;
}

bool journal::recovery::deliver(recovery_visitor& visitor) {
  // Records were checked while scanning; the mappings still hold them.
  record r;
  auto view = [&](uint32_t seg, uint32_t off, uint32_t len) {
    decode_record(seg_views[seg].substr(off, len), j.seed_, r, false);
    return r.payload;
  };
  for (auto& kv : j.meta_) {
    visitor.on_meta(kv.first,
                    view(kv.second.seg, kv.second.off, kv.second.len));
    ++rep.meta_entries;
  }
  std::vector<uint32_t> ids;
  ids.reserve(j.queues_.size());
  for (auto& kv : j.queues_)
    ids.push_back(kv.first);
  std::sort(ids.begin(), ids.end());
  for (auto q : ids) {
    for (auto& e : j.queues_[q].entries) {
      if (e.seg == dead_seg)
        continue;
      auto payload = view(e.seg, e.off, e.len);
      visitor.on_message(q, e.msg_id, payload);
      ++rep.live_messages;
      rep.live_bytes += payload.size();
    }
  }
  return true;
}

bool journal::recovery::run(recovery_visitor& visitor) {
  auto& opts = j.opts_;
  // Create the directory (and parents); make a new entry durable.
  struct stat st;
  if (::stat(opts.dir.c_str(), &st) != 0) {
    if (errno != ENOENT)
      return fail(sys_error("stat", opts.dir, errno));
    if (::mkdir(opts.dir.c_str(), 0755) != 0 && errno != EEXIST)
      return fail(sys_error("mkdir", opts.dir, errno));
    auto slash = opts.dir.find_last_of('/');
    auto parent = slash == std::string::npos ? std::string{"."}
                  : slash == 0               ? std::string{"/"}
                                             : opts.dir.substr(0, slash);
    int err = 0;
    if (opts.sync && !fsync_path(parent, err))
      return fail(sys_error("fsync", parent, err));
  }
  j.dir_fd_ = ::open(opts.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (j.dir_fd_ < 0)
    return fail(sys_error("open", opts.dir, errno));
  auto lock_path = opts.dir + "/LOCK";
  j.lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j.lock_fd_ < 0)
    return fail(sys_error("open", lock_path, errno));
  if (::flock(j.lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return fail(errno == EWOULDBLOCK
                  ? "journal " + opts.dir + " is in use (" + lock_path
                      + " is locked by another open journal)"
                  : sys_error("lock", lock_path, errno));
  // List segments; delete leftovers of an interrupted segment creation.
  std::vector<std::pair<uint64_t, std::string>> files;
  DIR* d = ::opendir(opts.dir.c_str());
  if (d == nullptr)
    return fail(sys_error("list", opts.dir, errno));
  bool removed = false;
  while (auto* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    uint64_t seq = 0;
    if (parse_segment_name(name, ".seg", seq)) {
      files.emplace_back(seq, name);
    } else if (parse_segment_name(name, ".seg.tmp", seq)) {
      auto path = opts.dir + "/" + name;
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        int e = errno;
        ::closedir(d);
        return fail(sys_error("unlink", path, e));
      }
      rep.removed_files.push_back(path);
      removed = true;
    }
  }
  ::closedir(d);
  if (removed && !j.sync_dir(error))
    return false;
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i < files.size(); ++i)
    if (!read_segment(files[i].second, files[i].first, i + 1 == files.size()))
      return false;
  // Every segment is acceptable (or repairable): now change files.
  if (!have_salt) {
    j.salt_ = random_salt();
    j.seed_ = crc_seed(j.salt_);
  }
  j.next_msg_id_ = id_floor;
  for (auto& a : actions)
    if (!execute(a))
      return false;
  actions.clear();
  if (j.segs_.empty() && !j.create_segment(end_seq, error))
    return false;
  auto& head = j.segs_.back();
  j.next_seq_ = head.first_seq + head.records;
  // What repair lost: dropped publishes not live now, dropped acks whose
  // message is live now, keys touched by dropped metadata records.
  for (auto& m : dropped_publishes)
    if (!j.is_live(m.queue_id, m.msg_id))
      rep.lost_messages.push_back(m);
  std::sort(dropped_ack_targets.begin(), dropped_ack_targets.end());
  dropped_ack_targets.erase(
    std::unique(dropped_ack_targets.begin(), dropped_ack_targets.end()),
    dropped_ack_targets.end());
  for (auto& m : dropped_ack_targets)
    if (j.is_live(m.queue_id, m.msg_id))
      rep.resurrected_messages.push_back(m);
  rep.affected_meta_keys.assign(dropped_keys.begin(), dropped_keys.end());
  return deliver(visitor);
}

std::unique_ptr<journal> journal::open(const journal_options& opts,
                                       recovery_visitor& visitor,
                                       recovery_report& report,
                                       std::string& error) {
  auto t0 = std::chrono::steady_clock::now();
  report = recovery_report{};
  if (opts.dir.empty()) {
    error = "journal: no directory given";
    return nullptr;
  }
  if (opts.segment_bytes == 0 || opts.segment_bytes > max_segment_bytes) {
    error = "journal: segment_bytes must be 1 .. 1 GiB";
    return nullptr;
  }
  std::unique_ptr<journal> j{new journal(opts)};
  recovery r{*j, report, error};
  bool ok = r.run(visitor);
  report.seconds
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
  if (!ok)
    return nullptr;
  return j;
}

} // namespace flotilla::store
