#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

/// Big-endian primitives shared by the codecs. Internal to protocol/, but
/// header-only so the encoders inline into callers.
namespace flotilla::protocol::wire {

inline uint16_t load_u16(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((b[0] << 8) | b[1]);
}

inline uint32_t load_u32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8)
         | uint32_t{b[3]};
}

inline uint64_t load_u64(const char* p) {
  return (uint64_t{load_u32(p)} << 32) | load_u32(p + 4);
}

inline void store_u16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}

inline void store_u32(char* p, uint32_t v) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

inline void store_u64(char* p, uint64_t v) {
  store_u32(p, static_cast<uint32_t>(v >> 32));
  store_u32(p + 4, static_cast<uint32_t>(v));
}

inline void put_u8(std::string& out, uint8_t v) {
  out.push_back(static_cast<char>(v));
}

inline void put_u16(std::string& out, uint16_t v) {
  char b[2];
  store_u16(b, v);
  out.append(b, 2);
}

inline void put_u32(std::string& out, uint32_t v) {
  char b[4];
  store_u32(b, v);
  out.append(b, 4);
}

inline void put_u64(std::string& out, uint64_t v) {
  char b[8];
  store_u64(b, v);
  out.append(b, 8);
}

/// Appends a short string: one length octet, then at most 255 bytes. Longer
/// input is truncated to 255 bytes (encoders cannot fail); callers that take
/// names from peers validate lengths before they get here.
inline void put_shortstr(std::string& out, std::string_view s) {
  auto n = s.size() < 255 ? s.size() : size_t{255};
  put_u8(out, static_cast<uint8_t>(n));
  out.append(s.data(), n);
}

/// Appends a long string: a 32-bit length, then the bytes.
inline void put_longstr(std::string& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s.data(), s.size());
}

/// Bounds-checked cursor over an input buffer. Every read returns false (and
/// consumes nothing) when the input is too short; it never allocates except
/// for the strings it fills.
class reader {
public:
  explicit reader(std::string_view in) : in_(in) {}

  /// Returns the bytes not consumed yet.
  std::string_view rest() const {
    return in_;
  }

  size_t remaining() const {
    return in_.size();
  }

  bool empty() const {
    return in_.empty();
  }

  /// Replaces the unread input, e.g. after a nested decoder consumed a prefix
  /// of rest().
  void reset(std::string_view rest) {
    in_ = rest;
  }

  bool skip(size_t n) {
    if (in_.size() < n)
      return false;
    in_.remove_prefix(n);
    return true;
  }

  bool u8(uint8_t& x) {
    if (in_.empty())
      return false;
    x = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }

  bool u16(uint16_t& x) {
    if (in_.size() < 2)
      return false;
    x = load_u16(in_.data());
    in_.remove_prefix(2);
    return true;
  }

  bool u32(uint32_t& x) {
    if (in_.size() < 4)
      return false;
    x = load_u32(in_.data());
    in_.remove_prefix(4);
    return true;
  }

  bool u64(uint64_t& x) {
    if (in_.size() < 8)
      return false;
    x = load_u64(in_.data());
    in_.remove_prefix(8);
    return true;
  }

  /// Reads `n` raw bytes as a view into the input.
  bool bytes(size_t n, std::string_view& x) {
    if (in_.size() < n)
      return false;
    x = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

  bool shortstr(std::string_view& x) {
    if (in_.empty())
      return false;
    auto n = static_cast<uint8_t>(in_[0]);
    if (in_.size() < size_t{1} + n)
      return false;
    x = in_.substr(1, n);
    in_.remove_prefix(size_t{1} + n);
    return true;
  }

  bool longstr(std::string_view& x) {
    if (in_.size() < 4)
      return false;
    auto n = load_u32(in_.data());
    if (in_.size() - 4 < n)
      return false;
    x = in_.substr(4, n);
    in_.remove_prefix(size_t{4} + n);
    return true;
  }

  bool shortstr(std::string& x) {
    std::string_view v;
    if (!shortstr(v))
      return false;
    x.assign(v.data(), v.size());
    return true;
  }

  bool longstr(std::string& x) {
    std::string_view v;
    if (!longstr(v))
      return false;
    x.assign(v.data(), v.size());
    return true;
  }

private:
  std::string_view in_;
};

} // namespace flotilla::protocol::wire
