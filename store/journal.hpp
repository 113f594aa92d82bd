#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/record.hpp"

namespace flotilla::store {

/// How to open a journal.
struct journal_options {
  /// Directory of the segment files; created if missing.
  std::string dir;

  /// A head segment at least this large is closed and a new one started
  /// before the next batch is written. 1 .. 1 GiB.
  uint64_t segment_bytes = uint64_t{64} << 20;

  /// true: sync() ends with fdatasync, segment creation and deletion with an
  /// fsync of the directory. false is the documented unsafe mode: a crash of
  /// the process loses nothing, a power loss may lose or damage anything
  /// written since the kernel last flushed (then open() may need repair).
  bool sync = true;

  /// false: damage that is not a torn tail makes open() fail.
  /// true: the damaged segment is copied to <dir>/quarantine/, cut back to
  /// the records before the damage, and the report lists what was lost.
  bool repair = false;

  /// compact() rewrites the oldest segments while their live bytes are at
  /// most this fraction of their record bytes.
  double compact_live_ratio = 0.5;

  /// compact() copies at most about this many live bytes per call, so one
  /// call stays short.
  uint64_t compact_max_copy_bytes = uint64_t{64} << 20;
};

/// A message, by the queue that holds it and its id.
struct message_ref {
  uint32_t queue_id = 0;
  uint64_t msg_id = 0;
  bool operator==(const message_ref& o) const {
    return queue_id == o.queue_id && msg_id == o.msg_id;
  }
  bool operator<(const message_ref& o) const {
    return queue_id != o.queue_id ? queue_id < o.queue_id : msg_id < o.msg_id;
  }
};

/// One segment that open(repair = true) cut back.
struct damaged_segment {
  std::string file;           ///< Path of the segment in the journal dir.
  uint64_t offset = 0;        ///< First damaged byte; the file now ends here.
  uint64_t dropped_bytes = 0; ///< Bytes from `offset` to the old end.
  std::string reason;         ///< What failed at `offset`.
  uint64_t kept_records = 0;  ///< Whole records before `offset`, kept.
  /// Records found intact after the damage (by scanning for valid
  /// checksums) and dropped with it; their effect is in the report's lists.
  uint64_t dropped_records = 0;
  /// Bytes after `offset` not covered by an intact record: what they held
  /// cannot be known.
  uint64_t unreadable_bytes = 0;
  std::string quarantined_as; ///< Copy of the original file.
  bool removed = false;       ///< Header unreadable: the file was deleted.
};

/// What open() found and did. Filled as far as open() got when it fails.
struct recovery_report {
  uint64_t segments = 0;      ///< Segment files read.
  uint64_t records = 0;       ///< Whole records replayed.
  uint64_t bytes = 0;         ///< Bytes read.
  uint64_t live_messages = 0; ///< Messages handed to on_message().
  uint64_t live_bytes = 0;    ///< Their payload bytes.
  uint64_t meta_entries = 0;  ///< Keys handed to on_meta().
  double seconds = 0;         ///< Wall time of open().

  /// Torn tail: the end of the last segment held an unfinished batch (a
  /// crash between write and the end of fdatasync) and was cut off.
  std::string truncated_file;    ///< Empty if nothing was cut.
  uint64_t truncated_offset = 0; ///< The file now ends here.
  uint64_t truncated_bytes = 0;  ///< Bytes cut.
  /// Intact records of that unfinished batch found after the tear and cut
  /// with it (possible after a power loss: pages persist in any order).
  uint64_t torn_records_dropped = 0;

  /// Leftover temporary files of an interrupted segment creation, deleted.
  std::vector<std::string> removed_files;

  /// Repair (only with journal_options::repair).
  std::vector<damaged_segment> damaged;
  /// Messages whose publish record was dropped by repair and that are not
  /// acked, dropped or published again (a compaction copy) in what was kept:
  /// they were live and are gone. Messages whose publish sat in unreadable
  /// bytes cannot be named; see damaged_segment::unreadable_bytes.
  std::vector<message_ref> lost_messages;
  /// Messages whose ack (or drop_queue) was dropped by repair and which are
  /// live again: they will be delivered again.
  std::vector<message_ref> resurrected_messages;
  /// Keys with a dropped meta_put or meta_del: their value may be an older
  /// one, or they may exist or be missing contrary to the lost record.
  std::vector<std::string> affected_meta_keys;

  /// Returns a one-paragraph human-readable summary.
  std::string to_string() const;
};

/// Receives the recovered state from open(). Called after the whole log has
/// been read, so an ack anywhere cancels the publish before it.
class recovery_visitor {
public:
  virtual ~recovery_visitor();

  /// Called once per live metadata key, in ascending (bytewise) key order,
  /// before any on_message().
  virtual void on_meta(std::string_view key, std::string_view payload) = 0;

