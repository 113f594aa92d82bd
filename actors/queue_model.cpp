#include "actors/queue_model.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace flotilla {

namespace {

using overflow_policy = queue_config::overflow_policy;

int highest_bit(uint64_t w) {
  return 63 - __builtin_clzll(w);
}

} // namespace

queue_model::queue_model(std::string name, queue_config cfg)
  : name_(std::move(name)), cfg_(std::move(cfg)),
    levels_(size_t{cfg_.max_priority} + 1) {}

// -- ready FIFOs --------------------------------------------------------------

size_t queue_model::level_of(const message& m) const {
  return std::min<size_t>(m.priority(), cfg_.max_priority);
}

queue_model::fifo* queue_model::top_fifo() {
  for (size_t w = nonempty_.size(); w-- > 0;)
    if (nonempty_[w] != 0)
      return &levels_[w * 64 + highest_bit(nonempty_[w])];
  return nullptr;
}

void queue_model::note_level(size_t level) {
  auto bit = uint64_t{1} << (level % 64);
  if (levels_[level].empty())
    nonempty_[level / 64] &= ~bit;
  else
    nonempty_[level / 64] |= bit;
}

void queue_model::push_ready(entry e) {
  auto level = level_of(*e.msg);
  auto size = e.msg->body_size();
  ++ready_count_;
  ready_bytes_ += size;
  if (pager_ && !levels_[0].empty()
      && (!paged_.empty() || mem_bytes_ + size > page_limit_)) {
    page_out(e);
    if (!e.msg)
      return;
  }
  mem_bytes_ += size;
  levels_[level].push_back(std::move(e));
  note_level(level);
}

queue_model::entry queue_model::pop_ready(fifo& f) {
  auto e = std::move(f.front());
  f.pop_front();
  --ready_count_;
  auto size = e.msg->body_size();
  ready_bytes_ -= size;
  mem_bytes_ -= size;
  // Read the next part of the backlog back before memory runs dry, in
  // chunks (hysteresis: between a half and three quarters of the limit).
  if (!paged_.empty() && mem_bytes_ < page_limit_ / 2)
    page_in();
  if (f.empty())
    note_level(static_cast<size_t>(&f - levels_.data()));
  return e;
}

void queue_model::peek(size_t count, std::vector<peeked>& out) const {
  for (size_t level = levels_.size(); level-- > 0 && count > 0;)
    for (auto& e : levels_[level]) {
      if (count == 0)
        break;
      out.push_back(peeked{e.msg, e.redelivered});
      --count;
    }
}

// -- paging -------------------------------------------------------------------

message_pager::~message_pager() = default;

bool queue_model::set_pager(std::unique_ptr<message_pager> pager,
                            uint64_t limit) {
  if (cfg_.max_priority != 0 || cfg_.max_length || cfg_.max_length_bytes
      || !pager || limit == 0)
    return false;
  pager_ = std::move(pager);
  page_limit_ = limit;
  return true;
}

void queue_model::page_out(entry& e) {
  message_pager::location loc;
  auto written = page_transform_ ? page_transform_(e.msg) : e.msg;
  if (!pager_->write(*written, loc)) {
    // Keep FIFO order: bring the paged tail back, then stop paging.
    paging_failed_ = true;
    while (!paged_.empty())
      page_in();
    pager_.reset();
    return;
  }
  paged_.push_back(paged_entry{e.id, loc, e.expires_at,
                               static_cast<uint32_t>(e.msg->body_size()),
                               e.round, e.redelivered, e.zero_ttl});
  ++stats_.paged_out;
  e.msg.reset();
}

void queue_model::page_in() {
  auto& f = levels_[0];
  auto target = page_limit_ - page_limit_ / 4;
  do {
    auto p = paged_.front();
    paged_.pop_front();
    auto msg = pager_->read(p.loc);
    pager_->release(p.loc);
    if (!msg) {
      // Lost to an I/O error: it leaves the queue like an expired one.
      --ready_count_;
      ready_bytes_ -= p.body_size;
      ++stats_.page_read_errors;
      note_removed(p.id);
      continue;
    }
    mem_bytes_ += p.body_size;
    f.push_back(entry{p.id, std::move(msg), p.expires_at, p.round,
                      p.redelivered, p.zero_ttl});
  } while (!paged_.empty() && (mem_bytes_ < target || f.empty()));
  note_level(0);
}

