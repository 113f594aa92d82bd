#include "protocol/frame.hpp"

#include <algorithm>

namespace flotilla::protocol {

namespace {

constexpr char amqp_0_9_1_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

// Keep at most this much buffer capacity between split frames; a connection
// that once received a large split frame should not pin frame_max forever.
constexpr size_t retained_capacity = 64 * 1024;

} // namespace

std::string_view protocol_header() {
  return {amqp_0_9_1_header, sizeof(amqp_0_9_1_header)};
}

header_check check_protocol_header(std::string_view bytes) {
  auto n = std::min(bytes.size(), sizeof(amqp_0_9_1_header));
  for (size_t i = 0; i < n; ++i)
    if (bytes[i] != amqp_0_9_1_header[i])
      return header_check::mismatch;
  return n == sizeof(amqp_0_9_1_header) ? header_check::ok
                                        : header_check::need_more;
}

void frame_decoder::buffer(const char* data, size_t n) {
  auto need = buf_.size() + n;
  if (need > buf_.capacity()) {
    // Grow geometrically but never past the frame being assembled, so a
    // header announcing frame_max bytes costs memory only as data arrives.
    auto cap = std::max(need, buf_.capacity() * 2);
    if (want_ != 0)
      cap = std::min(cap, want_);
    else
      cap = std::max(need, frame_header_size);
    buf_.reserve(cap);
  } else if (buf_.empty() && buf_.capacity() > retained_capacity
             && (want_ == 0 || want_ <= retained_capacity)) {
    std::string{}.swap(buf_);
    buf_.reserve(want_ != 0 ? want_ : frame_header_size);
  }
  buf_.append(data, n);
}

} // namespace flotilla::protocol
