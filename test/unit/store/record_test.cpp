#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "store/crc32c.hpp"
#include "store/record.hpp"

using namespace flotilla::store;

TEST_SUITE("store") {

  TEST_CASE("crc32c matches the standard check values") {
    CHECK(crc32c("123456789", 9) == 0xE3069283u);
    CHECK(crc32c("", 0) == 0u);
    std::string zeros(32, '\0');
    CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
    std::string ones(32, '\xFF');
    CHECK(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  }

  TEST_CASE("crc32c: hardware and table agree and extend composes") {
    std::string data;
    for (int i = 0; i < 1000; ++i)
      data.push_back(static_cast<char>(i * 7 + 3));
    for (size_t start = 0; start < 9; ++start) {
      for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 500}) {
        CHECK(crc32c_extend(0, data.data() + start, n)
              == crc32c_extend_portable(0, data.data() + start, n));
      }
    }
    auto whole = crc32c(data.data(), data.size());
    for (size_t cut : {0, 1, 13, 500, 999, 1000})
      CHECK(crc32c_extend(crc32c(data.data(), cut), data.data() + cut,
                          data.size() - cut)
            == whole);
    MESSAGE("crc32c hardware: " << crc32c_hardware());
  }

  TEST_CASE("records round-trip and every proper prefix is incomplete") {
    uint32_t seed = crc_seed(0x12345678);
    std::string buf;
    encode_meta_put(buf, seed, "q/vhost/orders", "queue-def");
    encode_meta_del(buf, seed, "x/vhost/gone");
    encode_publish(buf, seed, 7, 0x0102030405060708ull, "body bytes");
    encode_ack(buf, seed, 7, 42);
    encode_drop_queue(buf, seed, 0xFFFFFFFFu);
    encode_publish(buf, seed, 1, 2, "");
    encode_meta_put(buf, seed, "", "");
    std::string_view in{buf};
    record r;
    size_t p = 0;
    int n = 0;
    while (p < in.size()) {
      REQUIRE(decode_record(in.substr(p), seed, r) == decode_status::ok);
      for (size_t k = 0; k < r.size; ++k)
        CHECK(decode_record(in.substr(p, k), seed, r)
              == decode_status::incomplete);
      REQUIRE(decode_record(in.substr(p), seed, r) == decode_status::ok);
      switch (n) {
        case 0:
          CHECK(r.type == record_type::meta_put);
          CHECK(r.key == "q/vhost/orders");
          CHECK(r.payload == "queue-def");
          break;
        case 1:
          CHECK(r.type == record_type::meta_del);
          CHECK(r.key == "x/vhost/gone");
          break;
        case 2:
          CHECK(r.type == record_type::publish);
          CHECK(r.queue_id == 7);
          CHECK(r.msg_id == 0x0102030405060708ull);
          CHECK(r.payload == "body bytes");
          CHECK(r.size == record_header_size + 12 + 10);
          break;
        case 3:
          CHECK(r.type == record_type::ack);
          CHECK(r.msg_id == 42);
          break;
        case 4:
          CHECK(r.type == record_type::drop_queue);
          CHECK(r.queue_id == 0xFFFFFFFFu);
          break;
        case 5:
          CHECK(r.type == record_type::publish);
          CHECK(r.payload.empty());
          break;
        case 6:
          CHECK(r.type == record_type::meta_put);
          CHECK(r.key.empty());
          break;
      }
      CHECK(r.flags == 0);
      p += r.size;
      ++n;
    }
    CHECK(n == 7);
  }

  TEST_CASE(
    "record layout is little-endian length then crc then type then body") {
    uint32_t seed = crc_seed(1);
    std::string buf;
    encode_ack(buf, seed, 0x01020304, 0x05);
    REQUIRE(buf.size() == 21);
    CHECK(buf.substr(0, 4) == std::string("\x0c\x00\x00\x00", 4));
    CHECK(buf[8] == 4);
    CHECK(buf.substr(9, 4) == std::string("\x04\x03\x02\x01", 4));
    uint32_t crc = crc32c_extend(seed, buf.data() + 8, 13);
    uint32_t stored;
    std::memcpy(&stored, buf.data() + 4, 4); // host is little-endian here
    CHECK(stored == crc);
  }

  TEST_CASE("decoder rejects damage") {
    uint32_t seed = crc_seed(99);
    std::string good;
    encode_publish(good, seed, 3, 4, "payload");
    record r;
    SUBCASE("any flipped bit fails the checksum or the length") {
      for (size_t i = 0; i < good.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
          auto bad = good;
          bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
          auto st = decode_record(bad, seed, r);
          CHECK(st != decode_status::ok);
        }
      }
    }
    SUBCASE("another salt fails the checksum") {
      CHECK(decode_record(good, crc_seed(100), r)
            == decode_status::bad_checksum);
    }
    SUBCASE("huge length") {
      auto bad = good;
      bad[3] = '\x7f';
      CHECK(decode_record(bad, seed, r) == decode_status::bad_length);
    }
    SUBCASE("unknown type with a valid checksum") {
      auto bad = good;
      bad[8] = 9;
      set_batch_flags(bad.data(), 0, seed);
      CHECK(decode_record(bad, seed, r) == decode_status::bad_type);
    }
    SUBCASE("ack body of the wrong size") {
      std::string b;
      encode_publish(b, seed, 1, 2, "x"); // 13-byte body
      b[8] = static_cast<char>(record_type::ack);
      set_batch_flags(b.data(), 0, seed);
      CHECK(decode_record(b, seed, r) == decode_status::bad_body);
    }
    SUBCASE("meta_put key longer than its body") {
      std::string b;
      encode_meta_put(b, seed, "k", "v");
      b[9] = 5;
      set_batch_flags(b.data(), 0, seed);
      CHECK(decode_record(b, seed, r) == decode_status::bad_body);
    }
    SUBCASE("all zeros") {
      std::string z(64, '\0');
      CHECK(decode_record(z, seed, r) != decode_status::ok);
    }
  }

  TEST_CASE("batch flags are kept in the type byte and checksummed") {
    uint32_t seed = crc_seed(5);
    std::string buf;
    encode_ack(buf, seed, 1, 2);
    set_batch_flags(buf.data(), batch_first_flag | batch_last_flag, seed);
    record r;
    REQUIRE(decode_record(buf, seed, r) == decode_status::ok);
    CHECK(r.type == record_type::ack);
    CHECK(r.flags == (batch_first_flag | batch_last_flag));
    set_batch_flags(buf.data(), batch_last_flag, seed);
    REQUIRE(decode_record(buf, seed, r) == decode_status::ok);
    CHECK(r.flags == batch_last_flag);
  }

  TEST_CASE("segment header round-trips and rejects damage") {
    std::string h;
    encode_segment_header(h, segment_header{0xCAFEBABE, 12345, 678});
    REQUIRE(h.size() == segment_header_size);
    CHECK(h.substr(0, 4) == "FLTJ");
    segment_header out;
    REQUIRE(decode_segment_header(h, out) == header_status::ok);
    CHECK(out.salt == 0xCAFEBABE);
    CHECK(out.first_seq == 12345);
    CHECK(out.next_msg_id == 678);
    for (size_t k = 0; k < h.size(); ++k)
      CHECK(decode_segment_header(h.substr(0, k), out)
            == header_status::incomplete);
    auto bad = h;
    bad[0] = 'X';
    CHECK(decode_segment_header(bad, out) == header_status::bad_magic);
    bad = h;
    bad[20] ^= 1;
    CHECK(decode_segment_header(bad, out) == header_status::bad_checksum);
    bad = h;
    bad[4] = 2; // version 2, with a valid crc
    uint32_t crc = crc32c(bad.data(), 28);
    std::memcpy(bad.data() + 28, &crc, 4);
    CHECK(decode_segment_header(bad, out)
          == header_status::unsupported_version);
  }

} // TEST_SUITE
