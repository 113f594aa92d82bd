#include "protocol/errc.hpp"

namespace flotilla {

namespace {

struct errc_info {
  uint16_t code;
  const char* name;
};

// Indexed by the enum value; keep in enum order.
constexpr errc_info errc_table[] = {
  {200, "REPLY_SUCCESS"},     {311, "CONTENT_TOO_LARGE"},
  {312, "NO_ROUTE"},          {313, "NO_CONSUMERS"},
  {320, "CONNECTION_FORCED"}, {402, "INVALID_PATH"},
  {403, "ACCESS_REFUSED"},    {404, "NOT_FOUND"},
  {405, "RESOURCE_LOCKED"},   {406, "PRECONDITION_FAILED"},
  {501, "FRAME_ERROR"},       {502, "SYNTAX_ERROR"},
  {503, "COMMAND_INVALID"},   {504, "CHANNEL_ERROR"},
  {505, "UNEXPECTED_FRAME"},  {506, "RESOURCE_ERROR"},
  {530, "NOT_ALLOWED"},       {540, "NOT_IMPLEMENTED"},
  {541, "INTERNAL_ERROR"},
};

constexpr size_t errc_count = sizeof(errc_table) / sizeof(errc_table[0]);
static_assert(errc_count == static_cast<size_t>(errc::internal_error) + 1,
              "errc_table must list every errc in enum order");

const errc_info& info(errc e) {
  auto i = static_cast<size_t>(e);
  // Out-of-range values (a cast from a bad integer) read as internal_error.
  return i < errc_count ? errc_table[i] : errc_table[errc_count - 1];
}

} // namespace

uint16_t reply_code(errc e) {
  return info(e).code;
}

bool is_connection_error(errc e) {
  auto code = reply_code(e);
  return code == 320 || code == 402 || code >= 500;
}

const char* to_string(errc e) {
  return info(e).name;
}

std::optional<errc> errc_from_reply_code(uint16_t code) {
  for (size_t i = 0; i < errc_count; ++i)
    if (errc_table[i].code == code)
      return static_cast<errc>(i);
  return std::nullopt;
}

} // namespace flotilla
