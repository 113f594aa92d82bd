#include "actors/dead_letter.hpp"

#include <doctest/doctest.h>

#include <string>

#include "protocol/field_table.hpp"

using namespace flotilla;
using protocol::field_array;
using protocol::field_table;
using protocol::field_value;

namespace {

message make_original() {
  message m;
  m.exchange = "orders";
  m.routing_key = "order.created";
  m.body = "payload";
  m.raw_header = "raw";
  m.properties.content_type = "text/plain";
  m.properties.priority = 3;
  m.published_at = 5;
  return m;
}

const field_table& headers_of(const message& m) {
  REQUIRE(m.properties.headers);
  return *m.properties.headers;
}

const field_array& deaths_of(const message& m) {
  auto* v = headers_of(m).find("x-death");
  REQUIRE(v != nullptr);
  REQUIRE(v->as_array() != nullptr);
  return *v->as_array();
}

const field_table& death(const message& m, size_t i) {
  auto& deaths = deaths_of(m);
  REQUIRE(i < deaths.size());
  REQUIRE(deaths[i].as_table() != nullptr);
  return *deaths[i].as_table();
}

std::string str(const field_table& t, std::string_view key) {
  auto* v = t.find(key);
  REQUIRE(v != nullptr);
  CHECK(v->tag() == 'S');
  REQUIRE(v->as_string() != nullptr);
  return *v->as_string();
}

int64_t count_of(const field_table& t) {
  auto* v = t.find("count");
  REQUIRE(v != nullptr);
  CHECK(v->tag() == 'l');
  return v->as_int().value_or(-1);
}

} // namespace

