#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "protocol/errc.hpp"
#include "protocol/frame.hpp"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"

namespace flotilla::protocol {

/// A method with its content, if it carries any.
struct command {
  uint16_t channel = 0;
  method m;
  /// Engaged for content-bearing methods (basic.publish etc.).
  std::optional<content_header> header;
  /// The header frame payload as received, reusable for deliveries through
  /// append_raw_header_frame when the properties stay unchanged.
  std::string raw_header;
  std::string body;
};

/// Turns frames into commands: a method frame alone, or a content-bearing
/// method followed by its header frame and body frames. One per connection,
/// fed by the socket side after frame_decoder; not thread-safe.
///
/// Per-channel state machine (channels interleave freely):
///   idle --content method--> want_header --header, size 0--> idle, emits
///                                 \--header, size > 0--> want_body
///   want_body --body frames until size reached--> idle, emits
/// Other methods go idle -> idle and are emitted at once. Heartbeats produce
/// nothing (the caller sees every frame first and notes activity).
///
/// Errors (returned from on_frame; last_error_channel() tells the channel):
/// - errc::unexpected_frame (505): header or body frame while the channel is
///   not expecting one; method frame while content is incomplete; header of
///   another class than the method; header weight != 0; header or body frame
///   on channel 0. (RabbitMQ answers all of these with 505.)
/// - errc::frame_error (501): undecodable method or header payload; body
///   frames beyond the announced size; heartbeat on a channel other than 0 or
///   with a payload (RabbitMQ says 505 for the channel case; the spec says
///   501, which we follow).
/// - errc::command_invalid (503): unknown class/method id (decode_method).
/// - errc::channel_error (504): a content-bearing method on channel 0
///   (RabbitMQ: "unexpected method in connection state").
/// - errc::precondition_failed (406, channel-level): header body size above
///   max_body_size. The connection closes just that channel and must drop
///   its further frames until channel.close-ok; the assembler has already
///   forgotten the partial command.
/// - whatever on_command returns.
/// After any error the offending channel is back to idle; the assembler
/// itself keeps no failed state (connection-level errors end the connection
/// anyway).
class command_assembler {
public:
  /// `max_body_size` caps the body size a header may announce.
  explicit command_assembler(uint64_t max_body_size = 128ull << 20)
    : max_body_size_(max_body_size) {}

  void set_max_body_size(uint64_t max_body_size) {
    max_body_size_ = max_body_size;
  }

  uint64_t max_body_size() const {
    return max_body_size_;
  }

  /// Processes one frame; calls `on_command(command&&)` when it completes a
  /// command. `on_command` may move from the command (it is the assembler's
  /// storage, reused afterwards) but must not call back into the assembler.
  /// It returns errc (or void); a non-none result is returned. Returns
  /// errc::none or an error listed in the class comment.
  template<class F>
  errc on_frame(const frame_view& f, F&& on_command);

  /// Returns the channel of the frame that caused the last error.
  uint16_t last_error_channel() const {
    return last_error_channel_;
  }

  /// Drops any partial command of `channel` (e.g. when the channel closes).
  void reset_channel(uint16_t channel);

  /// Returns true if `channel` waits for a header or body frame.
  bool in_progress(uint16_t channel) const;

private:
  enum class phase : uint8_t { idle, want_header, want_body };

  struct slot {
    uint16_t channel = 0;
    phase state = phase::idle;
    uint64_t remaining = 0; ///< Body bytes still expected.
    command cmd;
  };

  /// Handles `f`; points `ready` at the completed command, if any.
  errc step(const frame_view& f, command*& ready);

  errc on_method(const frame_view& f, command*& ready);
  errc on_header(const frame_view& f, command*& ready);
  errc on_body(const frame_view& f, command*& ready);

  /// Returns the slot of `channel`, or null.
  slot* find(uint16_t channel);
  const slot* find(uint16_t channel) const;

  /// Returns the slot of `channel`, creating an idle one.
  slot& get(uint16_t channel);

  /// Clears a command handed to on_command so its storage can be reused.
  void recycle(command& c);

  errc fail(uint16_t channel, errc e);

  uint64_t max_body_size_;
  uint16_t last_error_channel_ = 0;
  std::vector<slot> slots_; ///< Sorted by channel; kept once created.
  command scratch_;         ///< Methods without content decode here.
};

template<class F>
errc command_assembler::on_frame(const frame_view& f, F&& on_command) {
  command* ready = nullptr;
  if (auto e = step(f, ready); e != errc::none)
    return e;
  if (ready == nullptr)
    return errc::none;
  errc e = errc::none;
  if constexpr (std::is_void_v<std::invoke_result_t<F&, command&&>>)
    on_command(std::move(*ready));
  else
    e = static_cast<errc>(on_command(std::move(*ready)));
  recycle(*ready);
  if (e != errc::none)
    last_error_channel_ = f.channel;
  return e;
}

} // namespace flotilla::protocol