  /// Called once per live message: queues in ascending queue_id order, a
  /// queue's messages in ascending msg_id order. `payload` is valid during
  /// the call only.
  virtual void on_message(uint32_t queue_id, uint64_t msg_id,
                          std::string_view payload)
    = 0;
};

/// Counters of an open journal.
struct journal_stats {
  uint64_t segments = 0;
  uint64_t disk_bytes = 0; ///< Sum of segment file sizes.
  uint64_t live_messages = 0;
  uint64_t live_bytes = 0; ///< Record bytes of live publishes and meta.
  uint64_t dead_bytes = 0; ///< Other record bytes: compaction reclaims.
  uint64_t meta_entries = 0;
  uint64_t buffered_records = 0; ///< Appended, not yet synced.
  uint64_t buffered_bytes = 0;
  uint64_t syncs = 0; ///< Successful sync() calls that wrote.
  uint64_t failed_syncs = 0;
  uint64_t compactions = 0;        ///< compact() calls that deleted something.
  uint64_t compacted_segments = 0; ///< Segments deleted by compaction.
  uint64_t compacted_copy_bytes = 0; ///< Live bytes copied forward.
};

/// The durable journal of one node: metadata (exchanges, queues, bindings,
/// links) and the persistent messages of durable queues, as an append-only
/// log of segment files. docs/store-format.md describes the format, the
/// recovery rules and the compaction invariants.
///
/// Owned by the store actor, which appends the records of all queues and
/// calls sync() once per batch (group commit); a publisher confirm may be
/// sent once the sync() covering its publish returned true.
///
/// Threading: not thread-safe. Every call, including the const ones, must
/// come from the owning actor (one thread at a time).
///
/// Files: one descriptor per segment stays open (for read_payload()), plus
/// the directory and its LOCK file; a second open() of the same directory
/// fails while this one lives.
class journal {
public:
  /// Opens (or creates) the journal in opts.dir and replays it into
  /// `visitor`. Returns nullptr and sets `error` on failure: an I/O error, a
  /// damaged segment (without opts.repair), an unsupported format version,
  /// or the directory being locked by another journal. `report` says what
  /// was read, cut and lost either way.
  static std::unique_ptr<journal> open(const journal_options& opts,
                                       recovery_visitor& visitor,
                                       recovery_report& report,
                                       std::string& error);

  ~journal();

  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  // -- appending: buffered in memory, durable after sync() --------------------

  /// Sets `key` to `payload`, replacing an earlier value. Returns false (and
  /// appends nothing) if key.size() > max_key_size or payload.size() >
  /// max_payload_size.
  [[nodiscard]] bool append_meta_put(std::string_view key,
                                     std::string_view payload);

  /// Removes `key`. Returns false if key.size() > max_key_size.
  [[nodiscard]] bool append_meta_del(std::string_view key);

  /// Enqueues message `msg_id` on queue `queue_id`. Returns false (and
  /// appends nothing) if payload.size() > max_payload_size or the message is
  /// live already. A message routed to three durable queues is three
  /// publishes (same msg_id allowed). Recovery returns a queue's messages in
  /// msg_id order: give a queue its ids in enqueue order (take them from
  /// next_msg_id() when appending).
  [[nodiscard]] bool append_publish(uint32_t queue_id, uint64_t msg_id,
                                    std::string_view payload);

  /// The message left the queue for good (acked, expired, dropped, purged).
  /// An ack of a message that is not live is written and ignored.
  void append_ack(uint32_t queue_id, uint64_t msg_id);

  /// Every message of the queue published before this left it (queue
  /// deleted or purged): one record instead of one ack per message. Later
  /// publishes to the same queue_id are unaffected.
  void append_drop_queue(uint32_t queue_id);

  /// Returns the number of appended, not yet synced records.
  size_t buffered_records() const {
    return buffered_records_;
  }

  // -- group commit -----------------------------------------------------------

  /// Writes all buffered records with one write (rolling to a new segment
  /// first if the head is full), then fdatasync (if opts.sync). Returns true
  /// once they are durable; nothing buffered is a no-op returning true.
  ///
  /// Returns false and sets `error` on an I/O error (ENOSPC, EIO): then the
  /// whole batch is discarded as if never appended. The caller nacks its
  /// publishes and appends again the acks and metadata it still wants. A
  /// partial write is cut back; a later sync() (after space was freed) works.
  /// After a failed fdatasync the file is cut back and synced again; if even
  /// that fails the journal refuses further syncs and must be reopened.
  bool sync(std::string& error);

  /// Returns a fresh message id: unique and increasing, also across restarts
  /// (above every id on disk). Ids handed out but never synced may be handed
  /// out again after a restart.
  uint64_t next_msg_id() {
    return next_msg_id_++;
  }

  // -- compaction -------------------------------------------------------------

