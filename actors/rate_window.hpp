#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace flotilla {

/// Rates of N monotonic counters over a sliding window of at most
/// `Slots - 1` periods, in fixed memory. The owner calls sample() whenever it
/// is active (cheap: one comparison unless a period has passed) and rates()
/// when asked; an idle owner needs no timer, because counters that did not
/// move since the last sample give a rate of 0 over the elapsed time.
/// Plain C++; single-threaded (owned by one actor).
template<size_t N, size_t Slots = 11>
class rate_window {
public:
  using values = std::array<uint64_t, N>;

  /// `period_ms`: the spacing of the samples kept; the window is at most
  /// (Slots - 1) * period_ms.
  explicit rate_window(int64_t period_ms = 1000) : period_(period_ms) {}

  /// Records `v` at `now_ms` if the latest sample is at least one period
  /// old (or there is none).
  void sample(int64_t now_ms, const values& v) {
    if (count_ > 0 && now_ms - at(count_ - 1).time < period_)
      return;
    if (count_ == Slots) {
      head_ = (head_ + 1) % Slots;
      --count_;
    }
    auto& s = slots_[(head_ + count_) % Slots];
    s.time = now_ms;
    s.v = v;
    ++count_;
  }

  /// Returns the per-second rates of `current` (the counters at `now_ms`)
  /// against the oldest sample within the window, and that window's length
  /// in seconds through `window_seconds`. All zero without an older sample.
  std::array<double, N> rates(int64_t now_ms, const values& current,
                              double& window_seconds) const {
    std::array<double, N> result{};
    window_seconds = 0;
    const int64_t window = static_cast<int64_t>(Slots - 1) * period_;
    for (size_t i = 0; i < count_; ++i) {
      auto& s = at(i);
      auto dt = now_ms - s.time;
      if (dt > window || dt <= 0)
        continue;
      window_seconds = static_cast<double>(dt) / 1000.0;
      for (size_t k = 0; k < N; ++k)
        result[k] = static_cast<double>(current[k] - s.v[k]) / window_seconds;
      return result;
    }
    // Every sample is older than the window: nothing moved since the last
    // one if the owner samples whenever it is active, so the rates are 0
    // over the whole window.
    if (count_ > 0)
      window_seconds = static_cast<double>(window) / 1000.0;
    return result;
  }

private:
  struct slot {
    int64_t time = 0;
    values v{};
  };

  const slot& at(size_t i) const {
    return slots_[(head_ + i) % Slots];
  }

  int64_t period_;
  std::array<slot, Slots> slots_{};
  size_t head_ = 0;
  size_t count_ = 0;
};

} // namespace flotilla