// -- expiry and dead letters --------------------------------------------------

bool queue_model::expired(const entry& e, millis now, bool may_deliver) const {
  if (now < e.expires_at)
    return false;
  // TTL 0: deliverable during the first dispatch round after its enqueue,
  // if a consumer has credit (RabbitMQ hands it over before queueing it).
  return !(may_deliver && e.zero_ttl && e.round == round_);
}

void queue_model::drop_expired(fifo& f, millis now, bool may_deliver,
                               std::vector<dead_letter>& dead) {
  while (!f.empty() && expired(f.front(), now, may_deliver)) {
    auto e = pop_ready(f);
    note_removed(e.id);
    ++stats_.expired;
    to_dead(std::move(e.msg), dead_letter_reason::expired, dead);
  }
}

void queue_model::to_dead(message_ptr msg, dead_letter_reason reason,
                          std::vector<dead_letter>& dead) {
  if (!cfg_.dead_letter_exchange)
    return;
  dead.push_back(dead_letter{std::move(msg), reason});
  ++stats_.dead_lettered;
}

void queue_model::expire(millis now, std::vector<dead_letter>& dead) {
  for (auto& f : levels_)
    drop_expired(f, now, false, dead);
}

millis queue_model::next_expiry() const {
  millis result = never;
  for (auto& f : levels_)
    if (!f.empty())
      result = std::min(result, f.front().expires_at);
  if (result == never)
    return 0;
  return std::max<millis>(result, 1);
}

// -- enqueue and overflow -----------------------------------------------------

size_t queue_model::credit_for(size_t wanted) const {
  size_t credit = 0;
  for (auto& r : rings_) {
    for (auto* c : r.ready) {
      if (c->no_ack || c->prefetch == 0)
        return wanted;
      credit += c->prefetch - c->unacked;
      if (credit >= wanted)
        return wanted;
    }
  }
  return credit;
}

bool queue_model::over_limits(size_t count, uint64_t bytes) const {
  return (cfg_.max_length && count > static_cast<uint64_t>(*cfg_.max_length))
         || (cfg_.max_length_bytes
             && bytes > static_cast<uint64_t>(*cfg_.max_length_bytes));
}

queue_model::enqueue_result queue_model::enqueue(message_ptr msg, millis now,
                                                 std::vector<dead_letter>& dead,
                                                 bool redelivered) {
  auto ttl = cfg_.message_ttl;
  if (auto per_message = parse_expiration(msg->properties.expiration))
    ttl = ttl ? std::min(*ttl, *per_message) : *per_message;
  auto expires_at = never;
  if (ttl)
    expires_at = now > never - *ttl ? never : now + *ttl;
  bool limited = cfg_.max_length || cfg_.max_length_bytes;
  if (limited && cfg_.overflow != overflow_policy::drop_head
      && over_limits(ready_count_ + 1, ready_bytes_ + msg->body_size())) {
    // Like RabbitMQ, refused even if a consumer could take it right away.
    ++stats_.rejected_publishes;
    if (cfg_.overflow == overflow_policy::reject_publish_dlx)
      to_dead(std::move(msg), dead_letter_reason::maxlen, dead);
    return enqueue_result::rejected;
  }
  push_ready(entry{next_id_++, std::move(msg), expires_at, round_, redelivered,
                   ttl && *ttl == 0});
  ++stats_.enqueued;
  if (limited && cfg_.overflow == overflow_policy::drop_head)
    drop_overflow(dead);
  return enqueue_result::accepted;
}

