#pragma once

// Conversions between AMQP field tables and the protobuf Struct of the
// management schema. Included by management/*.cpp and apps/flotilla.cpp
// only (it names protobuf types; keep it out of widely included headers).

#include <string>

#include "protocol/field_table.hpp"

namespace google::protobuf {
class Struct;
class Value;
} // namespace google::protobuf

namespace flotilla::management {

/// Converts `t` for JSON: integers, floats and decimals become numbers,
/// strings and byte arrays strings, timestamps numbers of seconds, void
/// null, arrays lists and tables objects.
void to_struct(const protocol::field_table& t, google::protobuf::Struct& out);

/// Converts `s` back: whole numbers that fit become 64-bit integers ('l'),
/// other numbers doubles, strings long strings, booleans booleans, null
/// void, lists arrays and objects tables. Keys are sorted (protobuf keeps a
/// map). Returns false and sets `error` for a key longer than 255 bytes.
bool from_struct(const google::protobuf::Struct& s, protocol::field_table& out,
                 std::string& error);

} // namespace flotilla::management
