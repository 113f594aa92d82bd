// The routes file of durable federation routes (federation/routes_file):
// any bytes either decode or are refused with a reason; what decodes
// encodes back to bytes that decode to the same routes, and re-encoding
// those is stable.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "federation/routes_file.hpp"
#include "fuzz_check.hpp"

using namespace flotilla::federation;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes{reinterpret_cast<const char*>(data), size};
  durable_routes r;
  std::string error;
  if (!decode_routes(bytes, r, error)) {
    FUZZ_CHECK(!error.empty());
    FUZZ_CHECK(r.links.empty() && r.bridges.empty());
    return 0;
  }
  auto again = encode_routes(r);
  durable_routes back;
  FUZZ_CHECK(decode_routes(again, back, error));
  FUZZ_CHECK(back.links.size() == r.links.size());
  FUZZ_CHECK(back.bridges.size() == r.bridges.size());
  for (size_t i = 0; i < r.links.size(); ++i)
    FUZZ_CHECK(back.links[i] == r.links[i]);
  for (size_t i = 0; i < r.bridges.size(); ++i)
    FUZZ_CHECK(back.bridges[i] == r.bridges[i]);
  FUZZ_CHECK(encode_routes(back) == again);
  return 0;
}
