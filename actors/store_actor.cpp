#include "actors/store_actor.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "store/crash_points.hpp"

namespace flotilla {

namespace {

/// Acks alone wait this long for their fsync (or ride along with the next
/// publish's): losing an ack in a crash only redelivers a message, as in
/// RabbitMQ, and a consumer's acks no longer cost an fsync each.
constexpr auto ack_sync_delay = std::chrono::milliseconds(20);

class collecting_visitor : public store::recovery_visitor {
public:
  explicit collecting_visitor(recovered_state& st) : st_(st) {}

  void on_meta(std::string_view key, std::string_view payload) override {
    st_.meta.emplace(std::string{key}, std::string{payload});
  }

  void on_message(uint32_t queue_id, uint64_t msg_id,
                  std::string_view payload) override {
    st_.messages[queue_id].emplace_back(msg_id, std::string{payload});
  }

private:
  recovered_state& st_;
};

struct store_state {
  static inline const char* name = "store";
  std::unique_ptr<store::journal> journal;
  std::vector<caf::response_promise> waiting;
  /// Every op appended since the last successful sync, in order: a failed
  /// sync discards the journal's batch, and these are appended again.
  std::vector<store_op> unsynced;
  store_failure_handler on_failure;
  bool failing = false; ///< The last sync failed.
  bool flush_scheduled = false;
  bool retry_scheduled = false;
  bool lazy_flush_scheduled = false; ///< For acks (ack_sync_delay).
  uint64_t syncs_since_compaction = 0;
};

using store_self = caf::stateful_actor<store_state>*;

/// Appends `op` to the journal (buffered until the next sync).
void append_op(store::journal& j, const store_op& op) {
  bool ok = true;
  switch (op.kind) {
    case store_op::publish:
      ok = j.append_publish(op.queue_id, op.msg_id, op.payload);
      break;
    case store_op::ack:
      j.append_ack(op.queue_id, op.msg_id);
      break;
    case store_op::drop_queue:
      j.append_drop_queue(op.queue_id);
      break;
    case store_op::meta_put:
      ok = j.append_meta_put(op.key, op.payload);
      break;
    case store_op::meta_del:
      ok = j.append_meta_del(op.key);
      break;
  }
  if (!ok)
    FLOTILLA_LOG(warning, "store: record refused (too large or duplicate)");
}

/// Appends `batch`; `urgent` if someone waits for the sync.
void append(store_self self, store_ops& batch, bool urgent) {
  auto& st = self->state;
  for (auto& op : batch.ops) {
    urgent = urgent || op.kind != store_op::ack;
    append_op(*st.journal, op);
    // Kept (moved, not copied) until a sync covers it.
    st.unsynced.push_back(std::move(op));
  }
  if (st.flush_scheduled || st.failing)
    return;
  if (!urgent) {
    if (!st.lazy_flush_scheduled) {
      st.lazy_flush_scheduled = true;
      self->delayed_send(self, ack_sync_delay, flush_atom::value, true);
    }
    return;
  }
  // The flush message queues behind every change already in the mailbox:
  // one fdatasync covers them all.
  st.flush_scheduled = true;
  self->send(self, flush_atom::value);
}

void flush(store_self self) {
  auto& st = self->state;
  st.flush_scheduled = false;
  st.retry_scheduled = false;
  std::string error;
  bool ok = st.journal->sync(error);
  if (!ok) {
    // The journal dropped the whole batch. Nothing is nacked: publishes
    // stay unconfirmed (their publishers are blocked by the alarm) and
    // every op is appended again and retried each second until the disk
    // takes it, so acks and metadata the broker already acted on are not
    // lost either.
    if (!st.failing) {
      FLOTILLA_LOG(error, "store: journal write failed, retrying every "
                          "second; confirms wait: "
                            << error);
      st.failing = true;
      if (st.on_failure)
        st.on_failure(true);
    }
    for (auto& op : st.unsynced)
      append_op(*st.journal, op);
    st.retry_scheduled = true;
    self->delayed_send(self, std::chrono::seconds(1), flush_atom::value);
    return;
  }
  if (st.failing) {
    FLOTILLA_LOG(warning, "store: journal writes work again");
    st.failing = false;
    if (st.on_failure)
      st.on_failure(false);
  }
  st.unsynced.clear();
  store::crash_point("store.after_sync_before_confirm");
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  for (auto& rp : waiting)
    rp.deliver(true);
  if (++st.syncs_since_compaction >= 64) {
    st.syncs_since_compaction = 0;
    auto stats = st.journal->stats();
    if (stats.dead_bytes > (uint64_t{64} << 20)
        && stats.dead_bytes > stats.live_bytes) {
      if (!st.journal->compact(error))
        FLOTILLA_LOG(warning, "store: compaction failed: " << error);
    }
  }
}

caf::behavior store_impl(store_self self,
                         std::shared_ptr<std::unique_ptr<store::journal>> j,
                         store_failure_handler on_failure) {
  self->state.journal = std::move(*j);
  self->state.on_failure = std::move(on_failure);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    // Make what was appended durable before the journal closes.
    flush(self);
    self->quit(msg.reason);
  });
  return {
    [=](persist_atom, store_ops& batch) {
      append(self, batch, false);
    },
    [=](persist_atom, store_ops& batch, bool) -> caf::result<bool> {
      append(self, batch, true);
      auto rp = self->make_response_promise();
      self->state.waiting.push_back(rp);
      return caf::delegated<bool>{};
    },
    [=](flush_atom) {
      // While failing, only the retry timer flushes (once a second).
      if (!self->state.failing || self->state.retry_scheduled)
        flush(self);
    },
    [=](flush_atom, bool) {
      // The delayed flush of acks; a sync since then may have covered them
      // (flushing an empty batch costs nothing).
      self->state.lazy_flush_scheduled = false;
      if (!self->state.failing && !self->state.flush_scheduled)
        flush(self);
    },
  };
}

} // namespace

std::unique_ptr<store::journal> open_journal(const store::journal_options& opts,
                                             recovered_state& state,
                                             store::recovery_report& report,
                                             std::string& error) {
  collecting_visitor visitor{state};
  return store::journal::open(opts, visitor, report, error);
}

caf::actor spawn_store(caf::actor_system& sys,
                       std::unique_ptr<store::journal> journal,
                       store_failure_handler on_failure) {
  // unique_ptr is not copyable: hand it over through a shared holder.
  auto holder
    = std::make_shared<std::unique_ptr<store::journal>>(std::move(journal));
  // Detached: sync() blocks in fdatasync, which must not stall the
  // scheduler threads that run queues and connections.
  return sys.spawn<caf::detached>(store_impl, holder, std::move(on_failure));
}

} // namespace flotilla
