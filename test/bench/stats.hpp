#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace flotilla::bench {

/// Latency histogram in nanoseconds, log-linear like HdrHistogram: values
/// below 128 are exact, above that every power of two is split into 128
/// buckets (under 0.8 % error). One per consumer thread; merged at the end.
class histogram {
public:
  static constexpr int sub_bits = 7;
  static constexpr uint64_t sub_count = uint64_t{1} << sub_bits;
  static constexpr size_t bucket_count
    = sub_count + (64 - sub_bits) * sub_count;

  void record(uint64_t v) {
    ++counts_[index_of(v)];
    ++total_;
    sum_ += v;
    if (v > max_)
      max_ = v;
  }

  void merge(const histogram& other) {
    for (size_t i = 0; i < bucket_count; ++i)
      counts_[i] += other.counts_[i];
    total_ += other.total_;
    sum_ += other.sum_;
    if (other.max_ > max_)
      max_ = other.max_;
  }

  uint64_t count() const {
    return total_;
  }

  uint64_t max() const {
    return max_;
  }

  double mean() const {
    return total_ == 0 ? 0.0 : static_cast<double>(sum_) / total_;
  }

  /// Returns the value at quantile `q` (0..1): the middle of the bucket
  /// holding the ceil(q * count)-th smallest value; 0 when empty.
  uint64_t quantile(double q) const {
    if (total_ == 0)
      return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank < 1)
      rank = 1;
    if (rank > total_)
      rank = total_;
    uint64_t seen = 0;
    for (size_t i = 0; i < bucket_count; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        auto lo = lower_bound(i);
        auto hi = i + 1 < bucket_count ? lower_bound(i + 1) : lo;
        auto mid = lo + (hi - lo) / 2;
        return mid < max_ ? mid : max_;
      }
    }
    return max_;
  }

  static size_t index_of(uint64_t v) {
    if (v < sub_count)
      return static_cast<size_t>(v);
    int e = 63 - __builtin_clzll(v);     // >= sub_bits
    auto mantissa = v >> (e - sub_bits); // in [sub_count, 2 * sub_count)
    return static_cast<size_t>(sub_count + (e - sub_bits) * sub_count
                               + (mantissa - sub_count));
  }

  static uint64_t lower_bound(size_t i) {
    if (i < sub_count)
      return i;
    auto e = (i - sub_count) / sub_count + sub_bits;
    auto mantissa = (i - sub_count) % sub_count + sub_count;
    return mantissa << (e - sub_bits);
  }

private:
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(bucket_count, 0);
  uint64_t total_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

/// Which sequence numbers of one publisher arrived on one queue. Consumers
/// of that queue share it (several may consume one queue), so marking is a
/// lock-free fetch_or; the bitmap grows in chunks of 2^20 messages, allocated
/// on first use.
class seen_set {
public:
  static constexpr int chunk_bits = 20;
  static constexpr uint64_t chunk_size = uint64_t{1} << chunk_bits;
  static constexpr size_t max_chunks = 4096; // 4 billion messages

  seen_set() {
    for (auto& c : chunks_)
      c.store(nullptr, std::memory_order_relaxed);
  }

  ~seen_set() {
    for (auto& c : chunks_)
      delete[] c.load(std::memory_order_relaxed);
  }

  seen_set(const seen_set&) = delete;
  seen_set& operator=(const seen_set&) = delete;

  /// Marks `seq`; returns false if it was marked before (a duplicate) or is
  /// out of range.
  bool mark(uint64_t seq) {
    auto ci = seq >> chunk_bits;
    if (ci >= max_chunks)
      return false;
    auto* chunk = chunks_[ci].load(std::memory_order_acquire);
    if (chunk == nullptr)
      chunk = allocate(ci);
    auto off = seq & (chunk_size - 1);
    auto bit = uint64_t{1} << (off & 63);
    auto old = chunk[off >> 6].fetch_or(bit, std::memory_order_relaxed);
    if (old & bit)
      return false;
    distinct_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  /// Returns how many different sequence numbers were marked.
  uint64_t distinct() const {
    return distinct_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<uint64_t>* allocate(uint64_t ci) {
    auto* fresh = new std::atomic<uint64_t>[chunk_size / 64];
    for (uint64_t i = 0; i < chunk_size / 64; ++i)
      fresh[i].store(0, std::memory_order_relaxed);
    std::atomic<uint64_t>* expected = nullptr;
    if (chunks_[ci].compare_exchange_strong(expected, fresh,
                                            std::memory_order_acq_rel))
      return fresh;
    delete[] fresh;
    return expected;
  }

  std::array<std::atomic<std::atomic<uint64_t>*>, max_chunks> chunks_;
  std::atomic<uint64_t> distinct_{0};
};

} // namespace flotilla::bench
