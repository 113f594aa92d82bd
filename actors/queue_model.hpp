#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/dead_letter.hpp"
#include "actors/message.hpp"
#include "actors/queue_arguments.hpp"
#include "protocol/errc.hpp"

namespace flotilla {

/// Identifies a consumer within one queue; assigned by the caller, never 0
/// (0 marks basic.get deliveries), not reused while its deliveries are
/// unacked.
using consumer_id = uint64_t;

/// Identifies who must settle a delivery: a channel. Assigned by the caller.
using owner_id = uint64_t;

/// Where a queue keeps the messages it paged out of memory: synchronous,
/// local storage (files in the data directory; see make_file_pager()).
/// Used by one queue_model only, on its actor's thread.
class message_pager {
public:
  /// Where one paged message is.
  struct location {
    uint64_t offset = 0;
    uint32_t segment = 0;
    uint32_t length = 0;
  };

  virtual ~message_pager();

  /// Stores `m`; returns false on an I/O error (e.g. the disk is full).
  virtual bool write(const message& m, location& out) = 0;

  /// Reads back what write() stored at `loc`, or nullptr on an I/O error.
  virtual message_ptr read(const location& loc) = 0;

  /// The message at `loc` is not needed any more (read back or purged).
  virtual void release(const location& loc) = 0;
};

/// One message handed to a consumer (or to basic.get when consumer is 0).
struct delivery {
  consumer_id consumer;
  owner_id owner;
  uint64_t id; ///< The queue's message id: what ack/reject/release take.
  message_ptr msg;
  bool redelivered;
};

/// One queue's semantics, without actors: ready messages, consumers, credit,
/// unacked deliveries, TTL, overflow and what to dead-letter. Owned by one
/// queue actor, which passes the time in, routes `dead_letter`s and sends
/// `delivery`s; single-threaded, never blocks, never throws (except
/// std::bad_alloc). Node-local.
///
/// Message life cycle (ids are per queue, assigned by enqueue, monotonic):
///
///     enqueue --> ready --dispatch/get--> unacked --ack--> (gone)
///                  |  ^                     |   |
///                  |  +--reject(requeue)----+   +--reject(no requeue)-+
///                  |     release, recover,                            |
///                  |     owner_closed                                 v
///                  +--expire, overflow---------------------> dead (or dropped)
///                  +--purge--> (gone)
///
/// Deliveries to no-ack consumers (and no-ack basic.get) skip `unacked`.
///
/// Ordering: ready messages form one FIFO per priority level (one level
/// without x-max-priority; with it, a message's priority is capped at
/// max_priority and higher levels go first). Requeued messages return to
/// their original position, by id, and are marked redelivered.
///
/// Consumers: the highest x-priority consumers with credit get messages
/// first, round-robin among equals. A consumer with prefetch N holds at most
/// N unacked deliveries; prefetch 0 and no-ack consumers are unlimited. With
/// x-single-active-consumer only the earliest registered consumer receives.
///
/// Expiry (RabbitMQ classic semantics): a message expires at enqueue time +
/// min(x-message-ttl, per-message expiration). Only the head of each FIFO is
/// checked, by dispatch(), get() and expire(): with a queue TTL alone the
/// head always expires first; with per-message TTLs a short-lived message
/// behind a long-lived one waits until it reaches the head, as in RabbitMQ.
/// A TTL of 0 means "deliver now or never": the message is delivered if the
/// first dispatch() after its enqueue finds a consumer with credit for it,
/// else it expires there.
///
/// Overflow (x-max-length, x-max-length-bytes; ready messages only, bodies
/// only): drop-head drops the next-to-deliver messages after the enqueue;
/// reject-publish refuses the message that would exceed a limit. Like
/// RabbitMQ, which hands a message straight to a waiting consumer before
/// queueing it, drop-head does not count ready messages that consumers
/// already have credit for (so x-max-length 0 still feeds live consumers).
/// For exact RabbitMQ behaviour call dispatch() after each enqueue() or
/// after each batch of them.
///
/// Dead letters: messages that expire, overflow or are rejected without
/// requeue are appended to the caller's `dead` vector (the original message
/// and the reason) when the queue has a dead-letter exchange, else dropped.
class queue_model {
public:
  /// The outcome of an enqueue.
  enum class enqueue_result : uint8_t {
    accepted, ///< Stored (it may already have been dead-lettered by drop-head)
    rejected, ///< Refused by reject-publish(-dlx): nack it if confirming.
  };

