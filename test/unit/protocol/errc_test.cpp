#include <doctest/doctest.h>

#include <cstring>

#include "protocol/errc.hpp"

using flotilla::errc;

TEST_SUITE("protocol") {

  TEST_CASE("errc maps to AMQP reply codes and scopes and names") {
    struct row {
      errc e;
      uint16_t code;
      bool connection;
      const char* name;
    };
    const row rows[] = {
      {errc::none, 200, false, "REPLY_SUCCESS"},
      {errc::content_too_large, 311, false, "CONTENT_TOO_LARGE"},
      {errc::no_route, 312, false, "NO_ROUTE"},
      {errc::no_consumers, 313, false, "NO_CONSUMERS"},
      {errc::connection_forced, 320, true, "CONNECTION_FORCED"},
      {errc::invalid_path, 402, true, "INVALID_PATH"},
      {errc::access_refused, 403, false, "ACCESS_REFUSED"},
      {errc::not_found, 404, false, "NOT_FOUND"},
      {errc::resource_locked, 405, false, "RESOURCE_LOCKED"},
      {errc::precondition_failed, 406, false, "PRECONDITION_FAILED"},
      {errc::frame_error, 501, true, "FRAME_ERROR"},
      {errc::syntax_error, 502, true, "SYNTAX_ERROR"},
      {errc::command_invalid, 503, true, "COMMAND_INVALID"},
      {errc::channel_error, 504, true, "CHANNEL_ERROR"},
      {errc::unexpected_frame, 505, true, "UNEXPECTED_FRAME"},
      {errc::resource_error, 506, true, "RESOURCE_ERROR"},
      {errc::not_allowed, 530, true, "NOT_ALLOWED"},
      {errc::not_implemented, 540, true, "NOT_IMPLEMENTED"},
      {errc::internal_error, 541, true, "INTERNAL_ERROR"},
    };
    for (auto& r : rows) {
      CAPTURE(r.code);
      CHECK(flotilla::reply_code(r.e) == r.code);
      CHECK(flotilla::is_connection_error(r.e) == r.connection);
      CHECK(std::strcmp(flotilla::to_string(r.e), r.name) == 0);
      CHECK(flotilla::errc_from_reply_code(r.code) == r.e);
    }
    CHECK_FALSE(flotilla::errc_from_reply_code(0).has_value());
    CHECK_FALSE(flotilla::errc_from_reply_code(999).has_value());
    CHECK(sizeof(errc) == 1);
  }

} // TEST_SUITE
