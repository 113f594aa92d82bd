// The channel-level AMQP methods of a connection actor: exchange, queue,
// basic, confirm and tx classes. See connection_state.hpp.

#include <algorithm>
#include <chrono>
#include <random>

#include "actors/atoms.hpp"
#include "actors/connection_state.hpp"
#include "actors/log.hpp"
#include "actors/queue_arguments.hpp"
#include "protocol/properties.hpp"

namespace flotilla {

namespace pr = protocol;

/// Bodies from this size on are written from the shared message (one iovec
/// per frame) instead of being copied into the output buffer.
constexpr size_t by_reference_body_size = 16 * 1024;

namespace {

millis now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

std::string random_tag(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string result = prefix;
  for (int i = 0; i < 22; ++i)
    result += alphabet[rng() % 64];
  return result;
}

template<class M>
void reply(connection_state& st, uint16_t ch, const M& m) {
  pr::append_method_frame(st.out, ch, m);
}

void add_queue(channel_state& c, const caf::actor& q) {
  if (std::find(c.queues.begin(), c.queues.end(), q) == c.queues.end())
    c.queues.push_back(q);
}

} // namespace

// -- input -------------------------------------------------------------------

void connection_state::on_channel_command(uint16_t ch, pr::command& cmd) {
  auto& c = channels[ch];
  if (c.busy) {
    c.backlog.push_back(std::move(cmd));
    return;
  }
  run_command(ch, cmd);
}

void connection_state::resume(uint16_t ch, uint32_t epoch) {
  auto i = channels.find(ch);
  if (i == channels.end() || i->second.epoch != epoch)
    return;
  i->second.busy = false;
  while (ph == phase::running) {
    auto j = channels.find(ch);
    if (j == channels.end() || j->second.epoch != epoch || j->second.busy
        || j->second.closing || j->second.backlog.empty())
      break;
    auto cmd = std::move(j->second.backlog.front());
    j->second.backlog.pop_front();
    run_command(ch, cmd);
  }
  flush_publishes();
  flush_settles();
  flush();
}

// -- publishing --------------------------------------------------------------

namespace {

/// Routes one message and queues it for its queues; writes basic.return for
/// an unroutable mandatory message. Returns the number of queues.
size_t route_publish(connection_state& st, uint16_t ch, message_ptr msg,
                     bool mandatory, uint64_t seq) {
  st.route_buf.clear();
  auto* headers = msg->properties.headers ? &*msg->properties.headers : nullptr;
  st.vhost->table->route(msg->exchange, msg->routing_key, headers,
                         st.route_buf);
  if (st.route_buf.empty()) {
    if (mandatory) {
      pr::basic_return ret;
      ret.reply_code = reply_code(errc::no_route);
      ret.reply_text = "NO_ROUTE";
      ret.exchange = msg->exchange;
      ret.routing_key = msg->routing_key;
      pr::append_method_frame(st.out, ch, ret);
      st.write_content(ch, msg);
    }
    return 0;
  }
  for (auto& q : st.route_buf) {
    pending_enqueue* p = nullptr;
    for (auto& x : st.pending)
      if (x.queue == q) {
        p = &x;
        break;
      }
    if (p == nullptr) {
      st.pending.emplace_back();
      p = &st.pending.back();
      p->queue = q;
    }
    p->batch.messages.push_back(msg);
    p->confirms.emplace_back(ch, seq);
    p->any_confirm = p->any_confirm || seq != 0;
  }
  return st.route_buf.size();
}

void on_publish(connection_state& st, uint16_t ch, pr::command& cmd,
                pr::basic_publish& m) {
  auto& c = st.channels[ch];
  if (m.immediate) {
    st.connection_error(errc::not_implemented,
                        "NOT_IMPLEMENTED - immediate=true", 60, 40);
    return;
  }
  if (!m.exchange.empty()) {
    auto x = st.vhost->table->find_exchange(m.exchange);
    if (!x) {
      st.channel_error(ch, errc::not_found,
                       "NOT_FOUND - no exchange '" + m.exchange + "' in vhost '"
                         + st.vhost->name + "'",
                       60, 40);
      return;
    }
    if (x->internal) {
      st.channel_error(ch, errc::access_refused,
                       "ACCESS_REFUSED - cannot publish to internal exchange '"
                         + m.exchange + "' in vhost '" + st.vhost->name + "'",
                       60, 40);
      return;
    }
  }
  auto msg = std::make_shared<message>();
  msg->exchange = std::move(m.exchange);
  msg->routing_key = std::move(m.routing_key);
  if (cmd.header)
    msg->properties = std::move(cmd.header->properties);
  msg->raw_header = std::move(cmd.raw_header);
  msg->body = std::move(cmd.body);
  msg->published_at = now_ms();
  // A validated user id, as in RabbitMQ: the management agent trusts it.
  if (msg->properties.user_id && *msg->properties.user_id != st.user) {
    st.channel_error(ch, errc::precondition_failed,
                     "PRECONDITION_FAILED - user_id property set to '"
                       + *msg->properties.user_id
                       + "' but authenticated user was '" + st.user + "'",
                     60, 40);
    return;
  }
  ++st.published_count;
  st.published_bytes += msg->body.size();
  if (msg->properties.expiration) {
    if (!parse_expiration(msg->properties.expiration)) {
      st.channel_error(ch, errc::precondition_failed,
                       "PRECONDITION_FAILED - invalid expiration '"
                         + *msg->properties.expiration + "'",
                       60, 40);
      return;
    }
  }
  if (c.tx) {
    c.tx_publishes.emplace_back(std::move(msg), m.mandatory);
    return;
  }
  uint64_t seq = c.confirm ? c.next_seq++ : 0;
  auto n = route_publish(st, ch, std::move(msg), m.mandatory, seq);
  if (seq != 0) {
    c.confirms.emplace(seq, pending_confirm{static_cast<uint32_t>(n), false});
    if (n == 0)
      st.emit_confirms(ch);
  }
}

} // namespace

void connection_state::flush_publishes() {
  if (pending.empty())
    return;
  auto batches = std::move(pending);
  pending.clear();
  for (auto& p : batches) {
    if (!p.any_confirm) {
      self->send(p.queue, enqueue_atom::value, std::move(p.batch));
      continue;
    }
    auto refs = std::move(p.confirms);
    auto on_reply = [this, refs](const std::vector<uint8_t>* rejected) {
      std::vector<uint16_t> touched;
      for (size_t i = 0; i < refs.size(); ++i) {
        auto [ch, seq] = refs[i];
        if (seq == 0)
          continue;
        auto c = channels.find(ch);
        if (c == channels.end())
          continue;
        auto pc = c->second.confirms.find(seq);
        if (pc == c->second.confirms.end())
          continue;
        if (pc->second.outstanding > 0)
          --pc->second.outstanding;
        if (rejected != nullptr && i < rejected->size() && (*rejected)[i])
          pc->second.nack = true;
        if (std::find(touched.begin(), touched.end(), ch) == touched.end())
          touched.push_back(ch);
      }
      for (auto ch : touched)
        emit_confirms(ch);
      flush();
    };
    self
      ->request(p.queue, caf::infinite, enqueue_atom::value, std::move(p.batch),
                true)
      .then(
        [on_reply](enqueue_reply& r) {
          on_reply(&r.rejected);
        },
        // A queue deleted meanwhile: the message went with it.
        [on_reply](caf::error&) {
          on_reply(nullptr);
        });
  }
}

void connection_state::emit_confirms(uint16_t ch) {
  auto i = channels.find(ch);
  if (i == channels.end())
    return;
  auto& confirms = i->second.confirms;
  // Confirm the completed prefix, one frame per run of equal outcome, using
  // multiple=true so a burst costs one frame.
  while (!confirms.empty() && confirms.begin()->second.outstanding == 0) {
    auto first = confirms.begin();
    bool nack = first->second.nack;
    auto last = first;
    auto j = std::next(first);
    while (j != confirms.end() && j->second.outstanding == 0
           && j->second.nack == nack && j->first == std::prev(j)->first + 1) {
      last = j;
      ++j;
    }
    bool multiple = last != first;
    if (nack)
      reply(*this, ch, pr::basic_nack{last->first, multiple, false});
    else
      reply(*this, ch, pr::basic_ack{last->first, multiple});
    confirms.erase(first, j);
  }
}

// -- deliveries --------------------------------------------------------------

void connection_state::write_content(uint16_t ch, const message_ptr& msg) {
  if (!msg->raw_header.empty())
    pr::append_raw_header_frame(out, ch, msg->raw_header);
  else
    pr::append_header_frame(out, ch, msg->body.size(), msg->properties);
  if (msg->body.size() < by_reference_body_size) {
    pr::append_body_frames(out, ch, msg->body, frame_max);
    return;
  }
  // Large bodies are written from the shared message, not copied.
  pr::append_body_frame_envelopes(
    out, ch, msg->body, frame_max, [&](size_t at, std::string_view piece) {
      out_slices.push_back(
        outbound::slice{at, piece.data(), piece.size(), msg});
    });
}

void connection_state::emit_delivery(uint16_t ch, const caf::actor& queue,
                                     const std::string& tag, bool no_ack,
                                     delivery_item& item) {
  auto& c = channels[ch];
  ++delivered_count;
  delivered_bytes += item.msg->body.size();
  auto dtag = c.next_tag++;
  if (!no_ack) {
    c.unacked.emplace(dtag, unacked_ref{queue, item.id, true});
    ++c.consumer_unacked;
  }
  pr::basic_deliver d;
  d.consumer_tag = tag;
  d.delivery_tag = dtag;
  d.redelivered = item.redelivered;
  d.exchange = item.msg->exchange;
  d.routing_key = item.msg->routing_key;
  pr::append_method_frame(out, ch, d);
  write_content(ch, item.msg);
}

void connection_state::on_deliveries(delivery_batch& batch) {
  for (auto& item : batch.items) {
    auto ch = static_cast<uint16_t>(item.owner & 0xFFFF);
    auto ci = channels.find(ch);
    if ((item.owner >> 16) != id || ci == channels.end() || ci->second.closing)
      continue; // The queue requeues it when it sees our channel close.
    auto k = consumers.find(item.consumer_key);
    if (k == consumers.end()) {
      // Cancelled meanwhile: give it back untouched.
      settle_later(batch.queue, item.owner, settle_kind::release, item.id);
      continue;
    }
    auto& cons = k->second;
    if (!cons.announced) {
      cons.announced = true;
      if (!cons.no_wait)
        reply(*this, ch, pr::basic_consume_ok{cons.tag});
    }
    auto& c = ci->second;
    bool over_global = c.prefetch_global != 0 && !cons.no_ack
                       && c.consumer_unacked >= c.prefetch_global;
    if (!c.flow || over_global || !c.held.empty()) {
      c.held.push_back(held_delivery{batch.queue, std::move(item)});
      continue;
    }
    emit_delivery(ch, batch.queue, cons.tag, cons.no_ack, item);
  }
}

void connection_state::release_held(uint16_t ch) {
  auto ci = channels.find(ch);
  if (ci == channels.end())
    return;
  auto& c = ci->second;
  while (!c.held.empty() && c.flow) {
    auto& h = c.held.front();
    auto k = consumers.find(h.item.consumer_key);
    if (k == consumers.end()) {
      settle_later(h.queue, h.item.owner, settle_kind::release, h.item.id);
      c.held.pop_front();
      continue;
    }
    if (c.prefetch_global != 0 && !k->second.no_ack
        && c.consumer_unacked >= c.prefetch_global)
      break;
    auto held = std::move(h);
    c.held.pop_front();
    emit_delivery(ch, held.queue, k->second.tag, k->second.no_ack, held.item);
  }
}

void connection_state::on_cancelled(uint64_t key) {
  auto k = consumers.find(key);
  if (k == consumers.end())
    return;
  auto ch = k->second.channel;
  auto tag = k->second.tag;
  consumers.erase(k);
  auto ci = channels.find(ch);
  if (ci == channels.end() || ci->second.closing)
    return;
  ci->second.consumers.erase(tag);
  if (cap_cancel_notify)
    reply(*this, ch, pr::basic_cancel{tag, true});
}

void connection_state::settle_later(const caf::actor& queue, uint64_t owner,
                                    settle_kind kind, uint64_t msg_id) {
  for (auto& p : pending_settles)
    if (p.queue == queue && p.owner == owner && p.kind == kind) {
      p.ids.push_back(msg_id);
      return;
    }
  pending_settles.push_back(pending_settle{queue, owner, kind, {msg_id}});
}

void connection_state::flush_settles() {
  for (auto& p : pending_settles) {
    switch (p.kind) {
      case settle_kind::ack:
        self->send(p.queue, ack_atom::value, p.owner, std::move(p.ids));
        break;
      case settle_kind::requeue:
        self->send(p.queue, reject_atom::value, p.owner, std::move(p.ids),
                   true);
        break;
      case settle_kind::drop:
        self->send(p.queue, reject_atom::value, p.owner, std::move(p.ids),
                   false);
        break;
      case settle_kind::release:
        self->send(p.queue, release_atom::value, p.owner, std::move(p.ids));
        break;
    }
  }
  pending_settles.clear();
}

// -- commands ----------------------------------------------------------------

namespace {

/// Marks the channel busy and returns a continuation guard: the reply
/// handler checks `alive()` before touching the channel.
struct async_guard {
  connection_state* st;
  uint16_t ch;
  uint32_t epoch;
  bool alive() const {
    auto i = st->channels.find(ch);
    return st->ph == phase::running && i != st->channels.end()
           && i->second.epoch == epoch && !i->second.closing;
  }
  void done() const {
    st->resume(ch, epoch);
  }
};

async_guard go_async(connection_state& st, uint16_t ch) {
  auto& c = st.channels[ch];
  c.busy = true;
  return async_guard{&st, ch, c.epoch};
}

template<class Request, class OnOk>
void ask_vhost(connection_state& st, uint16_t ch, Request req,
               uint16_t class_id, uint16_t method_id, OnOk on_ok) {
  auto g = go_async(st, ch);
  st.flush_publishes();
  st.self->request(st.vhost->actor, caf::infinite, std::move(req))
    .then(
      [g, class_id, method_id, on_ok](op_result& r) mutable {
        if (g.alive()) {
          if (r.ok())
            on_ok(r, g);
          else
            g.st->channel_error(g.ch, r.code, r.text, class_id, method_id);
        }
        if (g.alive())
          g.done();
        g.st->flush();
      },
      [g, class_id, method_id](caf::error& e) {
        if (g.alive())
          g.st->channel_error(g.ch, errc::internal_error,
                              "INTERNAL_ERROR - "
                                + g.st->self->system().render(e),
                              class_id, method_id);
        g.st->flush();
      });
}

/// Looks up a queue for consume/get, checking exclusivity.
queue_entry_ptr usable_queue(connection_state& st, uint16_t ch,
                             const std::string& name, uint16_t cls,
                             uint16_t mth) {
  auto q = st.vhost->table->find_queue(name);
  if (!q) {
    st.channel_error(ch, errc::not_found,
                     "NOT_FOUND - no queue '" + name + "' in vhost '"
                       + st.vhost->name + "'",
                     cls, mth);
    return nullptr;
  }
  if (q->exclusive && q->owner_connection != st.id) {
    st.channel_error(ch, errc::resource_locked,
                     "RESOURCE_LOCKED - cannot obtain exclusive access to "
                     "locked queue '"
                       + name + "' in vhost '" + st.vhost->name + "'",
                     cls, mth);
    return nullptr;
  }
  return q;
}

/// Collects the unacked deliveries named by (tag, multiple); returns false
/// (after a channel error) for an unknown tag.
bool take_unacked(connection_state& st, uint16_t ch, uint64_t tag,
                  bool multiple, uint16_t mth,
                  std::vector<std::pair<uint64_t, unacked_ref>>& out) {
  auto& c = st.channels[ch];
  if (multiple) {
    auto end = tag == 0 ? c.unacked.end() : c.unacked.upper_bound(tag);
    for (auto i = c.unacked.begin(); i != end; ++i)
      out.emplace_back(i->first, std::move(i->second));
    c.unacked.erase(c.unacked.begin(), end);
    if (tag != 0 && out.empty() && c.next_tag <= tag) {
      st.channel_error(ch, errc::precondition_failed,
                       "PRECONDITION_FAILED - unknown delivery tag "
                         + std::to_string(tag),
                       60, mth);
      return false;
    }
  } else {
    auto i = c.unacked.find(tag);
    if (i == c.unacked.end()) {
      st.channel_error(ch, errc::precondition_failed,
                       "PRECONDITION_FAILED - unknown delivery tag "
                         + std::to_string(tag),
                       60, mth);
      return false;
    }
    out.emplace_back(i->first, std::move(i->second));
    c.unacked.erase(i);
  }
  for (auto& kv : out)
    if (kv.second.from_consumer && c.consumer_unacked > 0)
      --c.consumer_unacked;
  return true;
}

/// Queues the settlements of `items` (sent grouped per queue at the end of
/// the current input batch).
void settle_all(connection_state& st, uint16_t ch,
                std::vector<std::pair<uint64_t, unacked_ref>>& items, bool ack,
                bool requeue) {
  auto kind = ack ? settle_kind::ack
                  : (requeue ? settle_kind::requeue : settle_kind::drop);
  auto owner = st.owner_of(ch);
  for (auto& kv : items)
    st.settle_later(kv.second.queue, owner, kind, kv.second.id);
}

void on_settle(connection_state& st, uint16_t ch, uint64_t tag, bool multiple,
               bool ack, bool requeue, uint16_t mth) {
  std::vector<std::pair<uint64_t, unacked_ref>> items;
  if (!take_unacked(st, ch, tag, multiple, mth, items))
    return;
  auto& c = st.channels[ch];
  if (c.tx) {
    for (auto& kv : items)
      c.tx_settles.push_back(tx_settle{kv.first, kv.second, ack, requeue});
    return;
  }
  settle_all(st, ch, items, ack, requeue);
  st.release_held(ch);
}

void on_consume(connection_state& st, uint16_t ch, pr::basic_consume& m) {
  auto q = usable_queue(st, ch, m.queue, 60, 20);
  if (!q)
    return;
  auto& c = st.channels[ch];
  if (m.consumer_tag.empty())
    m.consumer_tag = random_tag("amq.ctag-");
  if (c.consumers.count(m.consumer_tag) > 0) {
    st.connection_error(errc::not_allowed,
                        "NOT_ALLOWED - attempt to reuse consumer tag '"
                          + m.consumer_tag + "'",
                        60, 20);
    return;
  }
  int32_t priority = 0;
  if (auto* p = m.arguments.find("x-priority"))
    if (auto v = p->as_int())
      priority = static_cast<int32_t>(*v);
  auto key = st.next_consumer_key++;
  st.consumers.emplace(key, consumer_ref{ch, m.consumer_tag, q->actor, m.no_ack,
                                         false, m.no_wait});
  c.consumers.emplace(m.consumer_tag, key);
  add_queue(c, q->actor);
  consumer_spec spec;
  spec.key = key;
  spec.owner = st.owner_of(ch);
  spec.connection = caf::actor_cast<caf::actor>(st.self);
  spec.prefetch = c.prefetch_consumer;
  spec.no_ack = m.no_ack;
  spec.exclusive = m.exclusive;
  spec.priority = priority;
  auto g = go_async(st, ch);
  st.flush_publishes();
  st.self->request(q->actor, caf::infinite, consume_atom::value, spec)
    .then(
      [g, key](op_result& r) {
        auto& st = *g.st;
        auto k = st.consumers.find(key);
        if (g.alive() && k != st.consumers.end()) {
          if (r.ok()) {
            if (!k->second.announced) {
              k->second.announced = true;
              if (!k->second.no_wait)
                reply(st, g.ch, pr::basic_consume_ok{k->second.tag});
            }
          } else {
            st.channels[g.ch].consumers.erase(k->second.tag);
            st.consumers.erase(k);
            st.channel_error(g.ch, r.code, r.text, 60, 20);
          }
        }
        if (g.alive())
          g.done();
        st.flush();
      },
      [g](caf::error&) {
        if (g.alive())
          g.st->channel_error(g.ch, errc::not_found,
                              "NOT_FOUND - queue deleted", 60, 20);
        g.st->flush();
      });
}

void on_cancel(connection_state& st, uint16_t ch, pr::basic_cancel& m) {
  auto& c = st.channels[ch];
  auto i = c.consumers.find(m.consumer_tag);
  if (i == c.consumers.end()) {
    if (!m.no_wait)
      reply(st, ch, pr::basic_cancel_ok{m.consumer_tag});
    return;
  }
  auto key = i->second;
  c.consumers.erase(i);
  auto k = st.consumers.find(key);
  caf::actor q = k != st.consumers.end() ? k->second.queue : caf::actor{};
  if (k != st.consumers.end())
    st.consumers.erase(k);
  if (!q) {
    if (!m.no_wait)
      reply(st, ch, pr::basic_cancel_ok{m.consumer_tag});
    return;
  }
  auto g = go_async(st, ch);
  auto tag = m.consumer_tag;
  bool no_wait = m.no_wait;
  st.self->request(q, caf::infinite, cancel_atom::value, st.owner_of(ch), key)
    .then(
      [g, tag, no_wait](op_result&) {
        if (g.alive()) {
          if (!no_wait)
            reply(*g.st, g.ch, pr::basic_cancel_ok{tag});
          g.done();
        }
        g.st->flush();
      },
      [g, tag, no_wait](caf::error&) {
        if (g.alive()) {
          if (!no_wait)
            reply(*g.st, g.ch, pr::basic_cancel_ok{tag});
          g.done();
        }
        g.st->flush();
      });
}

void on_get(connection_state& st, uint16_t ch, pr::basic_get& m) {
  auto q = usable_queue(st, ch, m.queue, 60, 70);
  if (!q)
    return;
  auto& c = st.channels[ch];
  add_queue(c, q->actor);
  auto g = go_async(st, ch);
  st.flush_publishes();
  auto queue = q->actor;
  bool no_ack = m.no_ack;
  st.self
    ->request(queue, caf::infinite, fetch_atom::value, st.owner_of(ch), no_ack)
    .then(
      [g, queue, no_ack](get_reply& r) {
        auto& st = *g.st;
        if (!g.alive()) {
          if (r.found && !no_ack)
            st.self->send(queue, release_atom::value, r.item.owner,
                          std::vector<uint64_t>{r.item.id});
          return;
        }
        if (!r.found) {
          reply(st, g.ch, pr::basic_get_empty{});
        } else {
          auto& c = st.channels[g.ch];
          auto tag = c.next_tag++;
          if (!no_ack)
            c.unacked.emplace(tag, unacked_ref{queue, r.item.id, false});
          pr::basic_get_ok ok;
          ok.delivery_tag = tag;
          ok.redelivered = r.item.redelivered;
          ok.exchange = r.item.msg->exchange;
          ok.routing_key = r.item.msg->routing_key;
          ok.message_count = r.message_count;
          ++st.delivered_count;
          st.delivered_bytes += r.item.msg->body.size();
          pr::append_method_frame(st.out, g.ch, ok);
          st.write_content(g.ch, r.item.msg);
        }
        g.done();
        st.flush();
      },
      [g](caf::error&) {
        if (g.alive()) {
          reply(*g.st, g.ch, pr::basic_get_empty{});
          g.done();
        }
        g.st->flush();
      });
}

void on_commit(connection_state& st, uint16_t ch) {
  auto& c = st.channels[ch];
  if (!c.tx) {
    st.channel_error(ch, errc::precondition_failed,
                     "PRECONDITION_FAILED - channel is not transactional", 90,
                     20);
    return;
  }
  // Settlements first, then publishes, as RabbitMQ applies them.
  std::vector<std::pair<uint64_t, unacked_ref>> acks;
  std::vector<std::pair<uint64_t, unacked_ref>> requeues;
  std::vector<std::pair<uint64_t, unacked_ref>> drops;
  for (auto& s : c.tx_settles)
    (s.ack ? acks : (s.requeue ? requeues : drops))
      .emplace_back(s.tag, std::move(s.ref));
  c.tx_settles.clear();
  settle_all(st, ch, acks, true, false);
  settle_all(st, ch, requeues, false, true);
  settle_all(st, ch, drops, false, false);
  auto publishes = std::move(c.tx_publishes);
  c.tx_publishes.clear();
  st.flush_publishes();
  for (auto& [msg, mandatory] : publishes)
    route_publish(st, ch, std::move(msg), mandatory, 0);
  if (st.pending.empty()) {
    reply(st, ch, pr::tx_commit_ok{});
    st.release_held(ch);
    return;
  }
  // commit-ok only once every queue has the messages.
  auto g = go_async(st, ch);
  auto batches = std::move(st.pending);
  st.pending.clear();
  auto remaining = std::make_shared<size_t>(batches.size());
  for (auto& p : batches) {
    auto on_done = [g, remaining] {
      if (--*remaining == 0 && g.alive()) {
        reply(*g.st, g.ch, pr::tx_commit_ok{});
        g.st->release_held(g.ch);
        g.done();
        g.st->flush();
      }
    };
    st.self
      ->request(p.queue, caf::infinite, enqueue_atom::value, std::move(p.batch),
                true)
      .then(
        [on_done](enqueue_reply&) {
          on_done();
        },
        [on_done](caf::error&) {
          on_done();
        });
  }
}

void on_rollback(connection_state& st, uint16_t ch) {
  auto& c = st.channels[ch];
  if (!c.tx) {
    st.channel_error(ch, errc::precondition_failed,
                     "PRECONDITION_FAILED - channel is not transactional", 90,
                     30);
    return;
  }
  c.tx_publishes.clear();
  // Rolled-back settlements leave the deliveries unacked, as before.
  for (auto& s : c.tx_settles) {
    if (s.ref.from_consumer)
      ++c.consumer_unacked;
    c.unacked.emplace(s.tag, std::move(s.ref));
  }
  c.tx_settles.clear();
  reply(st, ch, pr::tx_rollback_ok{});
}

void on_recover(connection_state& st, uint16_t ch, bool requeue, bool send_ok) {
  if (!requeue) {
    st.connection_error(errc::not_implemented,
                        "NOT_IMPLEMENTED - requeue=false", 60, 110);
    return;
  }
  auto& c = st.channels[ch];
  std::vector<std::pair<uint64_t, unacked_ref>> items(c.unacked.begin(),
                                                      c.unacked.end());
  c.unacked.clear();
  c.consumer_unacked = 0;
  settle_all(st, ch, items, false, true);
  if (send_ok)
    reply(st, ch, pr::basic_recover_ok{});
}

} // namespace

void connection_state::run_command(uint16_t ch, pr::command& cmd) {
  auto& c = channels[ch];
  auto cls = pr::class_id_of(cmd.m);
  auto mth = pr::method_id_of(cmd.m);
  std::visit(
    [&](auto& m) {
      using M = std::decay_t<decltype(m)>;
      if constexpr (std::is_same_v<M, pr::basic_publish>) {
        on_publish(*this, ch, cmd, m);
      } else if constexpr (std::is_same_v<M, pr::basic_ack>) {
        on_settle(*this, ch, m.delivery_tag, m.multiple, true, false, 80);
      } else if constexpr (std::is_same_v<M, pr::basic_nack>) {
        on_settle(*this, ch, m.delivery_tag, m.multiple, false, m.requeue, 120);
      } else if constexpr (std::is_same_v<M, pr::basic_reject>) {
        on_settle(*this, ch, m.delivery_tag, false, false, m.requeue, 90);
      } else if constexpr (std::is_same_v<M, pr::basic_qos>) {
        if (m.prefetch_size != 0) {
          connection_error(errc::not_implemented,
                           "NOT_IMPLEMENTED - prefetch_size!=0 ("
                             + std::to_string(m.prefetch_size) + ")",
                           60, 10);
          return;
        }
        if (m.global)
          c.prefetch_global = m.prefetch_count;
        else
          c.prefetch_consumer = m.prefetch_count;
        reply(*this, ch, pr::basic_qos_ok{});
        release_held(ch);
      } else if constexpr (std::is_same_v<M, pr::basic_consume>) {
        on_consume(*this, ch, m);
      } else if constexpr (std::is_same_v<M, pr::basic_cancel>) {
        on_cancel(*this, ch, m);
      } else if constexpr (std::is_same_v<M, pr::basic_get>) {
        on_get(*this, ch, m);
      } else if constexpr (std::is_same_v<M, pr::basic_recover>) {
        on_recover(*this, ch, m.requeue, true);
      } else if constexpr (std::is_same_v<M, pr::basic_recover_async>) {
        on_recover(*this, ch, m.requeue, false);
      } else if constexpr (std::is_same_v<M, pr::channel_flow>) {
        c.flow = m.active;
        reply(*this, ch, pr::channel_flow_ok{m.active});
        release_held(ch);
      } else if constexpr (std::is_same_v<M, pr::confirm_select>) {
        if (c.tx) {
          channel_error(ch, errc::precondition_failed,
                        "PRECONDITION_FAILED - cannot switch from tx to "
                        "confirm mode",
                        85, 10);
          return;
        }
        c.confirm = true;
        if (!m.no_wait)
          reply(*this, ch, pr::confirm_select_ok{});
      } else if constexpr (std::is_same_v<M, pr::tx_select>) {
        if (c.confirm) {
          channel_error(ch, errc::precondition_failed,
                        "PRECONDITION_FAILED - cannot switch from confirm "
                        "to tx mode",
                        90, 10);
          return;
        }
        c.tx = true;
        reply(*this, ch, pr::tx_select_ok{});
      } else if constexpr (std::is_same_v<M, pr::tx_commit>) {
        on_commit(*this, ch);
      } else if constexpr (std::is_same_v<M, pr::tx_rollback>) {
        on_rollback(*this, ch);
      } else if constexpr (std::is_same_v<M, pr::exchange_declare>) {
        exchange_declare_req req{m.exchange,
                                 m.type,
                                 m.passive,
                                 m.durable,
                                 m.auto_delete,
                                 m.internal,
                                 std::move(m.arguments)};
        bool no_wait = m.no_wait;
        ask_vhost(*this, ch, std::move(req), cls, mth,
                  [no_wait](op_result&, const async_guard& g) {
                    if (!no_wait)
                      reply(*g.st, g.ch, pr::exchange_declare_ok{});
                  });
      } else if constexpr (std::is_same_v<M, pr::exchange_delete>) {
        delete_req req;
        req.exchange = true;
        req.name = m.exchange;
        req.if_unused = m.if_unused;
        bool no_wait = m.no_wait;
        ask_vhost(*this, ch, std::move(req), cls, mth,
                  [no_wait](op_result&, const async_guard& g) {
                    if (!no_wait)
                      reply(*g.st, g.ch, pr::exchange_delete_ok{});
                  });
      } else if constexpr (
        std::is_same_v<
          M, pr::exchange_bind> || std::is_same_v<M, pr::exchange_unbind>) {
        constexpr bool unbind = std::is_same_v<M, pr::exchange_unbind>;
        bind_req req;
        req.unbind = unbind;
        req.to_exchange = true;
        req.destination = m.destination;
        req.source = m.source;
        req.key = m.routing_key;
        req.arguments = std::move(m.arguments);
        req.connection_id = id;
        bool no_wait = m.no_wait;
        ask_vhost(*this, ch, std::move(req), cls, mth,
                  [no_wait](op_result&, const async_guard& g) {
                    if (no_wait)
                      return;
                    if constexpr (unbind)
                      reply(*g.st, g.ch, pr::exchange_unbind_ok{});
                    else
                      reply(*g.st, g.ch, pr::exchange_bind_ok{});
                  });
      } else if constexpr (std::is_same_v<M, pr::queue_declare>) {
        queue_declare_req req{
          m.queue,     m.passive,     m.durable,
          m.exclusive, m.auto_delete, std::move(m.arguments),
          id};
        bool no_wait = m.no_wait;
        auto g = go_async(*this, ch);
        flush_publishes();
        self->request(vhost->actor, caf::infinite, std::move(req))
          .then(
            [g, no_wait](op_result& r) {
              auto& st = *g.st;
              if (!g.alive())
                return;
              if (!r.ok()) {
                st.channel_error(g.ch, r.code, r.text, 50, 10);
                st.flush();
                return;
              }
              if (no_wait) {
                g.done();
                return;
              }
              auto name = r.name;
              st.self->request(r.actor, caf::infinite, stats_atom::value)
                .then(
                  [g, name](op_result& s) {
                    if (!g.alive())
                      return;
                    reply(*g.st, g.ch,
                          pr::queue_declare_ok{name, s.message_count,
                                               s.consumer_count});
                    g.done();
                  },
                  [g, name](caf::error&) {
                    if (!g.alive())
                      return;
                    reply(*g.st, g.ch, pr::queue_declare_ok{name, 0, 0});
                    g.done();
                  });
            },
            [g](caf::error&) {
              if (g.alive())
                g.done();
            });
      } else if constexpr (
        std::is_same_v<M,
                       pr::queue_bind> || std::is_same_v<M, pr::queue_unbind>) {
        constexpr bool unbind = std::is_same_v<M, pr::queue_unbind>;
        bind_req req;
        req.unbind = unbind;
        req.destination = m.queue;
        req.source = m.exchange;
        req.key = m.routing_key;
        req.arguments = std::move(m.arguments);
        req.connection_id = id;
        bool no_wait = false;
        if constexpr (!unbind)
          no_wait = m.no_wait;
        ask_vhost(*this, ch, std::move(req), cls, mth,
                  [no_wait](op_result&, const async_guard& g) {
                    if (no_wait)
                      return;
                    if constexpr (unbind)
                      reply(*g.st, g.ch, pr::queue_unbind_ok{});
                    else
                      reply(*g.st, g.ch, pr::queue_bind_ok{});
                  });
      } else if constexpr (
        std::is_same_v<
          M, pr::queue_purge> || std::is_same_v<M, pr::queue_delete>) {
        constexpr bool purge = std::is_same_v<M, pr::queue_purge>;
        delete_req req;
        req.name = m.queue;
        req.purge_only = purge;
        if constexpr (!purge) {
          req.if_unused = m.if_unused;
          req.if_empty = m.if_empty;
        }
        req.connection_id = id;
        bool no_wait = m.no_wait;
        ask_vhost(*this, ch, std::move(req), cls, mth,
                  [no_wait](op_result& r, const async_guard& g) {
                    if (no_wait)
                      return;
                    if constexpr (purge)
                      reply(*g.st, g.ch, pr::queue_purge_ok{r.message_count});
                    else
                      reply(*g.st, g.ch, pr::queue_delete_ok{r.message_count});
                  });
      } else {
        connection_error(errc::command_invalid,
                         std::string{"COMMAND_INVALID - unexpected method "}
                           + M::name,
                         cls, mth);
      }
    },
    cmd.m);
}

} // namespace flotilla
