// decode_method on arbitrary payloads; whatever decodes must re-encode to a
// payload that decodes again to an equal method (compared by re-encoded
// bytes and by describe(), so NaNs in tables don't count as differences).
// Also runs decode_content_header on the same bytes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"

using namespace flotilla;
using namespace flotilla::protocol;

namespace {

std::string payload_of(const method& m) {
  std::string s;
  std::visit(
    [&s](const auto& x) {
      append_method_payload(s, x);
    },
    m);
  return s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  method m;
  auto e = decode_method(in, m);
  if (size < 4) {
    FUZZ_CHECK(e == errc::frame_error);
  } else if (e == errc::none) {
    FUZZ_CHECK(class_id_of(m) == (data[0] << 8 | data[1]));
    FUZZ_CHECK(method_id_of(m) == (data[2] << 8 | data[3]));
    auto once = payload_of(m);
    method again;
    FUZZ_CHECK(decode_method(once, again) == errc::none);
    FUZZ_CHECK(payload_of(again) == once);
    FUZZ_CHECK(describe(again) == describe(m));
    FUZZ_CHECK(again.index() == m.index());
    // Normalisations (unused bits, 'L' -> 'l', 't' values) keep sizes.
    FUZZ_CHECK(once.size() == size);
  } else {
    FUZZ_CHECK(e == errc::frame_error || e == errc::command_invalid);
    FUZZ_CHECK(
      (e == errc::command_invalid)
      == !is_known_method(static_cast<uint16_t>(data[0] << 8 | data[1]),
                          static_cast<uint16_t>(data[2] << 8 | data[3])));
  }

  content_header h;
  if (decode_content_header(in, h) == errc::none) {
    std::string a;
    append_header_payload(a, h.body_size, h.properties);
    content_header h2;
    FUZZ_CHECK(decode_content_header(a, h2) == errc::none);
    std::string b;
    append_header_payload(b, h2.body_size, h2.properties);
    FUZZ_CHECK(a == b);
    FUZZ_CHECK(a.size() <= size);
  }
  return 0;
}