  /// Statistics since creation.
  struct counters {
    uint64_t enqueued = 0;           ///< Accepted by enqueue.
    uint64_t rejected_publishes = 0; ///< Refused by reject-publish(-dlx).
    uint64_t delivered = 0;          ///< To consumers and basic.get.
    uint64_t redelivered = 0;        ///< Deliveries flagged redelivered.
    uint64_t acked = 0;              ///< Settled by ack.
    uint64_t requeued = 0;           ///< Returned to ready.
    uint64_t dead_lettered = 0;      ///< Appended to a `dead` vector.
    uint64_t expired = 0;            ///< Expired (dead-lettered or dropped).
    uint64_t overflowed = 0;         ///< Dropped by drop-head.
    uint64_t discarded = 0;          ///< Rejected without requeue and DLX.
    uint64_t purged = 0;             ///< Removed by purge.
    uint64_t paged_out = 0;          ///< Written to the pager.
    uint64_t page_read_errors = 0;   ///< Paged messages lost to read errors.
  };

  /// Creates an empty queue named `name` (for x-death) with `cfg`.
  explicit queue_model(std::string name, queue_config cfg);

  queue_model(const queue_model&) = delete;
  queue_model& operator=(const queue_model&) = delete;

  /// Stores `msg` at time `now`, assigning the next id. Applies the TTL and
  /// the overflow policy (see the class comment); messages that overflow
  /// are appended to `dead` (reason maxlen) when a DLX is configured.
  /// Returns rejected when reject-publish(-dlx) refuses the message (with
  /// -dlx and a DLX it is also appended to `dead`), else accepted.
  enqueue_result enqueue(message_ptr msg, millis now,
                         std::vector<dead_letter>& dead,
                         bool redelivered = false);

  /// Returns the id the next enqueue() assigns.
  uint64_t next_id() const {
    return next_id_;
  }

  /// Registers a consumer of channel `owner`. `prefetch` 0 means unlimited;
  /// `priority` is x-priority (higher first).
  /// Returns errc::access_refused (403, as the AMQP 0-9-1 rule on exclusive
  /// consumers and RabbitMQ's "queue '...' in exclusive use") if an
  /// exclusive consumer exists, if `exclusive` is asked while other
  /// consumers exist or on a single-active-consumer queue; errc::not_allowed
  /// if `id` is 0 or already registered; else errc::none.
  errc add_consumer(consumer_id id, owner_id owner, uint32_t prefetch,
                    bool no_ack, bool exclusive, int32_t priority = 0);

  /// Unregisters a consumer (basic.cancel). Its unacked deliveries stay
  /// unacked, owned by its owner, until settled or the owner closes. With
  /// single active consumer, the next registered consumer becomes active.
  /// Unknown ids are ignored.
  void remove_consumer(consumer_id id);

  /// Appends to `out` as many ready messages as consumer credit allows (at
  /// most `max_deliveries`, so that an actor can yield between batches),
  /// and to `dead` the expired messages it meets at the heads (reason
  /// expired). A dispatch that stops at `max_deliveries` does not end the
  /// "deliver now or never" chance of TTL 0 messages.
  void dispatch(millis now, std::vector<delivery>& out,
                std::vector<dead_letter>& dead,
                size_t max_deliveries = SIZE_MAX);

  /// basic.get for channel `owner`: returns the next unexpired message
  /// (delivery.consumer is 0), tracked as unacked unless `no_ack`, or
  /// nullopt when none is ready. Expired heads go to `dead`.
  std::optional<delivery> get(owner_id owner, bool no_ack, millis now,
                              std::vector<dead_letter>& dead);

  /// Settles the unacked deliveries `ids` of `owner`, freeing credit.
  /// Returns how many were settled; unknown ids and ids of other owners are
  /// ignored.
  size_t ack(owner_id owner, const std::vector<uint64_t>& ids);

  /// Settles `ids` of `owner` negatively. With `requeue` they return to
  /// their original positions marked redelivered; without, they are
  /// appended to `dead` (reason rejected) if a DLX is configured, else
  /// dropped. Unknown ids are ignored.
  void reject(owner_id owner, const std::vector<uint64_t>& ids, bool requeue,
              std::vector<dead_letter>& dead);

  /// Returns deliveries that never reached the client (e.g. its channel
  /// closed while they were in flight) to their original positions, keeping
  /// their redelivered flag.
  void release(owner_id owner, const std::vector<uint64_t>& ids);