void queue_model::drop_overflow(std::vector<dead_letter>& dead) {
  while (ready_count_ > 0) {
    // The first `credit` ready messages (in delivery order) go to consumers
    // at the next dispatch; RabbitMQ would never have queued them, so only
    // the messages after them count, and the oldest of those is dropped.
    auto credit = credit_for(ready_count_);
    if (credit >= ready_count_)
      return;
    // Find the first queued message; sum the bytes before it only when a
    // byte limit needs them (credit is usually 0 here).
    bool bytes = cfg_.max_length_bytes.has_value();
    uint64_t skipped_bytes = 0;
    auto level = levels_.size();
    size_t index = credit;
    while (level-- > 0) {
      auto& f = levels_[level];
      if (index < f.size())
        break;
      index -= f.size();
      if (bytes)
        for (auto& e : f)
          skipped_bytes += e.msg->body_size();
    }
    auto& f = levels_[level];
    if (bytes)
      for (size_t i = 0; i < index; ++i)
        skipped_bytes += f[i].msg->body_size();
    if (!over_limits(ready_count_ - credit, ready_bytes_ - skipped_bytes))
      return;
    message_ptr victim;
    if (index == 0) {
      auto e = pop_ready(f);
      note_removed(e.id);
      victim = std::move(e.msg);
    } else {
      auto i = f.begin() + static_cast<ptrdiff_t>(index);
      note_removed(i->id);
      victim = std::move(i->msg);
      f.erase(i);
      --ready_count_;
      ready_bytes_ -= victim->body_size();
      mem_bytes_ -= victim->body_size();
    }
    ++stats_.overflowed;
    to_dead(std::move(victim), dead_letter_reason::maxlen, dead);
  }
}

// -- consumers ----------------------------------------------------------------

bool queue_model::eligible(const consumer& c) const {
  return !cfg_.single_active_consumer || registration_order_.front() == c.id;
}

queue_model::ring& queue_model::ring_of(int32_t priority) {
  auto i = std::find_if(rings_.begin(), rings_.end(), [&](const ring& r) {
    return r.priority <= priority;
  });
  if (i == rings_.end() || i->priority != priority)
    i = rings_.insert(i, ring{priority, 0, {}});
  return *i;
}

void queue_model::offer(consumer& c) {
  if (c.in_ring || !c.has_credit() || !eligible(c))
    return;
  ring_of(c.priority).ready.push_back(&c);
  c.in_ring = true;
}

void queue_model::withdraw(consumer& c) {
  if (!c.in_ring)
    return;
  auto& r = ring_of(c.priority);
  r.ready.erase(std::find(r.ready.begin(), r.ready.end(), &c));
  c.in_ring = false;
}

errc queue_model::add_consumer(consumer_id id, owner_id owner,
                               uint32_t prefetch, bool no_ack, bool exclusive,
                               int32_t priority) {
  if (id == 0 || consumers_.count(id) != 0)
    return errc::not_allowed;
  // AMQP 0-9-1 (basic.consume, rule on exclusive) and RabbitMQ: 403; SAC
  // queues refuse exclusive consumers altogether.
  if (exclusive_ || (exclusive && !consumers_.empty())
      || (exclusive && cfg_.single_active_consumer))
    return errc::access_refused;
  consumer c;
  c.id = id;
  c.owner = owner;
  c.prefetch = prefetch;
  c.priority = priority;
  c.no_ack = no_ack;
  c.exclusive = exclusive;
  auto& added = consumers_.emplace(id, c).first->second;
  exclusive_ = exclusive;
  registration_order_.push_back(id);
  ++ring_of(priority).size;
  offer(added);
  return errc::none;
}

void queue_model::remove_consumer(consumer_id id) {
  auto i = consumers_.find(id);
  if (i == consumers_.end())
    return;
  auto& c = i->second;
  withdraw(c);
  auto& r = ring_of(c.priority);
  if (--r.size == 0)
    rings_.erase(rings_.begin() + (&r - rings_.data()));
  if (c.exclusive)
    exclusive_ = false;
  bool was_active
    = cfg_.single_active_consumer && registration_order_.front() == id;
  registration_order_.erase(
    std::find(registration_order_.begin(), registration_order_.end(), id));
  consumers_.erase(i);
  if (was_active && !registration_order_.empty())
    offer(consumers_.at(registration_order_.front()));
}

std::optional<consumer_id> queue_model::active_consumer() const {
  if (!cfg_.single_active_consumer || registration_order_.empty())
    return std::nullopt;
  return registration_order_.front();
}