TEST_SUITE("queue") {

  TEST_CASE("first dead-lettering builds x-death and x-first-death") {
    auto original = make_original();
    auto copy = make_dead_lettered(original, "q1", dead_letter_reason::rejected,
                                   1234567, std::nullopt, "dlx");
    REQUIRE(copy.get() != nullptr);
    CHECK(copy->exchange == "dlx");
    CHECK(copy->routing_key == "order.created");
    CHECK(copy->body == "payload");
    CHECK(copy->raw_header.empty());
    CHECK(copy->published_at == 1234567);
    CHECK(copy->properties.content_type == std::string{"text/plain"});
    CHECK(copy->properties.priority == uint8_t{3});
    CHECK_FALSE(original.properties.headers); // The original is untouched.
    REQUIRE(deaths_of(*copy).size() == 1);
    auto& d = death(*copy, 0);
    CHECK(count_of(d) == 1);
    CHECK(str(d, "reason") == "rejected");
    CHECK(str(d, "queue") == "q1");
    CHECK(str(d, "exchange") == "orders");
    auto* time = d.find("time");
    REQUIRE(time != nullptr);
    CHECK(*time == field_value{protocol::timestamp_value{1234}});
    auto* keys = d.find("routing-keys");
    REQUIRE(keys != nullptr);
    CHECK(*keys == field_value{field_array{field_value{"order.created"}}});
    CHECK(d.find("original-expiration") == nullptr);
    auto& h = headers_of(*copy);
    CHECK(str(h, "x-first-death-reason") == "rejected");
    CHECK(str(h, "x-first-death-queue") == "q1");
    CHECK(str(h, "x-first-death-exchange") == "orders");
    CHECK(str(h, "x-last-death-reason") == "rejected");
    CHECK(str(h, "x-last-death-queue") == "q1");
    CHECK(str(h, "x-last-death-exchange") == "orders");
  }

  TEST_CASE("the exchange defaults to empty") {
    auto copy = make_dead_lettered(make_original(), "q",
                                   dead_letter_reason::maxlen, 0, std::nullopt);
    CHECK(copy->exchange.empty());
    CHECK(str(death(*copy, 0), "reason") == "maxlen");
    CHECK(std::string{to_string(dead_letter_reason::expired)} == "expired");
  }

  TEST_CASE("expiration moves into original-expiration") {
    auto original = make_original();
    original.properties.expiration = "60000";
    auto copy = make_dead_lettered(original, "q", dead_letter_reason::expired,
                                   0, std::nullopt);
    CHECK_FALSE(copy->properties.expiration);
    CHECK(str(death(*copy, 0), "original-expiration") == "60000");
    CHECK(str(death(*copy, 0), "reason") == "expired");
  }

  TEST_CASE("CC and BCC keys are recorded; a DLX routing key drops CC") {
    auto original = make_original();
    original.properties.headers = field_table{
      {"CC", field_array{field_value{"cc1"}, field_value{"cc2"}}},
      {"BCC", field_array{field_value{"bcc"}}},
      {"other", int32_t{7}},
    };
    SUBCASE("keeping the routing key") {
      auto copy = make_dead_lettered(original, "q", dead_letter_reason::expired,
                                     0, std::nullopt);
      CHECK(copy->routing_key == "order.created");
      CHECK(*death(*copy, 0).find("routing-keys")
            == field_value{field_array{field_value{"order.created"},
                                       field_value{"cc1"}, field_value{"cc2"},
                                       field_value{"bcc"}}});
      CHECK(headers_of(*copy).find("CC") != nullptr);
      CHECK(headers_of(*copy).find("other") != nullptr);
    }
    SUBCASE("with x-dead-letter-routing-key") {
      auto copy = make_dead_lettered(original, "q", dead_letter_reason::expired,
                                     0, std::string{"retry"});
      CHECK(copy->routing_key == "retry");
      CHECK(*death(*copy, 0).find("routing-keys")
            == field_value{field_array{field_value{"order.created"},
                                       field_value{"cc1"}, field_value{"cc2"},
                                       field_value{"bcc"}}});
      CHECK(headers_of(*copy).find("CC") == nullptr);
      CHECK(headers_of(*copy).find("other") != nullptr);
    }
  }

  TEST_CASE("repeated dead-lettering counts per queue and reason") {
    // q1 rejects -> dlx -> q2 expires -> q1 -> q1 rejects again.
    auto first
      = make_dead_lettered(make_original(), "q1", dead_letter_reason::rejected,
                           1000, std::nullopt, "dlx");
    auto second = make_dead_lettered(*first, "q2", dead_letter_reason::expired,
                                     2000, std::string{"back"}, "dlx2");
    REQUIRE(deaths_of(*second).size() == 2);
    CHECK(str(death(*second, 0), "queue") == "q2");
    CHECK(str(death(*second, 0), "exchange") == "dlx");
    CHECK(*death(*second, 0).find("routing-keys")
          == field_value{field_array{field_value{"order.created"}}});
    CHECK(str(death(*second, 1), "queue") == "q1");
    CHECK(second->routing_key == "back");
    auto& h2 = headers_of(*second);
    CHECK(str(h2, "x-first-death-queue") == "q1");
    CHECK(str(h2, "x-first-death-reason") == "rejected");
    CHECK(str(h2, "x-first-death-exchange") == "orders");
    CHECK(str(h2, "x-last-death-queue") == "q2");
    CHECK(str(h2, "x-last-death-reason") == "expired");
    CHECK(str(h2, "x-last-death-exchange") == "dlx");

    auto third = make_dead_lettered(*second, "q1", dead_letter_reason::rejected,
                                    3000, std::nullopt, "dlx");
    REQUIRE(deaths_of(*third).size() == 2);
    auto& d0 = death(*third, 0);
    CHECK(str(d0, "queue") == "q1");
    CHECK(str(d0, "reason") == "rejected");
    CHECK(count_of(d0) == 2);
    // The entry keeps the time and exchange of its first death.
    CHECK(*d0.find("time") == field_value{protocol::timestamp_value{1}});
    CHECK(str(d0, "exchange") == "orders");
    CHECK(str(death(*third, 1), "queue") == "q2");
    CHECK(count_of(death(*third, 1)) == 1);
    auto& h3 = headers_of(*third);
    CHECK(str(h3, "x-first-death-queue") == "q1");
    CHECK(str(h3, "x-last-death-queue") == "q1");
    CHECK(str(h3, "x-last-death-exchange") == "dlx2");

    // Same queue, other reason: a new entry in front.
    auto fourth = make_dead_lettered(*third, "q1", dead_letter_reason::expired,
                                     4000, std::nullopt);
    REQUIRE(deaths_of(*fourth).size() == 3);
    CHECK(str(death(*fourth, 0), "reason") == "expired");
    CHECK(count_of(death(*fourth, 0)) == 1);
    CHECK(count_of(death(*fourth, 1)) == 2);
  }

  TEST_CASE("duplicate x-death entries from old brokers merge") {
    auto original = make_original();
    field_table old{
      {"count", int64_t{2}}, {"reason", "expired"}, {"queue", "q"}};
    field_table other{
      {"count", int64_t{1}}, {"reason", "rejected"}, {"queue", "q"}};
    field_table no_count{{"reason", "expired"}, {"queue", "q"}};
    original.properties.headers
      = field_table{{"x-death", field_array{old, other, no_count}}};
    auto copy = make_dead_lettered(original, "q", dead_letter_reason::expired,
                                   0, std::nullopt);
    REQUIRE(deaths_of(*copy).size() == 2);
    CHECK(count_of(death(*copy, 0)) == 4);
    CHECK(str(death(*copy, 1), "reason") == "rejected");
    // x-death existed: x-first-death-* are not invented afterwards.
    CHECK(headers_of(*copy).find("x-first-death-reason") == nullptr);
  }

  TEST_CASE("dead-letter cycles without rejections are detected") {
    // q1 expires into q2, q2 expires back into q1: a cycle.
    auto a = make_dead_lettered(make_original(), "q1",
                                dead_letter_reason::expired, 0, std::nullopt);
    CHECK_FALSE(is_dead_letter_cycle(*a, dead_letter_reason::expired, "q2"));
    CHECK(is_dead_letter_cycle(*a, dead_letter_reason::expired, "q1"));
    auto b = make_dead_lettered(*a, "q2", dead_letter_reason::expired, 0,
                                std::nullopt);
    CHECK(is_dead_letter_cycle(*b, dead_letter_reason::expired, "q1"));
    CHECK(is_dead_letter_cycle(*b, dead_letter_reason::maxlen, "q2"));
    CHECK_FALSE(is_dead_letter_cycle(*b, dead_letter_reason::expired, "q3"));
    // A rejection is never a cycle, and one on the way breaks it (the
    // classic retry loop: work rejects -> retry queue expires -> work).
    CHECK_FALSE(is_dead_letter_cycle(*b, dead_letter_reason::rejected, "q1"));
    auto r = make_dead_lettered(make_original(), "work",
                                dead_letter_reason::rejected, 0, std::nullopt);
    auto back = make_dead_lettered(*r, "retry", dead_letter_reason::expired, 0,
                                   std::nullopt);
    CHECK_FALSE(
      is_dead_letter_cycle(*back, dead_letter_reason::expired, "work"));
    CHECK(is_dead_letter_cycle(*back, dead_letter_reason::expired, "retry"));
    CHECK_FALSE(
      is_dead_letter_cycle(make_original(), dead_letter_reason::expired, "q1"));
  }

} // TEST_SUITE
