// decode_field_table / decode_field_array / decode_field_value on arbitrary
// bytes; whatever decodes must re-encode to bytes that decode and re-encode
// identically, and consume exactly the bytes it reported. Also feeds decoded
// tables to headers_match.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "protocol/field_table.hpp"
#include "protocol/matching.hpp"

using namespace flotilla;
using namespace flotilla::protocol;

namespace {

template<class T, class Decode, class Encode>
void check(std::string_view input, Decode decode, Encode encode) {
  std::string_view in = input;
  T value;
  if (decode(in, value) != errc::none)
    return;
  auto consumed = input.size() - in.size();
  std::string a;
  encode(a, value);
  // 'L' re-encodes as 'l', booleans as 0/1: same sizes, so the encoding is
  // exactly as long as what was consumed.
  FUZZ_CHECK(a.size() == consumed);
  std::string_view again_in = a;
  T again;
  FUZZ_CHECK(decode(again_in, again) == errc::none);
  FUZZ_CHECK(again_in.empty());
  std::string b;
  encode(b, again);
  FUZZ_CHECK(a == b);
  FUZZ_CHECK(describe(field_value{again}) == describe(field_value{value}));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input{reinterpret_cast<const char*>(data), size};
  check<field_table>(
    input,
    [](std::string_view& in, field_table& t) {
      return decode_field_table(in, t);
    },
    [](std::string& out, const field_table& t) {
      encode_field_table(out, t);
    });
  check<field_array>(
    input,
    [](std::string_view& in, field_array& a) {
      return decode_field_array(in, a);
    },
    [](std::string& out, const field_array& a) {
      encode_field_array(out, a);
    });
  check<field_value>(
    input,
    [](std::string_view& in, field_value& v) {
      return decode_field_value(in, v);
    },
    [](std::string& out, const field_value& v) {
      encode_field_value(out, v);
    });

  // Two tables back to back: binding arguments and message headers.
  std::string_view in = input;
  field_table binding;
  field_table headers;
  if (decode_field_table(in, binding) == errc::none) {
    bool have_headers = decode_field_table(in, headers) == errc::none;
    auto r = headers_match(binding, have_headers ? &headers : nullptr);
    // Matching is deterministic and total.
    FUZZ_CHECK(r == headers_match(binding, have_headers ? &headers : nullptr));
    (void)headers_match_kind_of(binding);
  }
  return 0;
}