uint32_t queue_model::consumer_unacked(consumer_id id) const {
  auto i = consumers_.find(id);
  return i == consumers_.end() ? 0 : i->second.unacked;
}

// -- delivery -----------------------------------------------------------------

void queue_model::deliver(consumer& c, entry e, std::vector<delivery>& out) {
  ++stats_.delivered;
  if (e.redelivered)
    ++stats_.redelivered;
  if (c.no_ack) {
    note_removed(e.id);
    out.push_back(
      delivery{c.id, c.owner, e.id, std::move(e.msg), e.redelivered});
    return;
  }
  out.push_back(delivery{c.id, c.owner, e.id, e.msg, e.redelivered});
  unacked_.emplace(e.id, unacked_entry{c.owner, c.id, std::move(e.msg),
                                       e.expires_at, e.redelivered});
  ++c.unacked;
}

void queue_model::dispatch(millis now, std::vector<delivery>& out,
                           std::vector<dead_letter>& dead,
                           size_t max_deliveries) {
  for (size_t n = 0;; ++n) {
    if (n == max_deliveries)
      return; // More may follow: TTL 0 messages keep their chance.

    ring* r = nullptr;
    for (auto& candidate : rings_) {
      if (!candidate.ready.empty()) {
        r = &candidate;
        break;
      }
    }
    auto* f = top_fifo();
    while (f != nullptr && expired(f->front(), now, r != nullptr)) {
      drop_expired(*f, now, r != nullptr, dead);
      f = top_fifo();
    }
    if (f == nullptr || r == nullptr)
      break;
    auto* c = r->ready.front();
    r->ready.pop_front();
    c->in_ring = false;
    deliver(*c, pop_ready(*f), out);
    if (c->has_credit()) {
      r->ready.push_back(c);
      c->in_ring = true;
    }
  }
  ++round_;
}

std::optional<delivery> queue_model::get(owner_id owner, bool no_ack,
                                         millis now,
                                         std::vector<dead_letter>& dead) {
  auto* f = top_fifo();
  while (f != nullptr && expired(f->front(), now, false)) {
    drop_expired(*f, now, false, dead);
    f = top_fifo();
  }
  if (f == nullptr)
    return std::nullopt;
  auto e = pop_ready(*f);
  ++stats_.delivered;
  if (e.redelivered)
    ++stats_.redelivered;
  delivery d{0, owner, e.id, e.msg, e.redelivered};
  if (no_ack)
    note_removed(e.id);
  else
    unacked_.emplace(e.id, unacked_entry{owner, 0, std::move(e.msg),
                                         e.expires_at, e.redelivered});
  return d;
}

// -- settlement ---------------------------------------------------------------

void queue_model::free_credit(const unacked_entry& u) {
  if (u.consumer == 0)
    return;
  auto i = consumers_.find(u.consumer);
  if (i == consumers_.end() || i->second.owner != u.owner)
    return;
  auto& c = i->second;
  if (c.unacked > 0)
    --c.unacked;
  offer(c);
}

size_t queue_model::ack(owner_id owner, const std::vector<uint64_t>& ids) {
  size_t n = 0;
  for (auto id : ids) {
    auto i = unacked_.find(id);
    if (i == unacked_.end() || i->second.owner != owner)
      continue;
    free_credit(i->second);
    unacked_.erase(i);
    note_removed(id);
    ++n;
  }
  stats_.acked += n;
  return n;
}

void queue_model::take(owner_id owner, const std::vector<uint64_t>& ids,
                       std::vector<std::pair<uint64_t, unacked_entry>>& out) {
  out.reserve(ids.size());
  for (auto id : ids) {
    auto i = unacked_.find(id);
    if (i == unacked_.end() || i->second.owner != owner)
      continue;
    free_credit(i->second);
    out.emplace_back(id, std::move(i->second));
    unacked_.erase(i);
  }
}

void queue_model::take_all(
  owner_id owner, std::vector<std::pair<uint64_t, unacked_entry>>& out) {
  for (auto i = unacked_.begin(); i != unacked_.end();) {
    if (i->second.owner != owner) {
      ++i;
      continue;
    }
    free_credit(i->second);
    out.emplace_back(i->first, std::move(i->second));
    i = unacked_.erase(i);
  }
}

