// Hot-path allocation checks. Replaces the global operator new/delete of the
// test binary with counting versions; counting is on only between
// start_counting() and stop_counting().

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "protocol/command_assembler.hpp"
#include "protocol/frame.hpp"
#include "protocol/methods.hpp"

namespace {

std::atomic<bool> counting{false};
std::atomic<size_t> allocations{0};

void start_counting() {
  allocations = 0;
  counting = true;
}

size_t stop_counting() {
  counting = false;
  return allocations.load();
}

} // namespace

void* operator new(std::size_t n) {
  if (counting)
    ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc{};
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

using namespace flotilla;
using namespace flotilla::protocol;

TEST_SUITE("protocol") {

  TEST_CASE("hot path: the allocation counter works") {
    start_counting();
    std::string s(1000, 'x');
    auto n = stop_counting();
    CHECK(s.size() == 1000);
    CHECK(n >= 1);
  }

  TEST_CASE("hot path: small methods decode without allocating") {
    std::string wire;
    append_method_frame(wire, 1, basic_ack{12345, true});
    queue_declare qd;
    qd.queue = "short-name";
    append_method_frame(wire, 1, qd);
    append_method_frame(wire, 1, basic_qos{0, 10, false});
    append_heartbeat_frame(wire);

    frame_decoder dec{131072};
    command_assembler assembler;
    size_t commands = 0;
    uint64_t last_tag = 0;
    start_counting();
    auto e = dec.feed(wire.data(), wire.size(), [&](const frame_view& f) {
      return assembler.on_frame(f, [&](command&& c) {
        ++commands;
        if (auto* ack = std::get_if<basic_ack>(&c.m))
          last_tag = ack->delivery_tag;
        return errc::none;
      });
    });
    auto n = stop_counting();
    CHECK(e == errc::none);
    CHECK(commands == 3);
    CHECK(last_tag == 12345);
    CHECK(n == 0);
  }

  TEST_CASE("hot path: encoding into a reserved buffer does not allocate") {
    std::string out;
    out.reserve(4096);
    start_counting();
    append_method_frame(out, 1, basic_deliver{"ctag", 1, false, "ex", "rk"});
    append_method_frame(out, 1, basic_ack{1, false});
    append_heartbeat_frame(out);
    auto n = stop_counting();
    CHECK(n == 0);
  }

} // TEST_SUITE