  /// The channel `owner` closed: requeues all its unacked deliveries (marked
  /// redelivered) and removes all its consumers.
  void owner_closed(owner_id owner);

  /// basic.recover: with `requeue`, requeues all unacked deliveries of
  /// `owner` (marked redelivered) and returns errc::none. Without, returns
  /// errc::not_implemented like RabbitMQ and changes nothing.
  errc recover(owner_id owner, bool requeue);

  /// queue.purge: removes all ready messages (not unacked ones) without
  /// dead-lettering them, as RabbitMQ does; `unused` is left untouched.
  /// Returns how many were removed.
  size_t purge(std::vector<dead_letter>& unused);

  /// Drops the expired messages at the FIFO heads (to `dead`, reason
  /// expired). Call when next_expiry() has passed.
  void expire(millis now, std::vector<dead_letter>& dead);

  /// Returns the earliest expiry among the FIFO heads (the next time
  /// expire() can drop something), or 0 when no head has a TTL. Never
  /// returns 0 for an actual expiry (an expiry at time 0 is returned as 1).
  millis next_expiry() const;

  /// Returns the number of ready messages (including expired ones that were
  /// not yet dropped).
  size_t ready_count() const {
    return ready_count_;
  }

  /// Returns the body bytes of the ready messages.
  uint64_t ready_bytes() const {
    return ready_bytes_;
  }

  /// Returns the number of unacked deliveries.
  size_t unacked_count() const {
    return unacked_.size();
  }

  /// Returns the number of registered consumers.
  size_t consumer_count() const {
    return consumers_.size();
  }

  /// Returns true when no consumer is registered (for x-expires).
  bool unused() const {
    return consumers_.empty();
  }

  /// Returns the consumer that receives messages under single active
  /// consumer, or nullopt without it or without consumers.
  std::optional<consumer_id> active_consumer() const;

  /// Returns the number of unacked deliveries of consumer `id` (0 if
  /// unknown).
  uint32_t consumer_unacked(consumer_id id) const;

  const queue_config& config() const {
    return cfg_;
  }

  const std::string& name() const {
    return name_;
  }

  const counters& stats() const {
    return stats_;
  }

  /// Pages the backlog out of memory: once the ready messages in memory
  /// hold more than `limit` body bytes, later ones are written to `pager`
  /// (keeping about 40 bytes each in memory) and read back in order when
  /// the messages before them are gone. Only queues with one priority level
  /// and no length limit page (those need every ready message at hand);
  /// returns false and ignores the pager for the others. Call before the
  /// first enqueue. A pager write error stops paging for good (see
  /// paging_failed()); a read error loses that message (counted in
  /// counters::page_read_errors).
  bool set_pager(std::unique_ptr<message_pager> pager, uint64_t limit);

  /// Runs on each message before it is paged out; what it returns is
  /// written instead (see page_out_hook).
  void set_page_transform(std::function<message_ptr(const message_ptr&)> f) {
    page_transform_ = std::move(f);
  }

  /// A ready message as peek() shows it.
  struct peeked {
    message_ptr msg;
    bool redelivered;
  };

  /// Appends to `out` the next (at most) `count` ready messages in delivery
  /// order, without removing or changing anything. Only messages in memory
  /// are shown: with a paged backlog, the first part of it.
  void peek(size_t count, std::vector<peeked>& out) const;

  /// Returns the number of ready messages paged out of memory.
  size_t paged_count() const {
    return paged_.size();
  }

  /// Returns the body bytes of the ready messages paged out of memory.
  uint64_t paged_bytes() const {
    return ready_bytes_ - mem_bytes_;
  }

  /// Returns true once a pager write failed (paging is then off).
  bool paging_failed() const {
    return paging_failed_;
  }

  /// Makes the model append to `log` the id of every message that leaves
  /// the queue for good: acked, delivered or fetched without ack, rejected
  /// without requeue, expired, dropped by overflow, purged. The store uses
  /// it to write acks for persistent messages. nullptr turns it off.
  void set_removal_log(std::vector<uint64_t>* log) {
    removed_ = log;
  }

private:
  void note_removed(uint64_t id) {
    if (removed_ != nullptr)
      removed_->push_back(id);
  }

  static constexpr millis never = INT64_MAX;

