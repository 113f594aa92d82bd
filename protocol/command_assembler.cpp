#include "protocol/command_assembler.hpp"

#include <algorithm>

#include "protocol/wire.hpp"

namespace flotilla::protocol {

namespace {

// A header may announce up to max_body_size bytes, but we reserve at most
// this much up front; the rest grows with the body frames that really come.
constexpr uint64_t max_body_reserve = 1u << 20;

// Body capacity a channel may keep between messages when the consumer of a
// command did not move the body out.
constexpr size_t retained_body_capacity = 64 * 1024;

} // namespace

command_assembler::slot* command_assembler::find(uint16_t channel) {
  auto i = std::lower_bound(slots_.begin(), slots_.end(), channel,
                            [](const slot& s, uint16_t ch) {
                              return s.channel < ch;
                            });
  return i != slots_.end() && i->channel == channel ? &*i : nullptr;
}

const command_assembler::slot* command_assembler::find(uint16_t channel) const {
  return const_cast<command_assembler*>(this)->find(channel);
}

command_assembler::slot& command_assembler::get(uint16_t channel) {
  auto i = std::lower_bound(slots_.begin(), slots_.end(), channel,
                            [](const slot& s, uint16_t ch) {
                              return s.channel < ch;
                            });
  if (i != slots_.end() && i->channel == channel)
    return *i;
  i = slots_.emplace(i);
  i->channel = channel;
  return *i;
}

void command_assembler::reset_channel(uint16_t channel) {
  if (auto* s = find(channel)) {
    s->state = phase::idle;
    s->remaining = 0;
    s->cmd = command{};
  }
}

bool command_assembler::in_progress(uint16_t channel) const {
  auto* s = find(channel);
  return s != nullptr && s->state != phase::idle;
}

errc command_assembler::fail(uint16_t channel, errc e) {
  last_error_channel_ = channel;
  reset_channel(channel);
  return e;
}

void command_assembler::recycle(command& c) {
  c.header.reset();
  c.raw_header.clear();
  // A body the callback did not take is dropped, not kept for the next one.
  if (c.body.capacity() > retained_body_capacity)
    std::string{}.swap(c.body);
  else
    c.body.clear();
}

errc command_assembler::step(const frame_view& f, command*& ready) {
  switch (f.type) {
    case frame_type::method:
      return on_method(f, ready);
    case frame_type::header:
      return on_header(f, ready);
    case frame_type::body:
      return on_body(f, ready);
    case frame_type::heartbeat:
      if (f.channel != 0 || !f.payload.empty())
        return fail(f.channel, errc::frame_error);
      return errc::none;
  }
  return fail(f.channel, errc::frame_error);
}

errc command_assembler::on_method(const frame_view& f, command*& ready) {
  auto* s = find(f.channel);
  if (s != nullptr && s->state != phase::idle)
    return fail(f.channel, errc::unexpected_frame);
  // Decoding into the same scratch command every time reuses its storage
  // when the same method type repeats (acks, publishes).
  if (auto e = decode_method(f.payload, scratch_.m); e != errc::none)
    return fail(f.channel, e);
  if (!has_content(scratch_.m)) {
    scratch_.channel = f.channel;
    ready = &scratch_;
    return errc::none;
  }
  if (f.channel == 0)
    return fail(f.channel, errc::channel_error);
  auto& slot = s != nullptr ? *s : get(f.channel);
  slot.cmd.channel = f.channel;
  slot.cmd.m = std::move(scratch_.m);
  slot.state = phase::want_header;
  return errc::none;
}

errc command_assembler::on_header(const frame_view& f, command*& ready) {
  auto* s = f.channel != 0 ? find(f.channel) : nullptr;
  if (s == nullptr || s->state != phase::want_header)
    return fail(f.channel, errc::unexpected_frame);
  if (f.payload.size() < content_header_fixed_size)
    return fail(f.channel, errc::frame_error);
  auto class_id = wire::load_u16(f.payload.data());
  auto weight = wire::load_u16(f.payload.data() + 2);
  if (class_id != class_id_of(s->cmd.m) || weight != 0)
    return fail(f.channel, errc::unexpected_frame);
  auto& hdr = s->cmd.header.emplace();
  if (auto e = decode_content_header(f.payload, hdr); e != errc::none)
    return fail(f.channel, e);
  if (hdr.body_size > max_body_size_)
    return fail(f.channel, errc::precondition_failed);
  s->cmd.raw_header.assign(f.payload.data(), f.payload.size());
  s->cmd.body.clear();
  if (hdr.body_size == 0) {
    s->state = phase::idle;
    ready = &s->cmd;
    return errc::none;
  }
  s->cmd.body.reserve(
    static_cast<size_t>(std::min(hdr.body_size, max_body_reserve)));
  s->remaining = hdr.body_size;
  s->state = phase::want_body;
  return errc::none;
}

errc command_assembler::on_body(const frame_view& f, command*& ready) {
  auto* s = f.channel != 0 ? find(f.channel) : nullptr;
  if (s == nullptr || s->state != phase::want_body)
    return fail(f.channel, errc::unexpected_frame);
  if (f.payload.size() > s->remaining)
    return fail(f.channel, errc::frame_error);
  auto& body = s->cmd.body;
  auto need = body.size() + f.payload.size();
  if (need > body.capacity()) {
    // Grow geometrically, but never past the announced size.
    auto final_size = body.size() + s->remaining;
    body.reserve(static_cast<size_t>(std::min<uint64_t>(
      std::max<uint64_t>(need, 2 * body.capacity()), final_size)));
  }
  body.append(f.payload.data(), f.payload.size());
  s->remaining -= f.payload.size();
  if (s->remaining == 0 && !f.more) {
    s->state = phase::idle;
    ready = &s->cmd;
  }
  return errc::none;
}

} // namespace flotilla::protocol
