#include "store/crc32c.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define FLOTILLA_CRC32C_X86 1
#  include <nmmintrin.h>
#endif

namespace flotilla::store {

namespace {

constexpr uint32_t poly = 0x82F63B78u; // reflected Castagnoli

using table_t = std::array<std::array<uint32_t, 256>, 8>;

constexpr table_t make_tables() {
  table_t t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i)
    for (size_t s = 1; s < 8; ++s)
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  return t;
}

constexpr table_t tables = make_tables();

uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16)
         | (uint32_t{p[3]} << 24);
}

#ifdef FLOTILLA_CRC32C_X86
__attribute__((target("sse4.2"))) uint32_t
extend_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t l = crc ^ 0xFFFFFFFFu;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
    --n;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    l = _mm_crc32_u64(l, v);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
    --n;
  }
  return static_cast<uint32_t>(l) ^ 0xFFFFFFFFu;
}

bool detect_hw() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

// Read once at start-up; a plain bool keeps the per-call cost to a branch.
const bool have_hw = detect_hw();
#endif

} // namespace

uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n) {
  auto p = static_cast<const uint8_t*>(data);
  uint32_t l = crc ^ 0xFFFFFFFFu;
  while (n >= 8) {
    uint32_t a = load_le32(p) ^ l;
    uint32_t b = load_le32(p + 4);
    l = tables[7][a & 0xFF] ^ tables[6][(a >> 8) & 0xFF]
        ^ tables[5][(a >> 16) & 0xFF] ^ tables[4][a >> 24] ^ tables[3][b & 0xFF]
        ^ tables[2][(b >> 8) & 0xFF] ^ tables[1][(b >> 16) & 0xFF]
        ^ tables[0][b >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    l = tables[0][(l ^ *p++) & 0xFF] ^ (l >> 8);
    --n;
  }
  return l ^ 0xFFFFFFFFu;
}

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
#ifdef FLOTILLA_CRC32C_X86
  if (have_hw)
    return extend_hw(crc, static_cast<const uint8_t*>(data), n);
#endif
  return crc32c_extend_portable(crc, data, n);
}

bool crc32c_hardware() {
#ifdef FLOTILLA_CRC32C_X86
  return have_hw;
#else
  return false;
#endif
}

} // namespace flotilla::store