void queue_model::requeue(
  std::vector<std::pair<uint64_t, unacked_entry>>& items,
  bool mark_redelivered) {
  if (items.empty())
    return;
  // Group by level, each group in id order: the FIFOs are sorted by id, so
  // a merge puts every message back where it was.
  std::vector<std::pair<size_t, entry>> sorted;
  sorted.reserve(items.size());
  for (auto& [id, u] : items) {
    auto level = level_of(*u.msg);
    sorted.emplace_back(level, entry{id, std::move(u.msg), u.expires_at, 0,
                                     mark_redelivered || u.redelivered, false});
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.id < b.second.id;
  });
  stats_.requeued += sorted.size();
  for (size_t begin = 0; begin < sorted.size();) {
    auto level = sorted[begin].first;
    size_t end = begin;
    while (end < sorted.size() && sorted[end].first == level)
      ++end;
    auto& f = levels_[level];
    for (size_t i = begin; i < end; ++i) {
      ++ready_count_;
      ready_bytes_ += sorted[i].second.msg->body_size();
      mem_bytes_ += sorted[i].second.msg->body_size();
    }
    if (f.empty() || sorted[end - 1].second.id < f.front().id) {
      // Common case: everything requeued is older than what is ready.
      for (size_t i = end; i-- > begin;)
        f.push_front(std::move(sorted[i].second));
    } else if (sorted[begin].second.id > f.back().id) {
      for (size_t i = begin; i < end; ++i)
        f.push_back(std::move(sorted[i].second));
    } else {
      fifo merged;
      auto in = f.begin();
      for (size_t i = begin; i < end; ++i) {
        while (in != f.end() && in->id < sorted[i].second.id)
          merged.push_back(std::move(*in++));
        merged.push_back(std::move(sorted[i].second));
      }
      std::move(in, f.end(), std::back_inserter(merged));
      f.swap(merged);
    }
    note_level(level);
    begin = end;
  }
}

void queue_model::reject(owner_id owner, const std::vector<uint64_t>& ids,
                         bool requeue_them, std::vector<dead_letter>& dead) {
  std::vector<std::pair<uint64_t, unacked_entry>> taken;
  take(owner, ids, taken);
  if (requeue_them) {
    requeue(taken, true);
    return;
  }
  for (auto& kv : taken) {
    note_removed(kv.first);
    if (!cfg_.dead_letter_exchange)
      ++stats_.discarded;
    to_dead(std::move(kv.second.msg), dead_letter_reason::rejected, dead);
  }
}

void queue_model::release(owner_id owner, const std::vector<uint64_t>& ids) {
  std::vector<std::pair<uint64_t, unacked_entry>> taken;
  take(owner, ids, taken);
  requeue(taken, false);
}

void queue_model::owner_closed(owner_id owner) {
  std::vector<consumer_id> gone;
  for (auto id : registration_order_)
    if (consumers_.at(id).owner == owner)
      gone.push_back(id);
  for (auto id : gone)
    remove_consumer(id);
  std::vector<std::pair<uint64_t, unacked_entry>> taken;
  take_all(owner, taken);
  requeue(taken, true);
}

errc queue_model::recover(owner_id owner, bool requeue_them) {
  if (!requeue_them)
    return errc::not_implemented;
  std::vector<std::pair<uint64_t, unacked_entry>> taken;
  take_all(owner, taken);
  requeue(taken, true);
  return errc::none;
}

size_t queue_model::purge(std::vector<dead_letter>&) {
  auto n = ready_count_;
  for (auto& f : levels_) {
    if (removed_ != nullptr)
      for (auto& e : f)
        removed_->push_back(e.id);
    f.clear();
  }
  for (auto& p : paged_) {
    note_removed(p.id);
    pager_->release(p.loc);
  }
  paged_.clear();
  nonempty_.fill(0);
  ready_count_ = 0;
  ready_bytes_ = 0;
  mem_bytes_ = 0;
  stats_.purged += n;
  return n;
}

} // namespace flotilla