  /// Reclaims dead space: picks the longest run of oldest segments (never
  /// the head) whose live bytes are at most compact_live_ratio of their
  /// record bytes (and at most compact_max_copy_bytes), copies their live
  /// publishes and metadata into the head as one synced batch, then deletes
  /// them oldest first. Returns true if that succeeded or nothing was worth
  /// doing. Fails (false, `error`) if records are buffered (sync() first) or
  /// on an I/O error; then nothing was deleted or the deletion stopped after
  /// an oldest-first prefix, both safe. Crash-safe at every step: see
  /// docs/store-format.md, "Compaction".
  bool compact(std::string& error);

  // -- reading ----------------------------------------------------------------

  /// Reads the payload of a live message from disk into `out` (paging).
  /// Returns false if the message is not live (`error` untouched) or the
  /// read failed (I/O error or checksum mismatch: `error` set if non-null).
  bool read_payload(uint32_t queue_id, uint64_t msg_id, std::string& out,
                    std::string* error = nullptr) const;

  /// Returns true if the message was published, synced and not acked.
  bool is_live(uint32_t queue_id, uint64_t msg_id) const;

  /// Returns the current counters.
  journal_stats stats() const;

  /// Returns the directory.
  const std::string& dir() const {
    return opts_.dir;
  }

  // -- test hooks -------------------------------------------------------------

  /// Makes the next segment write store only `partial_bytes` bytes and fail
  /// with errno `err` (e.g. ENOSPC); with `fail_truncate` the cut-back fails
  /// too, as if the disk were gone.
  void fail_next_write_for_test(int err, size_t partial_bytes = 0,
                                bool fail_truncate = false);

  /// Makes the next fdatasync of a batch fail with errno `err`.
  void fail_next_fdatasync_for_test(int err);

private:
  // Segment id of a tombstone in a queue index.
  static constexpr uint32_t dead_seg = 0xFFFFFFFFu;

  // Where a live message's publish record is. 20 bytes: 10 million live
  // messages take about 200 MB of index.
#pragma pack(push, 4)
  struct msg_entry {
    uint64_t msg_id;
    uint32_t seg; // segment id, dead_seg for a tombstone
    uint32_t off; // byte offset of the record in the segment
    uint32_t len; // record size, header included
  };
#pragma pack(pop)

  // One queue's live messages, sorted by msg_id. Acks leave tombstones that
  // are popped at the ends and swept once they outnumber the live entries.
  struct queue_index {
    std::deque<msg_entry> entries;
    uint64_t live = 0;
    uint64_t dead = 0;
  };

  struct meta_loc {
    uint32_t seg;
    uint32_t off;
    uint32_t len;
  };

  struct segment {
    uint32_t id = 0;
    uint64_t first_seq = 0;
    uint64_t records = 0;    // records in the file (after the header)
    uint64_t size = 0;       // file size, header included
    uint64_t live_bytes = 0; // record bytes of live publishes and meta
    uint64_t live_records = 0;
    int fd = -1;
    std::string path;
  };

  struct recovery;
  struct test_hooks;
  class payload_reader;

  explicit journal(const journal_options& opts);

  bool write_batch(std::string& error, const char* after_write,
                   const char* after_sync);
  bool roll(std::string& error);
  bool create_segment(uint64_t first_seq, std::string& error);
  void apply_buffer(uint32_t seg_id, uint64_t base_offset);
  void apply(const record& r, uint32_t seg, uint64_t off);
  void add_message(uint32_t q, uint64_t m, uint32_t seg, uint32_t off,
                   uint32_t len);
  bool remove_message(uint32_t q, uint64_t m);
  void drop_queue(uint32_t q);
  void account(uint32_t seg, uint32_t len, bool add);
  void discard_buffer();
  void mark_batch_flags();
  segment& seg_by_id(uint32_t id);
  const segment& seg_by_id(uint32_t id) const;
  const msg_entry* find_entry(uint32_t q, uint64_t m) const;
  bool sync_dir(std::string& error);
  std::string segment_path(uint64_t first_seq) const;
  bool do_write(int fd, const char* p, size_t n, uint64_t off, int& err);
  bool do_truncate(int fd, uint64_t size);

  journal_options opts_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;
  uint32_t salt_ = 0;
  uint32_t seed_ = 0;

  // Segments, oldest first; back() is the head that batches are written to.
  // Ids are consecutive: compaction deletes only from the front.
  std::deque<segment> segs_;
  uint32_t next_seg_id_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t next_msg_id_ = 1;

  // Appended, unsynced records, encoded; applied to the index after sync.
  std::string buf_;
  size_t buffered_records_ = 0;
  size_t last_record_off_ = 0;

  // Index of live data: messages per queue, metadata by key.
  std::unordered_map<uint32_t, queue_index> queues_;
  std::map<std::string, meta_loc, std::less<>> meta_;
  uint64_t live_messages_ = 0;

  bool dirty_tail_ = false;       // A failed write could not be cut back.
  bool dir_sync_pending_ = false; // A new segment's dir entry not synced.
  bool broken_ = false;           // A failed fdatasync could not be repaired.
  std::string broken_error_;

  journal_stats counters_;
  std::unique_ptr<test_hooks> hooks_;
};

} // namespace flotilla::store