  /// A ready message. 40 bytes.
  struct entry {
    uint64_t id;
    message_ptr msg;
    millis expires_at; ///< `never` without TTL.
    /// With zero_ttl: the dispatch round in which it may still be delivered.
    uint32_t round;
    bool redelivered;
    bool zero_ttl; ///< TTL 0, not yet offered to a dispatch.
  };

  /// An unacked delivery, keyed by message id.
  struct unacked_entry {
    owner_id owner;
    consumer_id consumer; ///< 0 for basic.get.
    message_ptr msg;
    millis expires_at;
    bool redelivered; ///< As delivered.
  };

  struct consumer {
    consumer_id id;
    owner_id owner;
    uint32_t prefetch; ///< 0: unlimited.
    uint32_t unacked = 0;
    int32_t priority;
    bool no_ack;
    bool exclusive;
    bool in_ring = false; ///< Listed in its ring (eligible, has credit).

    bool has_credit() const {
      return no_ack || prefetch == 0 || unacked < prefetch;
    }
  };

  /// The consumers of one x-priority that are eligible and have credit,
  /// served round-robin from the front. `size` counts all consumers of that
  /// priority, so rings exist while the priority has consumers.
  struct ring {
    int32_t priority;
    size_t size;
    std::deque<consumer*> ready;
  };

  using fifo = std::deque<entry>;

  /// A ready message paged out of memory: the tail of levels_[0]. 40 bytes.
  struct paged_entry {
    uint64_t id;
    message_pager::location loc;
    millis expires_at;
    uint32_t body_size;
    uint32_t round;
    bool redelivered;
    bool zero_ttl;
  };

  void page_out(entry& e);
  void page_in();

  size_t level_of(const message& m) const;
  fifo* top_fifo();
  void push_ready(entry e);
  entry pop_ready(fifo& f);
  void note_level(size_t level);
  bool expired(const entry& e, millis now, bool may_deliver) const;
  void drop_expired(fifo& f, millis now, bool may_deliver,
                    std::vector<dead_letter>& dead);
  void to_dead(message_ptr msg, dead_letter_reason reason,
               std::vector<dead_letter>& dead);
  bool over_limits(size_t count, uint64_t bytes) const;
  void drop_overflow(std::vector<dead_letter>& dead);
  size_t credit_for(size_t wanted) const;
  consumer* next_consumer();
  ring& ring_of(int32_t priority);
  void offer(consumer& c);
  void withdraw(consumer& c);
  bool eligible(const consumer& c) const;
  void deliver(consumer& c, entry e, std::vector<delivery>& out);
  void free_credit(const unacked_entry& u);
  void take(owner_id owner, const std::vector<uint64_t>& ids,
            std::vector<std::pair<uint64_t, unacked_entry>>& out);
  void take_all(owner_id owner,
                std::vector<std::pair<uint64_t, unacked_entry>>& out);
  void requeue(std::vector<std::pair<uint64_t, unacked_entry>>& items,
               bool mark_redelivered);

  std::string name_;
  queue_config cfg_;
  uint64_t next_id_ = 1;
  uint32_t round_ = 0; ///< Incremented by each dispatch().

  std::vector<fifo> levels_; ///< Index = priority level.
  /// Bit i set iff levels_[i] is not empty (256 levels at most).
  std::array<uint64_t, 4> nonempty_{};
  size_t ready_count_ = 0;
  uint64_t ready_bytes_ = 0; ///< In memory and paged.

  // Paging (single-level queues only): levels_[0] holds the older messages,
  // paged_ the newer ones, so every id in paged_ is above every id in
  // levels_[0], and paged_ is empty whenever levels_[0] is.
  std::unique_ptr<message_pager> pager_;
  std::function<message_ptr(const message_ptr&)> page_transform_;
  uint64_t page_limit_ = 0;
  uint64_t mem_bytes_ = 0; ///< Body bytes of the ready messages in memory.
  std::deque<paged_entry> paged_;
  bool paging_failed_ = false;

  std::unordered_map<uint64_t, unacked_entry> unacked_;

  /// Node-based: `consumer*` in rings stay valid until erased.
  std::unordered_map<consumer_id, consumer> consumers_;
  std::vector<consumer_id> registration_order_; ///< Front is SAC's active.
  std::vector<ring> rings_;                     ///< By priority, highest first.
  bool exclusive_ = false;

  counters stats_;
  std::vector<uint64_t>* removed_ = nullptr;
};

} // namespace flotilla
