#pragma once

#include <cstdint>
#include <optional>

namespace flotilla {

/// AMQP 0-9-1 reply codes as an 8-bit enum, so CAF can carry them as error
/// codes. `none` is success (reply code 200). Used by every layer: protocol
/// decoders return it, actors fail requests with it, connections turn it into
/// channel.close or connection.close.
enum class errc : uint8_t {
  none = 0,
  content_too_large,   ///< 311, channel
  no_route,            ///< 312, channel (basic.return)
  no_consumers,        ///< 313, channel (basic.return)
  connection_forced,   ///< 320, connection
  invalid_path,        ///< 402, connection
  access_refused,      ///< 403, channel
  not_found,           ///< 404, channel
  resource_locked,     ///< 405, channel
  precondition_failed, ///< 406, channel
  frame_error,         ///< 501, connection
  syntax_error,        ///< 502, connection
  command_invalid,     ///< 503, connection
  channel_error,       ///< 504, connection
  unexpected_frame,    ///< 505, connection
  resource_error,      ///< 506, connection
  not_allowed,         ///< 530, connection
  not_implemented,     ///< 540, connection
  internal_error,      ///< 541, connection
};

/// Returns the AMQP reply code for `e` (200 for errc::none).
uint16_t reply_code(errc e);

/// Returns true if `e` must close the whole connection (a "hard error":
/// 320, 402, 501-506, 530, 540, 541), false if it closes only the channel
/// (311-313, 403-406) and for errc::none.
bool is_connection_error(errc e);

/// Returns the AMQP constant name with underscores, e.g. "NOT_FOUND";
/// "REPLY_SUCCESS" for errc::none. Never null.
const char* to_string(errc e);

/// Returns the errc for an AMQP reply code (200 -> errc::none), or nullopt for
/// codes the spec does not define. For peers' connection.close/channel.close.
std::optional<errc> errc_from_reply_code(uint16_t code);

} // namespace flotilla
