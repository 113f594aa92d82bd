#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/field_table.hpp"

namespace flotilla::protocol {

/// Returns true if `routing_key` matches the topic binding key `pattern`.
/// Both are split into words at every '.'; the empty string has no words,
/// while "a." has two ("a" and ""). In the pattern, a word "*" matches
/// exactly one word (possibly empty) and "#" matches zero or more words; any
/// other word must be equal. So "a.*" does not match "a", "#" matches "",
/// "a.#" matches "a", "*.b" matches ".b". Runs in O(|pattern| * |key|) time
/// without allocating.
bool topic_match(std::string_view pattern, std::string_view routing_key);

/// The x-match modes of a headers exchange binding.
enum class headers_match_kind {
  all,        ///< every binding entry matches ("x-" keys ignored); default
  any,        ///< at least one binding entry matches ("x-" keys ignored)
  all_with_x, ///< like all, but "x-" keys count too (except x-match)
  any_with_x, ///< like any, but "x-" keys count too (except x-match)
};

/// Returns the mode named by the binding's "x-match" argument: all when
/// absent, nullopt when it is not a long string 'S' holding "all", "any",
/// "all-with-x" or "any-with-x" (RabbitMQ refuses such a binding with 406
/// PRECONDITION_FAILED at bind time).
std::optional<headers_match_kind>
headers_match_kind_of(const field_table& binding_arguments);

/// Returns the rendering used in x-match: "all", "any", ...
const char* to_string(headers_match_kind k);

/// Returns true if a message with `message_headers` (null: no headers
/// property, treated as an empty table) matches a headers-exchange binding
/// with `binding_arguments`, like RabbitMQ:
/// - the mode comes from x-match (an invalid one routes as all);
/// - for all/any, binding keys starting with "x-" are ignored; for
///   all-with-x/any-with-x only "x-match" is;
/// - a binding entry of type void ('V') matches when the key is present
///   with any value; otherwise the header must hold an equal value, where
///   values compare as RabbitMQ compares them: integers of any width (and
///   timestamps) by number, 'S' and 'x' by bytes, 'f' and 'd' by number,
///   everything else by type and value;
/// - all with no counted entries matches every message, any matches none.
/// For duplicate header keys the first one counts.
bool headers_match(const field_table& binding_arguments,
                   const field_table* message_headers);

} // namespace flotilla::protocol
