#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "protocol/field_table.hpp"
#include "test_util.hpp"

using namespace flotilla;
using namespace flotilla::protocol;
using flotilla::protocol::test::bytes;

namespace {

field_table every_type_table() {
  field_table t;
  t.set("void", field_value{});
  t.set("bool", true);
  t.set("i8", int8_t{-5});
  t.set("u8", uint8_t{250});
  t.set("i16", int16_t{-30000});
  t.set("u16", uint16_t{65000});
  t.set("i32", int32_t{-2000000000});
  t.set("u32", uint32_t{4000000000u});
  t.set("i64", int64_t{-9000000000000000000});
  t.set("float", 1.5f);
  t.set("double", -2.25);
  t.set("decimal", decimal_value{2, 31415});
  t.set("string", std::string("hello\0world", 11));
  t.set("bytes", byte_array{std::string("\x00\xff\x01", 3)});
  t.set("array", field_array{1, "two", field_array{false}, field_value{}});
  t.set("timestamp", timestamp_value{1700000000});
  t.set("table", field_table{{"nested", field_table{{"deep", 42}}}});
  return t;
}

errc decode_table_bytes(std::string_view in, field_table& out) {
  return decode_field_table(in, out);
}

} // namespace

TEST_SUITE("protocol") {

  TEST_CASE("field table: every type round-trips") {
    auto t = every_type_table();
    std::string buf;
    encode_field_table(buf, t);
    buf += "trailing";
    std::string_view in = buf;
    field_table back;
    REQUIRE(decode_field_table(in, back) == errc::none);
    CHECK(in == "trailing");
    CHECK(back == t);
    REQUIRE(back.size() == 17);
    // Each value came back with its own type.
    const char expected_tags[] = "VtbBsuIilfdDSxATF";
    for (size_t i = 0; i < back.size(); ++i)
      CHECK(back.entries[i].second.tag() == expected_tags[i]);
  }

  TEST_CASE("field table: known bytes") {
    field_table t{{"a", 1}, {"bb", "xy"}};
    std::string buf;
    encode_field_table(buf, t);
    CHECK(buf == bytes({0, 0,   0,   17,           // length
                        1, 'a', 'I', 0,   0, 0, 1, // a: I 1
                        2, 'b', 'b', 'S', 0, 0, 0, 2, 'x', 'y'}));
    // Empty table: just the length.
    buf.clear();
    encode_field_table(buf, field_table{});
    CHECK(buf == bytes({0, 0, 0, 0}));
  }

  TEST_CASE("field table: tags as RabbitMQ reads them") {
    // 's' is signed 16, 'l' and 'L' signed 64, 'x' byte array, 't' any
    // non-zero octet is true.
    auto in_bytes
      = bytes({0,   0,    0,    39,   1,    's',  's',  0xff, 0xfe, 1, 'l',
               'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 'L',
               'L', 0,    0,    0,    0,    0,    0,    0,    7,    1, 'x',
               'x', 0,    0,    0,    1,    'z',  1,    't',  't',  2});
    std::string_view in = in_bytes;
    field_table t;
    REQUIRE(decode_field_table(in, t) == errc::none);
    CHECK(in.empty());
    CHECK(t.find("s")->value == field_value::variant_type{int16_t{-2}});
    CHECK(t.find("l")->value == field_value::variant_type{int64_t{-1}});
    CHECK(t.find("L")->value == field_value::variant_type{int64_t{7}});
    CHECK(t.find("x")->value == field_value::variant_type{byte_array{"z"}});
    CHECK(t.find("t")->as_bool() == true);
  }

  TEST_CASE("field table: nested tables and arrays round-trip") {
    field_value v = field_table{};
    auto* cur = &std::get<field_table>(v.value);
    for (int i = 0; i < 20; ++i) {
      cur->set("arr", field_array{i, field_table{{"k", int64_t{i}}}});
      cur->set("next", field_table{});
      cur = &std::get<field_table>(cur->find("next")->value);
    }
    field_table outer{{"root", v}};
    std::string buf;
    encode_field_table(buf, outer);
    std::string_view in = buf;
    field_table back;
    REQUIRE(decode_field_table(in, back) == errc::none);
    CHECK(back == outer);

    field_array arr{1, field_array{2, field_array{3}}, "s"};
    buf.clear();
    encode_field_array(buf, arr);
    in = buf;
    field_array arr_back;
    REQUIRE(decode_field_array(in, arr_back) == errc::none);
    CHECK(arr_back == arr);

    buf.clear();
    encode_field_value(buf, field_value{uint16_t{7}});
    CHECK(buf == bytes({'u', 0, 7}));
    in = buf;
    field_value one;
    REQUIRE(decode_field_value(in, one) == errc::none);
    CHECK(one == field_value{uint16_t{7}});
  }

  TEST_CASE("field table: nesting depth is limited") {
    auto nest = [](int depth) {
      field_table t;
      for (int i = 1; i < depth; ++i)
        t = field_table{{"t", std::move(t)}};
      std::string buf;
      encode_field_table(buf, t);
      return buf;
    };
    field_table out;
    CHECK(decode_table_bytes(nest(max_field_depth), out) == errc::none);
    CHECK(decode_table_bytes(nest(max_field_depth + 1), out)
          == errc::syntax_error);
    // Arrays count too.
    field_value v = field_array{};
    for (int i = 1; i < max_field_depth + 1; ++i)
      v = field_array{std::move(v)};
    std::string buf;
    encode_field_table(buf, field_table{{"a", v}});
    CHECK(decode_table_bytes(buf, out) == errc::syntax_error);
  }

  TEST_CASE("field table: malformed input is a syntax error") {
    field_table out;
    // Length beyond the input.
    CHECK(decode_table_bytes(bytes({0, 0, 0, 9, 1, 'a', 'V'}), out)
          == errc::syntax_error);
    // Truncated length.
    CHECK(decode_table_bytes(bytes({0, 0, 0}), out) == errc::syntax_error);
    // Unknown tag.
    CHECK(decode_table_bytes(bytes({0, 0, 0, 3, 1, 'a', 'Q'}), out)
          == errc::syntax_error);
    // Value cut short by the table length.
    CHECK(decode_table_bytes(bytes({0, 0, 0, 5, 1, 'a', 'I', 0, 0, 0, 0}), out)
          == errc::syntax_error);
    // Name length beyond the table.
    CHECK(decode_table_bytes(bytes({0, 0, 0, 2, 5, 'a'}), out)
          == errc::syntax_error);
    // Nested long string longer than the enclosing table.
    CHECK(decode_table_bytes(bytes({0,   0, 0, 8, 1, 'a', 'S', 0, 0, 0, 9,
                                    'x', 0, 0, 0, 0, 0,   0,   0, 0, 0, 0}),
                             out)
          == errc::syntax_error);
    // Huge announced length must not allocate or crash.
    CHECK(decode_table_bytes(bytes({0xff, 0xff, 0xff, 0xff, 1}), out)
          == errc::syntax_error);
    // A name but no tag.
    CHECK(decode_table_bytes(bytes({0, 0, 0, 2, 1, 'a'}), out)
          == errc::syntax_error);
  }

  TEST_CASE("field value helpers") {
    CHECK(field_value{int8_t{-3}}.as_int() == -3);
    CHECK(field_value{uint32_t{4000000000u}}.as_int() == 4000000000);
    CHECK(field_value{int64_t{-1}}.as_int() == -1);
    CHECK_FALSE(field_value{true}.as_int());
    CHECK_FALSE(field_value{1.0}.as_int());
    CHECK_FALSE(field_value{timestamp_value{1}}.as_int());
    CHECK(*field_value{"s"}.as_string() == "s");
    CHECK(*field_value{byte_array{"b"}}.as_string() == "b");
    CHECK(field_value{1}.as_string() == nullptr);
    CHECK(field_value{field_table{}}.as_table() != nullptr);
    CHECK(field_value{field_array{}}.as_array() != nullptr);
    CHECK(field_value{false}.as_bool() == false);
    CHECK_FALSE(field_value{0}.as_bool());
    CHECK(field_value{}.is_void());
    CHECK(field_value{5} == field_value{int32_t{5}});
    CHECK(field_value{5} != field_value{int64_t{5}}); // types differ
    CHECK(field_value{std::string_view{"v"}} == field_value{"v"});

    field_table t;
    t.set("a", 1);
    t.set("b", 2);
    t.set("a", 3);
    REQUIRE(t.size() == 2);
    CHECK(t.find("a")->as_int() == 3);
    CHECK(t.find("c") == nullptr);
    t.entries.emplace_back("a", 4);
    CHECK(t.find("a")->as_int() == 3); // first wins
    CHECK(t.erase("a") == 2);
    CHECK(t.size() == 1);
    CHECK(t.find("b")->as_int() == 2);
  }

  TEST_CASE("field values: float and double keep their bits") {
    field_table t{{"nan", std::numeric_limits<double>::quiet_NaN()},
                  {"inf", -std::numeric_limits<float>::infinity()},
                  {"neg0", -0.0}};
    std::string buf;
    encode_field_table(buf, t);
    std::string_view in = buf;
    field_table back;
    REQUIRE(decode_field_table(in, back) == errc::none);
    CHECK(std::isnan(std::get<double>(back.find("nan")->value)));
    CHECK(std::get<float>(back.find("inf")->value)
          == -std::numeric_limits<float>::infinity());
    CHECK(std::signbit(std::get<double>(back.find("neg0")->value)));
    std::string again;
    encode_field_table(again, back);
    CHECK(again == buf);
  }

  TEST_CASE("field table: describe") {
    field_table t{{"x-max-length", 10},
                  {"name", "q\"1"},
                  {"on", true},
                  {"list", field_array{1, field_value{}}}};
    CHECK(describe(t)
          == R"({"x-max-length": 10, "name": "q\"1", "on": true, )"
             R"("list": [1, void]})");
  }

} // TEST_SUITE
