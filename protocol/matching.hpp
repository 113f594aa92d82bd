#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// Topic-exchange bindings indexed by pattern words, so routing a key visits
/// only the branches its words can match instead of every binding. Holds
/// (pattern, id) pairs; ids are the caller's (e.g. a binding or queue index).
/// Matching semantics are exactly topic_match's. Owned by one exchange; not
/// thread-safe (const members may run concurrently with each other).
class topic_trie {
public:
  topic_trie();

  /// Adds (pattern, id). Returns false if that pair was present already.
  bool insert(std::string_view pattern, uint64_t id);

  /// Removes (pattern, id) and prunes emptied nodes. Returns false if the
  /// pair was not present.
  bool erase(std::string_view pattern, uint64_t id);

  /// Appends to `out` the ids of all patterns that match `routing_key`,
  /// sorted ascending and without duplicates (an id bound through several
  /// matching patterns is reported once). Elements already in `out` are left
  /// alone. Memoised, so patterns full of '#' stay polynomial.
  void match(std::string_view routing_key, std::vector<uint64_t>& out) const;

  /// Returns the number of (pattern, id) pairs.
  size_t size() const {
    return size_;
  }

  bool empty() const {
    return size_ == 0;
  }

  void clear();

private:
  static constexpr uint32_t no_node = UINT32_MAX;

  struct node {
    std::string word; ///< Edge label from the parent.
    uint32_t parent = no_node;
    uint32_t star = no_node; ///< Child for the word "*".
    uint32_t hash = no_node; ///< Child for the word "#".
    std::map<std::string, uint32_t, std::less<>> children; ///< Other words.
    std::vector<uint64_t> ids; ///< Sorted; patterns that end here.
  };

  struct match_state;

  uint32_t new_node(uint32_t parent, std::string_view word);
  uint32_t child(uint32_t n, std::string_view word) const;
  void prune(uint32_t n);

  std::vector<node> nodes_; ///< nodes_[0] is the root.
  std::vector<uint32_t> free_;
  size_t size_ = 0;
};

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
