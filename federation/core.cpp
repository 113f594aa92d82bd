#include "federation/core.hpp"

#include <algorithm>
#include <random>

namespace flotilla::federation {

namespace pr = flotilla::protocol;

std::string join_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (auto& id : ids) {
    if (!out.empty())
      out += ',';
    out += id;
  }
  return out;
}

std::vector<std::string> split_ids(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    if (comma == std::string::npos)
      comma = text.size();
    if (comma > pos)
      out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

std::string durable_export_queue(const std::string& dest_node,
                                 const std::string& bridge) {
  return std::string{export_queue_prefix} + dest_node + "." + bridge;
}

bool contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::optional<trace_info> read_trace(const message& m) {
  if (!m.properties.headers)
    return std::nullopt;
  auto* t = m.properties.headers->find(trace_header);
  auto* s = m.properties.headers->find(origin_seq_header);
  if (t == nullptr || s == nullptr || t->as_string() == nullptr || !s->as_int())
    return std::nullopt;
  trace_info out;
  out.trace = split_ids(*t->as_string());
  if (out.trace.empty())
    return std::nullopt;
  out.origin = out.trace.front();
  out.origin_seq = static_cast<uint64_t>(*s->as_int());
  return out;
}

void write_trace(message& m, const trace_info& t) {
  if (!m.properties.headers)
    m.properties.headers.emplace();
  m.properties.headers->set(trace_header, pr::field_value{join_ids(t.trace)});
  m.properties.headers->set(
    origin_seq_header, pr::field_value{static_cast<int64_t>(t.origin_seq)});
  m.raw_header.clear();
}

const char* to_string(arrival x) {
  switch (x) {
    case arrival::accept:
      return "accept";
    case arrival::loop:
      return "loop";
    case arrival::too_many_hops:
      return "too_many_hops";
    default:
      return "duplicate";
  }
}

bool dedup_window::test_and_set(per_origin& w, uint64_t seq) {
  if (w.bits.empty())
    w.bits.assign((window_ + 63) / 64, 0);
  auto slot = [&](uint64_t n) -> std::pair<uint64_t&, uint64_t> {
    auto i = n % window_;
    return {w.bits[i / 64], uint64_t{1} << (i % 64)};
  };
  if (seq > w.high) {
    // Numbers between the old high and seq have not arrived: clear them.
    if (seq - w.high >= window_) {
      std::fill(w.bits.begin(), w.bits.end(), 0);
    } else {
      for (auto n = w.high + 1; n < seq; ++n) {
        auto [word, bit] = slot(n);
        word &= ~bit;
      }
    }
    w.high = seq;
    auto [word, bit] = slot(seq);
    word |= bit;
    return true;
  }
  if (w.high - seq >= window_)
    return false; // Older than the window: treated as seen.
  auto [word, bit] = slot(seq);
  if (word & bit)
    return false;
  word |= bit;
  return true;
}

bool dedup_window::accept(const std::string& origin, uint64_t seq) {
  std::lock_guard<std::mutex> guard{mtx_};
  return test_and_set(origins_[origin], seq);
}

void dedup_window::forget(const std::string& origin, uint64_t seq) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = origins_.find(origin);
  if (i == origins_.end() || i->second.bits.empty() || seq > i->second.high
      || i->second.high - seq >= window_)
    return;
  auto n = seq % window_;
  i->second.bits[n / 64] &= ~(uint64_t{1} << (n % 64));
}

arrival check_arrival(const trace_info& t, const std::string& self,
                      uint32_t max_hops, dedup_window& seen) {
  if (contains(t.trace, self))
    return arrival::loop;
  if (max_hops != 0 && t.trace.size() > max_hops)
    return arrival::too_many_hops;
  if (!seen.accept(t.origin, t.origin_seq))
    return arrival::duplicate;
  return arrival::accept;
}

message_ptr number_for_paging(const std::string& queue, const message_ptr& m,
                              const std::string& self,
                              origin_numbers& numbers) {
  if (!m || queue.rfind(export_queue_prefix, 0) != 0 || read_trace(*m))
    return m;
  auto copy = std::make_shared<message>(*m);
  write_trace(*copy, trace_info{self, numbers.number_of(m), {self}});
  return copy;
}

uint64_t origin_numbers::number_of(const message_ptr& m) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = live_.find(m.get());
  if (i != live_.end()) {
    auto alive = i->second.msg.lock();
    if (alive == m)
      return i->second.seq;
  }
  if (++inserts_ % 1024 == 0) {
    for (auto j = live_.begin(); j != live_.end();)
      j = j->second.msg.expired() ? live_.erase(j) : std::next(j);
  }
  auto seq = next_++;
  live_[m.get()] = entry{m, seq};
  return seq;
}

std::vector<interest_item>
interest_for_peer(const std::string& self, const std::string& peer,
                  const std::vector<std::string>& local_keys,
                  const std::vector<received_interest>& received,
                  uint32_t max_hops) {
  std::vector<interest_item> out;
  for (auto& k : local_keys)
    out.push_back(interest_item{k, {self}});
  for (auto& r : received) {
    if (r.peer == peer)
      continue; // Split horizon: never echo a peer's interest back to it.
    for (auto& it : r.items) {
      if (contains(it.path, peer) || contains(it.path, self))
        continue;
      if (max_hops != 0 && it.path.size() + 1 > max_hops)
        continue;
      auto copy = it;
      copy.path.push_back(self);
      out.push_back(std::move(copy));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> keys_of(const std::vector<interest_item>& items) {
  std::vector<std::string> out;
  for (auto& it : items)
    out.push_back(it.key);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::chrono::milliseconds backoff::next() {
  auto result = next_;
  next_ = std::min(next_ * 2, max_);
  return result;
}

std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds delay,
                                          const std::string& local_id,
                                          const std::string& remote_id) {
  if (local_id.empty() || remote_id.empty() || local_id <= remote_id)
    return delay;
  return delay + delay / 2;
}

bool route_alarm::update(bool running, int64_t now_ms, int64_t limit_ms) {
  if (running)
    down_since_ = -1;
  else if (down_since_ < 0)
    down_since_ = now_ms;
  bool alarm = !running && now_ms - down_since_ > limit_ms;
  if (alarm == raised_)
    return false;
  raised_ = alarm;
  return true;
}

std::string make_broker_id() {
  std::random_device rd;
  std::mt19937_64 gen{(uint64_t{rd()} << 32) ^ rd()};
  static constexpr char hex[] = "0123456789abcdef";
  auto x = gen();
  std::string out(16, '0');
  for (int i = 0; i < 16; ++i)
    out[i] = hex[(x >> (4 * i)) & 0xf];
  return out;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1"
         || host.compare(0, 4, "127.") == 0;
}

} // namespace flotilla::federation
