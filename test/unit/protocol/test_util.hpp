#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/command_assembler.hpp"
#include "protocol/frame.hpp"
#include "protocol/methods.hpp"

namespace flotilla::protocol::test {

/// Returns a string holding the given octets.
inline std::string bytes(std::initializer_list<int> octets) {
  std::string out;
  for (int o : octets)
    out.push_back(static_cast<char>(o));
  return out;
}

/// A frame with its own copy of the payload.
struct owned_frame {
  frame_type type;
  uint16_t channel;
  std::string payload;
  bool operator==(const owned_frame& o) const {
    return type == o.type && channel == o.channel && payload == o.payload;
  }
};

/// Result of decoding a stream: the frames and the final error.
struct decode_result {
  std::vector<owned_frame> frames;
  errc error = errc::none;
  bool operator==(const decode_result& o) const {
    return frames == o.frames && error == o.error;
  }
};

/// Feeds `input` to a fresh decoder in pieces cut at `cuts` (ascending
/// offsets); returns the frames and the first error.
inline decode_result decode_split(std::string_view input,
                                  const std::vector<size_t>& cuts,
                                  uint32_t frame_max = 131072) {
  decode_result r;
  frame_decoder dec{frame_max};
  size_t pos = 0;
  auto feed_to = [&](size_t end) {
    if (r.error != errc::none)
      return;
    r.error = dec.feed(input.data() + pos, end - pos, [&](const frame_view& f) {
      r.frames.push_back({f.type, f.channel, std::string{f.payload}});
    });
    pos = end;
  };
  for (auto c : cuts)
    feed_to(c);
  feed_to(input.size());
  return r;
}

inline decode_result decode_whole(std::string_view input,
                                  uint32_t frame_max = 131072) {
  return decode_split(input, {}, frame_max);
}

/// Calls f(M{}) for every method type M.
template<class F, size_t... I>
void for_each_method_type_impl(F& f, std::index_sequence<I...>) {
  (f(std::variant_alternative_t<I, method>{}), ...);
}

template<class F>
void for_each_method_type(F&& f) {
  for_each_method_type_impl(f, std::make_index_sequence<method_count>{});
}

} // namespace flotilla::protocol::test
