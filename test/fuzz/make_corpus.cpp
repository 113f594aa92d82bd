// Writes the seed corpora under <dir>/{frame,method,field_table,matching}/.
// Run once after changing the codecs' formats:
//   cmake --build build --target make_fuzz_corpus
//   build/test/fuzz/make_fuzz_corpus test/fuzz/corpus

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "protocol/command_assembler.hpp"
#include "protocol/field_table.hpp"
#include "protocol/frame.hpp"
#include "protocol/methods.hpp"
#include "protocol/properties.hpp"

using namespace flotilla::protocol;

namespace {

std::filesystem::path root;
int written = 0;

void write(const std::string& sub, const std::string& name,
           const std::string& bytes) {
  auto dir = root / sub;
  std::filesystem::create_directories(dir);
  std::ofstream out{dir / name, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ++written;
}

field_table client_properties() {
  return field_table{
    {"product", "flotilla-fuzz"},
    {"version", "0.1"},
    {"capabilities", field_table{{"publisher_confirms", true},
                                 {"consumer_cancel_notify", true},
                                 {"connection.blocked", true}}},
  };
}

field_table rich_arguments() {
  return field_table{
    {"x-queue-type", "quorum"},
    {"x-max-length", int64_t{1000}},
    {"x-message-ttl", 60000},
    {"x-dead-letter-exchange", "dlx"},
    {"flags", field_array{true, uint8_t{7}, int16_t{-2}, 1.5f, 2.5}},
    {"when", timestamp_value{1700000000}},
    {"price", decimal_value{2, 1999}},
    {"blob", byte_array{std::string("\x00\x01\xfe", 3)}},
    {"none", field_value{}},
  };
}

basic_properties full_properties() {
  basic_properties p;
  p.content_type = "application/json";
  p.content_encoding = "utf-8";
  p.headers = field_table{{"x-retries", 3}, {"tenant", "acme"}};
  p.delivery_mode = 2;
  p.priority = 5;
  p.correlation_id = "c-1";
  p.reply_to = "amq.rabbitmq.reply-to";
  p.expiration = "30000";
  p.message_id = "m-1";
  p.timestamp = 1700000000;
  p.type = "order";
  p.user_id = "guest";
  p.app_id = "fuzz";
  p.cluster_id = "c";
  return p;
}

void publish(std::string& s, uint16_t ch, std::string_view body,
             const basic_properties& p, uint32_t frame_max = 4096) {
  append_method_frame(s, ch,
                      basic_publish{0, "amq.topic", "a.b.c", true, false});
  append_header_frame(s, ch, body.size(), p);
  append_body_frames(s, ch, body, frame_max);
}

void frame_corpus() {
  std::string s;
  append_method_frame(s, 0,
                      connection_start_ok{client_properties(), "PLAIN",
                                          std::string("\0guest\0guest", 12),
                                          "en_US"});
  append_method_frame(s, 0, connection_tune_ok{2047, 4096, 60});
  append_method_frame(s, 0, connection_open{"/", "", false});
  append_method_frame(s, 1, channel_open{});
  write("frame", "client_handshake", s);

  std::string server;
  append_method_frame(
    server, 0,
    connection_start{0, 9, client_properties(), "PLAIN AMQPLAIN", "en_US"});
  append_method_frame(server, 0, connection_tune{2047, 4096, 60});
  append_method_frame(server, 0, connection_open_ok{});
  append_method_frame(server, 1, channel_open_ok{});
  append_method_frame(server, 1, basic_deliver{"ctag", 1, false, "ex", "rk"});
  append_header_frame(server, 1, 5, basic_properties{});
  append_body_frames(server, 1, "hello", 4096);
  append_method_frame(server, 1, basic_get_ok{2, true, "ex", "rk", 0});
  append_header_frame(server, 1, 0, basic_properties{});
  append_method_frame(server, 1, basic_return{312, "NO_ROUTE", "ex", "x"});
  append_header_frame(server, 1, 1, basic_properties{});
  append_body_frames(server, 1, "!", 4096);
  write("frame", "server_stream", server);

  s.clear();
  basic_properties p;
  p.content_type = "text/plain";
  p.delivery_mode = 2;
  publish(s, 1, "hello world", p);
  write("frame", "publish_small", s);

  s.clear();
  publish(s, 1, std::string(5000, 'x'), full_properties());
  write("frame", "publish_split_body", s);

  s.clear();
  publish(s, 1, "", basic_properties{});
  publish(s, 2, "two", p);
  write("frame", "publish_empty_and_second_channel", s);

  s.clear();
  append_method_frame(s, 1, basic_publish{0, "", "q", false, false});
  append_method_frame(s, 2, basic_publish{0, "", "q", false, false});
  append_header_frame(s, 2, 4, p);
  append_header_frame(s, 1, 2, p);
  append_body_frames(s, 2, "ab", 4096);
  append_body_frames(s, 1, "cd", 4096);
  append_body_frames(s, 2, "ef", 4096);
  write("frame", "interleaved_channels", s);

  s.clear();
  append_heartbeat_frame(s);
  append_method_frame(s, 1, basic_ack{1, true});
  append_method_frame(s, 1, basic_nack{2, false, true});
  append_method_frame(s, 1, basic_reject{3, false});
  append_heartbeat_frame(s);
  write("frame", "acks_and_heartbeats", s);

  s.clear();
  queue_declare qd;
  qd.queue = "orders";
  qd.durable = true;
  qd.arguments = rich_arguments();
  append_method_frame(s, 1, qd);
  exchange_declare ed;
  ed.exchange = "ex";
  ed.type = "topic";
  append_method_frame(s, 1, ed);
  queue_bind qb;
  qb.queue = "orders";
  qb.exchange = "ex";
  qb.routing_key = "order.#";
  append_method_frame(s, 1, qb);
  basic_consume bc;
  bc.queue = "orders";
  bc.arguments = field_table{{"x-priority", 10}};
  append_method_frame(s, 1, bc);
  append_method_frame(s, 1, basic_qos{0, 100, false});
  append_method_frame(s, 1, confirm_select{});
  write("frame", "topology", s);

  s.clear();
  append_method_frame(s, 1, channel_close{406, "PRECONDITION_FAILED", 50, 10});
  append_method_frame(s, 1, channel_close_ok{});
  append_method_frame(s, 0, connection_close{200, "bye", 0, 0});
  append_method_frame(s, 0, connection_close_ok{});
  write("frame", "closing", s);

  // Malformed streams.
  s.clear();
  append_heartbeat_frame(s);
  s.back() = 0;
  write("frame", "bad_frame_end", s);

  s = std::string("\x04\x00\x00\x00\x00\x00\x00\xce", 8);
  write("frame", "unknown_frame_type", s);

  s.clear();
  append_frame(s, frame_type::body, 1, std::string(4200, 'o'));
  write("frame", "oversize_frame", s);

  s.clear();
  append_frame(s, frame_type::heartbeat, 1, "");
  write("frame", "heartbeat_on_channel", s);

  s.clear();
  append_header_frame(s, 1, 3, p);
  write("frame", "header_without_method", s);

  s.clear();
  append_method_frame(s, 1, basic_publish{});
  append_header_frame(s, 1, 2, p);
  append_body_frames(s, 1, "abc", 4096);
  write("frame", "body_too_long", s);

  s.clear();
  append_method_frame(s, 1, basic_publish{});
  append_header_frame(s, 1, 20000, p); // over the harness's max body
  append_body_frames(s, 1, "abc", 4096);
  append_method_frame(s, 1, basic_publish{});
  append_header_frame(s, 1, 1, p);
  append_body_frames(s, 1, "z", 4096);
  write("frame", "body_over_limit_then_publish", s);

  s.clear();
  append_method_frame(s, 0, basic_publish{});
  write("frame", "content_method_on_channel0", s);

  s.clear();
  std::string payload;
  append_method_payload(payload, basic_ack{});
  payload.pop_back();
  append_frame(s, frame_type::method, 1, payload);
  write("frame", "truncated_method", s);

  s.clear();
  append_frame(s, frame_type::method, 1, std::string("\x00\x3c\x03\xe7", 4));
  write("frame", "unknown_method", s);

  s = std::string(protocol_header()) + "junk";
  write("frame", "protocol_header_as_frame", s);
}

void method_corpus() {
  auto put = [](const char* name, const auto& m) {
    std::string s;
    append_method_payload(s, m);
    write("method", name, s);
  };
  put("connection_start",
      connection_start{0, 9, client_properties(), "PLAIN", "en_US"});
  put("connection_start_ok",
      connection_start_ok{client_properties(), "PLAIN",
                          std::string("\0u\0p", 4), "en_US"});
  put("connection_tune", connection_tune{2047, 131072, 60});
  put("connection_open", connection_open{"/vhost", "", true});
  put("connection_close", connection_close{320, "CONNECTION_FORCED", 0, 0});
  put("connection_blocked", connection_blocked{"low on memory"});
  put("connection_update_secret", connection_update_secret{"token", "refresh"});
  put("channel_flow", channel_flow{true});
  exchange_declare ed;
  ed.exchange = "logs";
  ed.type = "fanout";
  ed.durable = ed.internal = true;
  ed.arguments = rich_arguments();
  put("exchange_declare", ed);
  exchange_bind eb;
  eb.destination = "d";
  eb.source = "s";
  eb.routing_key = "#";
  put("exchange_bind", eb);
  queue_declare qd;
  qd.queue = "q";
  qd.exclusive = qd.auto_delete = qd.no_wait = true;
  qd.arguments = rich_arguments();
  put("queue_declare", qd);
  put("queue_declare_ok", queue_declare_ok{"amq.gen-1", 3, 1});
  queue_delete qdel;
  qdel.queue = "q";
  qdel.if_unused = qdel.if_empty = true;
  put("queue_delete", qdel);
  put("basic_qos", basic_qos{0, 50, true});
  basic_consume bc;
  bc.queue = "q";
  bc.consumer_tag = "ctag";
  bc.no_ack = bc.exclusive = true;
  put("basic_consume", bc);
  put("basic_publish", basic_publish{0, "ex", "a.b", true, true});
  put("basic_deliver", basic_deliver{"ctag", 42, true, "ex", "a.b"});
  put("basic_get_ok", basic_get_ok{7, false, "ex", "rk", 9});
  put("basic_nack", basic_nack{5, true, false});
  put("tx_commit", tx_commit{});
  put("access_request", access_request{});
  // A content header payload: the method target also decodes headers.
  std::string h;
  append_header_payload(h, 11, full_properties());
  write("method", "content_header_full", h);
  write("method", "unknown_method", std::string("\x00\x3c\x00\x63", 4));
  write("method", "truncated", std::string("\x00\x32\x00\x0a\x00", 5));
}

void field_table_corpus() {
  auto put = [](const char* name, const field_table& t) {
    std::string s;
    encode_field_table(s, t);
    write("field_table", name, s);
  };
  put("empty", field_table{});
  put("client_properties", client_properties());
  put("rich_arguments", rich_arguments());
  field_table nested;
  for (int i = 0; i < 10; ++i)
    nested = field_table{{"n", std::move(nested)}, {"i", i}};
  put("nested", nested);
  // Binding arguments followed by message headers (for headers_match).
  std::string pair;
  encode_field_table(pair, field_table{{"x-match", "any"},
                                       {"format", "pdf"},
                                       {"type", field_value{}}});
  encode_field_table(pair, field_table{{"format", "zip"}, {"type", 1}});
  write("field_table", "binding_and_headers", pair);
  std::string arr;
  encode_field_array(arr, field_array{1, "s", field_array{}, field_table{}});
  write("field_table", "array", arr);
  write("field_table", "bad_length",
        std::string("\x00\x00\x00\x09\x01\x61\x56", 7));
  write("field_table", "unknown_tag",
        std::string("\x00\x00\x00\x03\x01\x61\x5a", 7));
  write("field_table", "long_L",
        std::string("\x00\x00\x00\x0b\x01\x61\x4c\x00\x00\x00\x00\x00\x00\x00"
                    "\x07",
                    15));
}

void matching_corpus() {
  auto put = [](const char* name, std::string_view pattern,
                std::string_view key, std::string extra = {}) {
    // The harness maps bytes with c % 8 onto "ab.*#.ax".
    auto encode = [](std::string_view s) {
      std::string out;
      for (char c : s) {
        switch (c) {
          case 'a':
            out.push_back(8);
            break; // 8 % 8 = 0 -> 'a'
          case 'b':
            out.push_back(1);
            break;
          case '.':
            out.push_back(2);
            break;
          case '*':
            out.push_back(3);
            break;
          case '#':
            out.push_back(4);
            break;
          default:
            out.push_back(7);
            break; // 'x'
        }
      }
      return out;
    };
    write("matching", name,
          encode(pattern) + std::string(1, '\0') + encode(key) + extra);
  };
  put("literal", "a.b", "a.b");
  put("star", "a.*", "a.b");
  put("hash_middle", "a.#.b", "a.x.x.b");
  put("hash_hash", "#.#", "");
  put("empty_words", "*.b", ".b");
  put("many_hashes", "#.a.#.b.#", "x.a.x.x.b.x.a");
  // Extra segments are more trie patterns: "a.#", "*.b", "#", "a.b".
  put("trie", "a.*", "a.b",
      std::string("\0\x08\x02\x04\0\x03\x02\x01\0\x04\0\x08\x02\x01", 14));
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus-root>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  frame_corpus();
  method_corpus();
  field_table_corpus();
  matching_corpus();
  std::printf("wrote %d files under %s\n", written, root.string().c_str());
  return 0;
}
