#pragma once

#include <cstddef>
#include <cstdint>

namespace flotilla::store {

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
/// every journal record. Uses the SSE4.2 crc32 instruction when the CPU has
/// it, a slicing-by-8 table otherwise; both give the same result.

/// Returns the CRC-32C of `data[0..n)` continued from `crc`, a value earlier
/// returned by crc32c() or crc32c_extend() (0 to start). So
/// crc32c_extend(crc32c(a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

/// Returns the CRC-32C of `data[0..n)`. crc32c("123456789") == 0xE3069283.
inline uint32_t crc32c(const void* data, size_t n) {
  return crc32c_extend(0, data, n);
}

/// The table-driven implementation, exposed so tests can compare it with the
/// hardware one.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t n);

/// Returns true if crc32c_extend() uses the CPU's crc32 instruction.
bool crc32c_hardware();

} // namespace flotilla::store
