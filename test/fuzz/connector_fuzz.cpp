// The config file's connector lines (config/connectors.hpp): any bytes
// either parse or give a reason, never crash; a parsed connector satisfies
// its invariants and parses again from its own fields alike; patterns that
// pass check_key_pattern match consistently. Input: the line, then after a
// 0 byte a key for the patterns of the parsed filter.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/connectors.hpp"
#include "fuzz_check.hpp"

using namespace flotilla::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096)
    return 0;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  auto nul = all.find('\0');
  auto line = all.substr(0, nul);
  auto key
    = nul == std::string_view::npos ? std::string_view{} : all.substr(nul + 1);
  connector_spec c;
  auto why = parse_connector(line, c);
  if (!why.empty())
    return 0;
  FUZZ_CHECK(!c.name.empty() && !c.host.empty() && c.port != 0);
  FUZZ_CHECK(!c.exchanges.empty() || !c.statics.empty());
  FUZZ_CHECK(c.max_hops >= 1 && c.max_hops <= 255);
  for (auto& r : c.statics)
    FUZZ_CHECK(c.filter.allows(r.key));
  for (auto& p : c.filter.include) {
    FUZZ_CHECK(check_key_pattern(p).empty());
    // A wildcard-free pattern matches itself.
    if (p.find_first_of("*#>") == std::string::npos)
      FUZZ_CHECK(key_pattern_match(p, p));
  }
  // "#" lets every key through; the filter agrees with its patterns.
  FUZZ_CHECK(key_pattern_match("#", key));
  bool in = c.filter.include.empty();
  for (auto& p : c.filter.include)
    in = in || key_pattern_match(p, key);
  bool out = false;
  for (auto& p : c.filter.exclude)
    out = out || key_pattern_match(p, key);
  FUZZ_CHECK(c.filter.allows(key) == (in && !out));
  return 0;
}
