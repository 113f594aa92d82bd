#include "protocol/methods.hpp"

#include <array>
#include <cstdio>
#include <utility>

namespace flotilla::protocol {

namespace {

// -- per-alternative tables, indexed like `method` ----------------------------

template<size_t I>
using alternative = std::variant_alternative_t<I, method>;

struct method_info {
  uint32_t key;
  const char* name;
  bool has_content;
};

template<size_t... I>
constexpr std::array<method_info, sizeof...(I)>
make_infos(std::index_sequence<I...>) {
  return {{{method_key(alternative<I>::class_id, alternative<I>::method_id),
            alternative<I>::name, alternative<I>::has_content}...}};
}

constexpr auto infos = make_infos(std::make_index_sequence<method_count>{});

// (key, variant index) sorted by key, for binary search on decode.
struct key_index {
  uint32_t key;
  uint32_t index;
};

constexpr std::array<key_index, method_count> make_sorted_keys() {
  std::array<key_index, method_count> result{};
  for (size_t i = 0; i < method_count; ++i)
    result[i] = key_index{infos[i].key, static_cast<uint32_t>(i)};
  // Insertion sort: constexpr-friendly and only 66 entries.
  for (size_t i = 1; i < method_count; ++i)
    for (size_t j = i; j > 0 && result[j - 1].key > result[j].key; --j) {
      auto tmp = result[j];
      result[j] = result[j - 1];
      result[j - 1] = tmp;
    }
  return result;
}

constexpr auto sorted_keys = make_sorted_keys();

constexpr bool keys_unique() {
  for (size_t i = 1; i < method_count; ++i)
    if (sorted_keys[i - 1].key == sorted_keys[i].key)
      return false;
  return true;
}
static_assert(keys_unique(), "two method structs share class and method id");

// Returns the variant index for `key`, or method_count.
size_t find_index(uint32_t key) {
  size_t lo = 0;
  size_t hi = method_count;
  while (lo < hi) {
    auto mid = lo + (hi - lo) / 2;
    if (sorted_keys[mid].key < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < method_count && sorted_keys[lo].key == key)
    return sorted_keys[lo].index;
  return method_count;
}

// -- decoding -----------------------------------------------------------------

class method_decoder {
public:
  explicit method_decoder(wire::reader& r) : r_(r) {}

  bool ok() const {
    return ok_;
  }

  void u8(const char*, uint8_t& x) {
    bit_ = 8;
    ok_ = ok_ && r_.u8(x);
  }
  void u16(const char*, uint16_t& x) {
    bit_ = 8;
    ok_ = ok_ && r_.u16(x);
  }
  void u32(const char*, uint32_t& x) {
    bit_ = 8;
    ok_ = ok_ && r_.u32(x);
  }
  void u64(const char*, uint64_t& x) {
    bit_ = 8;
    ok_ = ok_ && r_.u64(x);
  }
  void bit(const char*, bool& x) {
    if (!ok_)
      return;
    if (bit_ == 8) {
      if (!r_.u8(bits_)) {
        ok_ = false;
        return;
      }
      bit_ = 0;
    }
    x = ((bits_ >> bit_) & 1u) != 0;
    ++bit_;
  }
  void shortstr(const char*, std::string& x) {
    bit_ = 8;
    ok_ = ok_ && r_.shortstr(x);
  }
  void longstr(const char*, std::string& x) {
    bit_ = 8;
    ok_ = ok_ && r_.longstr(x);
  }
  void table(const char*, field_table& x) {
    bit_ = 8;
    if (!ok_)
      return;
    auto in = r_.rest();
    if (decode_field_table(in, x) != errc::none) {
      ok_ = false;
      return;
    }
    r_.reset(in);
  }

private:
  wire::reader& r_;
  bool ok_ = true;
  uint8_t bits_ = 0;
  unsigned bit_ = 8;
};

template<class M>
bool decode_as(wire::reader& r, method& out) {
  auto* m = std::get_if<M>(&out);
  if (m == nullptr)
    m = &out.emplace<M>();
  method_decoder dec{r};
  M::fields(dec, *m);
  return dec.ok() && r.empty();
}

using decode_fn = bool (*)(wire::reader&, method&);

template<size_t... I>
constexpr std::array<decode_fn, sizeof...(I)>
make_decoders(std::index_sequence<I...>) {
  return {{&decode_as<alternative<I>>...}};
}

constexpr auto decoders
  = make_decoders(std::make_index_sequence<method_count>{});

// -- describe -----------------------------------------------------------------

class method_printer {
public:
  explicit method_printer(std::string& out) : out_(out) {}
  void u8(const char* n, uint8_t x) {
    number(n, x);
  }
  void u16(const char* n, uint16_t x) {
    number(n, x);
  }
  void u32(const char* n, uint32_t x) {
    number(n, x);
  }
  void u64(const char* n, uint64_t x) {
    number(n, x);
  }
  void bit(const char* n, bool x) {
    field(n);
    out_ += x ? "true" : "false";
  }
  void shortstr(const char* n, const std::string& x) {
    field(n);
    out_ += describe(field_value{std::string_view{x}});
  }
  void longstr(const char* n, const std::string& x) {
    // May carry credentials: print the size only.
    char buf[48];
    std::snprintf(buf, sizeof(buf), "<%zu bytes>", x.size());
    field(n);
    out_ += buf;
  }
  void table(const char* n, const field_table& x) {
    field(n);
    out_ += describe(x);
  }

private:
  void field(const char* n) {
    if (!first_)
      out_ += ", ";
    first_ = false;
    out_ += n;
    out_.push_back('=');
  }
  void number(const char* n, uint64_t x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(x));
    field(n);
    out_ += buf;
  }

  std::string& out_;
  bool first_ = true;
};

} // namespace

errc decode_method(std::string_view payload, method& out) {
  wire::reader r{payload};
  uint16_t class_id;
  uint16_t method_id;
  if (!r.u16(class_id) || !r.u16(method_id))
    return errc::frame_error;
  auto index = find_index(method_key(class_id, method_id));
  if (index == method_count)
    return errc::command_invalid;
  return decoders[index](r, out) ? errc::none : errc::frame_error;
}

uint16_t class_id_of(const method& m) {
  return static_cast<uint16_t>(infos[m.index()].key >> 16);
}

uint16_t method_id_of(const method& m) {
  return static_cast<uint16_t>(infos[m.index()].key & 0xFFFF);
}

const char* name_of(const method& m) {
  return infos[m.index()].name;
}

bool has_content(const method& m) {
  return infos[m.index()].has_content;
}

bool is_known_method(uint16_t class_id, uint16_t method_id) {
  return find_index(method_key(class_id, method_id)) != method_count;
}

std::string describe(const method& m) {
  std::string out = name_of(m);
  out.push_back('(');
  std::visit(
    [&out](const auto& x) {
      using M = std::decay_t<decltype(x)>;
      method_printer p{out};
      M::fields(p, x);
    },
    m);
  out.push_back(')');
  return out;
}

void append_method_frame(std::string& out, uint16_t channel, const method& m) {
  std::visit(
    [&](const auto& x) {
      append_method_frame(out, channel, x);
    },
    m);
}

} // namespace flotilla::protocol
