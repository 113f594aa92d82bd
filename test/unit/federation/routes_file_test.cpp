#include "federation/routes_file.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

using namespace flotilla::federation;

namespace {

durable_routes sample() {
  durable_routes r;
  link_config l;
  l.name = "localhost:10002";
  l.host = "127.0.0.1";
  l.port = 41000;
  l.user = "fed user";
  l.password = "p%s~w\nd";
  l.durable = true;
  r.links.push_back(l);
  bridge_config b;
  b.name = "localhost:10002/amq.direct/";
  b.link = l.name;
  b.vhost = "/";
  b.exchange = "amq.direct";
  b.key = "";
  b.credit = 7;
  b.max_hops = 3;
  b.durable = true;
  r.bridges.push_back(b);
  b.name = "localhost:10002/queue/orders";
  b.queue = "orders";
  b.dynamic = true;
  b.src_local = true;
  r.bridges.push_back(b);
  return r;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/flotilla-routes-XXXXXX";
  auto* d = mkdtemp(tmpl);
  REQUIRE(d != nullptr);
  return d;
}

} // namespace

TEST_SUITE("federation") {
  TEST_CASE("the routes file round-trips every field") {
    auto r = sample();
    auto bytes = encode_routes(r);
    CHECK(bytes.rfind("flotilla-federation-routes 1\n", 0) == 0);
    durable_routes back;
    std::string error;
    REQUIRE_MESSAGE(decode_routes(bytes, back, error), error);
    REQUIRE(back.links.size() == 1);
    REQUIRE(back.bridges.size() == 2);
    CHECK(back.links[0] == r.links[0]);
    CHECK(back.bridges[0] == r.bridges[0]);
    CHECK(back.bridges[1] == r.bridges[1]);
    CHECK(encode_routes(back) == bytes);
    // An empty set is a valid file too.
    REQUIRE(decode_routes(encode_routes({}), back, error));
    CHECK(back.links.empty());
  }

  TEST_CASE("a damaged routes file is refused with the line") {
    auto bytes = encode_routes(sample());
    durable_routes back;
    std::string error;
    // Truncated anywhere: refused.
    for (size_t n = 0; n < bytes.size(); ++n) {
      CHECK_FALSE(decode_routes(bytes.substr(0, n), back, error));
      CHECK(back.links.empty());
    }
    // One byte changed: refused (field syntax or checksum).
    for (size_t i = 0; i < bytes.size(); ++i) {
      auto copy = bytes;
      copy[i] = static_cast<char>(copy[i] ^ 0x01);
      CHECK_FALSE(decode_routes(copy, back, error));
    }
    CHECK_FALSE(decode_routes(bytes + "link x\n", back, error));
    CHECK(error.find("after the end") != std::string::npos);
    CHECK_FALSE(decode_routes("hello\n", back, error));
    CHECK(error.find("line 1") == 0);
  }

  TEST_CASE("the routes file is saved and loaded, and names itself") {
    auto dir = temp_dir();
    auto path = dir + "/federation.routes";
    durable_routes back;
    std::string error;
    // No file yet: nothing durable.
    REQUIRE(load_routes_file(path, back, error));
    CHECK(back.links.empty());
    REQUIRE_MESSAGE(save_routes_file(path, sample(), error), error);
    REQUIRE_MESSAGE(load_routes_file(path, back, error), error);
    CHECK(back.bridges.size() == 2);
    CHECK(access((path + ".tmp").c_str(), F_OK) != 0);
    {
      std::ofstream f{path, std::ios::app};
      f << "garbage\n";
    }
    CHECK_FALSE(load_routes_file(path, back, error));
    CHECK(error.find(path) == 0);
    CHECK(error.find("corrupt") != std::string::npos);
    std::remove(path.c_str());
    rmdir(dir.c_str());
  }
}
