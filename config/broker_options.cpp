#include "config/broker_options.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <ostream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <boost/program_options.hpp>

#include "config/connectors.hpp"

#ifndef FLOTILLA_VERSION
#  define FLOTILLA_VERSION "0.0.0"
#endif

namespace flotilla::config {

namespace {

namespace po = boost::program_options;

// -- value helpers ------------------------------------------------------------

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f'
         || c == '\v';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return r;
}

bool has_space_or_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return is_space(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Parses a decimal integer in [lo, hi]: digits only, no sign, no spaces.
bool parse_uint(std::string_view text, uint64_t lo, uint64_t hi,
                uint64_t& out) {
  if (text.empty())
    return false;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size())
    return false;
  if (v < lo || v > hi)
    return false;
  out = v;
  return true;
}

// -- the schema ---------------------------------------------------------------

// Where an option may appear.
enum class scope : uint8_t { anywhere, command_line_only };

// Signatures of the per-option hooks. `expected` is filled with text such as
// "expected an integer 0-65535" when a value is rejected.
using apply_fn
  = bool (*)(broker_options&, std::string_view text, std::string& expected);
using reset_fn = void (*)(broker_options&);
using show_fn = void (*)(const broker_options&, std::vector<std::string>&);

// One option of flotillad. The table below is the single source for the
// Boost.program_options description, the config-file keys, --help, describe()
// and option_names().
struct option_spec {
  const char* group; // Heading in --help.
  const char* name;  // Long name, also the config-file key.
  char short_name;   // 0 if none.
  const char* arg;   // Placeholder in --help; nullptr for a flag.
  bool repeatable;   // May be given several times; values accumulate.
  scope where;
  const char* help;
  const char* default_text; // Overrides the generated "(default: ...)".
  apply_fn apply;           // nullptr for help/version.
  reset_fn reset; // Repeatable options: clears values before a source.
  show_fn show;   // nullptr for options describe() omits.
};

template<class T, T broker_options::*Member, uint64_t Lo, uint64_t Hi>
bool apply_uint(broker_options& o, std::string_view text,
                std::string& expected) {
  uint64_t v = 0;
  if (!parse_uint(text, Lo, Hi, v)) {
    expected
      = "expected an integer " + std::to_string(Lo) + "-" + std::to_string(Hi);
    return false;
  }
  o.*Member = static_cast<T>(v);
  return true;
}

template<class T, T broker_options::*Member>
void show_uint(const broker_options& o, std::vector<std::string>& out) {
  out.push_back(std::to_string(o.*Member));
}

template<bool broker_options::*Member>
bool apply_bool(broker_options& o, std::string_view text,
                std::string& expected) {
  if (!parse_yes_no(text, o.*Member)) {
    expected = "expected yes or no";
    return false;
  }
  return true;
}

template<bool broker_options::*Member>
void show_bool(const broker_options& o, std::vector<std::string>& out) {
  out.push_back(o.*Member ? "yes" : "no");
}

// Strings that name a file or directory. `AllowEmpty`: empty means "unset".
template<std::string broker_options::*Member, bool AllowEmpty>
bool apply_path(broker_options& o, std::string_view text,
                std::string& expected) {
  if (text.empty() && !AllowEmpty) {
    expected = "expected a path";
    return false;
  }
  o.*Member = std::string(text);
  return true;
}

// Names and addresses: no whitespace, at most 255 bytes.
template<std::string broker_options::*Member, bool AllowEmpty>
bool apply_name(broker_options& o, std::string_view text,
                std::string& expected) {
  if ((text.empty() && !AllowEmpty) || text.size() > 255
      || has_space_or_control(text)) {
    expected = AllowEmpty ? "expected a name without spaces (or nothing)"
                          : "expected a name without spaces";
    return false;
  }
  o.*Member = std::string(text);
  return true;
}

template<std::string broker_options::*Member>
void show_string(const broker_options& o, std::vector<std::string>& out) {
  out.push_back(o.*Member);
}

bool apply_vhost(broker_options& o, std::string_view text,
                 std::string& expected) {
  bool control = std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (text.empty() || text.size() > 255 || control) {
    expected = "expected a virtual host name of 1-255 bytes";
    return false;
  }
  if (std::find(o.vhosts.begin(), o.vhosts.end(), text) == o.vhosts.end())
    o.vhosts.emplace_back(text);
  return true;
}

void reset_vhosts(broker_options& o) {
  o.vhosts = {"/"};
}

void show_vhosts(const broker_options& o, std::vector<std::string>& out) {
  out.insert(out.end(), o.vhosts.begin(), o.vhosts.end());
}

bool apply_connector(broker_options& o, std::string_view text,
                     std::string& expected) {
  connector_spec spec;
  expected = parse_connector(text, spec);
  if (!expected.empty())
    return false;
  for (auto& other : o.connectors) {
    connector_spec seen;
    if (parse_connector(other, seen).empty() && seen.name == spec.name) {
      expected = "a connector named '" + spec.name + "' exists already";
      return false;
    }
  }
  o.connectors.emplace_back(text);
  return true;
}

void reset_connectors(broker_options& o) {
  o.connectors.clear();
}

void show_connectors(const broker_options& o, std::vector<std::string>& out) {
  out.insert(out.end(), o.connectors.begin(), o.connectors.end());
}

bool apply_log_enable(broker_options& o, std::string_view text,
                      std::string& expected) {
  log_level lvl = log_level::info;
  if (!parse_log_enable(text, lvl)) {
    expected = "expected LEVEL or LEVEL+ with LEVEL one of trace, debug, "
               "info, notice, warning, error, critical";
    return false;
  }
  o.log_enable = std::min(o.log_enable, lvl);
  return true;
}

void reset_log_enable(broker_options& o) {
  // The highest level, so that the first value sets the threshold.
  o.log_enable = log_level::critical;
}

void show_log_enable(const broker_options& o, std::vector<std::string>& out) {
  out.push_back(std::string(to_string(o.log_enable)) + "+");
}

bool apply_log_output(broker_options& o, std::string_view text,
                      std::string& expected) {
  if (text.empty() || text == "syslog") {
    expected = "expected stderr, stdout or a file path (syslog is not "
               "supported)";
    return false;
  }
  o.log_output = std::string(text);
  return true;
}

bool apply_config(broker_options& o, std::string_view text,
                  std::string& expected) {
  if (text.empty()) {
    expected = "expected a file path";
    return false;
  }
  o.config = std::string(text);
  return true;
}

bool apply_memory_watermark(broker_options& o, std::string_view text,
                            std::string& expected) {
  expected = "expected a fraction of memory (0.4) or a size (2GiB, 512MB)";
  bool fraction = text.find('.') != std::string_view::npos;
  if (fraction) {
    // std::from_chars for double is missing in GCC 12's libstdc++ in
    // some configurations: parse with strtod on a copy.
    std::string copy{text};
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(copy.c_str(), &end);
    if (errno != 0 || end != copy.c_str() + copy.size() || !(v >= 0) || v > 1.0)
      return false;
    o.memory_high_watermark = v;
    o.memory_high_watermark_bytes = 0;
    return true;
  }
  uint64_t v = 0;
  if (!parse_bytes(text, v))
    return false;
  o.memory_high_watermark = 0;
  o.memory_high_watermark_bytes = v;
  return true;
}

void show_memory_watermark(const broker_options& o,
                           std::vector<std::string>& out) {
  if (o.memory_high_watermark_bytes != 0 || o.memory_high_watermark == 0) {
    out.push_back(std::to_string(o.memory_high_watermark_bytes));
    return;
  }
  std::ostringstream os;
  os << o.memory_high_watermark;
  auto text = os.str();
  if (text.find('.') == std::string::npos)
    text += ".0"; // "1" would read back as one byte.
  out.push_back(text);
}

template<uint64_t broker_options::*Member>
bool apply_bytes(broker_options& o, std::string_view text,
                 std::string& expected) {
  if (!parse_bytes(text, o.*Member)) {
    expected = "expected a size in bytes, optionally with a unit (50MB, "
               "512MiB)";
    return false;
  }
  return true;
}

constexpr uint64_t u16_max = 65535;
constexpr uint64_t u32_max = std::numeric_limits<uint32_t>::max();

using bo = broker_options;

// The schema, in --help order.
const option_spec schema[] = {
  // -- general
  {"General", "help", 'h', nullptr, false, scope::command_line_only,
   "Print this help and exit", nullptr, nullptr, nullptr, nullptr},
  {"General", "version", 0, nullptr, false, scope::command_line_only,
   "Print the version and exit", nullptr, nullptr, nullptr, nullptr},
  {"General", "config", 0, "FILE", false, scope::command_line_only,
   "Read options from FILE (key = value lines); the command line wins", "none",
   apply_config, nullptr, nullptr},
  {"General", "daemon", 'd', nullptr, false, scope::anywhere,
   "Run in the background", nullptr, apply_bool<&bo::daemon>, nullptr,
   show_bool<&bo::daemon>},
  {"General", "pid-dir", 0, "DIR", false, scope::anywhere,
   "Directory of the PID file", "the data directory",
   apply_path<&bo::pid_dir, true>, nullptr, show_string<&bo::pid_dir>},
  {"General", "name", 0, "NAME", false, scope::anywhere,
   "Node name, unique within a cluster", "the host name",
   apply_name<&bo::name, false>, nullptr, show_string<&bo::name>},
  {"General", "worker-threads", 0, "N", false, scope::anywhere,
   "Threads serving connections and queues", "the number of cores",
   apply_uint<uint32_t, &bo::worker_threads, 1, 1024>, nullptr,
   show_uint<uint32_t, &bo::worker_threads>},
  // -- network
  {"Network", "port", 'p', "PORT", false, scope::anywhere,
   "AMQP port; 0 picks a free port", nullptr,
   apply_uint<uint16_t, &bo::port, 0, u16_max>, nullptr,
   show_uint<uint16_t, &bo::port>},
  {"Network", "interface", 0, "ADDR", false, scope::anywhere,
   "Address the AMQP listener binds to; 0.0.0.0 for all", nullptr,
   apply_name<&bo::interface, false>, nullptr, show_string<&bo::interface>},
  {"Network", "max-connections", 0, "N", false, scope::anywhere,
   "Most client connections at once; 0 means no limit", nullptr,
   apply_uint<uint32_t, &bo::max_connections, 0, u32_max>, nullptr,
   show_uint<uint32_t, &bo::max_connections>},
  {"Network", "connection-backlog", 0, "N", false, scope::anywhere,
   "Listen backlog of the AMQP socket", nullptr,
   apply_uint<uint32_t, &bo::connection_backlog, 1, u16_max>, nullptr,
   show_uint<uint32_t, &bo::connection_backlog>},
  // -- protocol limits
  {"Protocol limits", "frame-max", 0, "BYTES", false, scope::anywhere,
   "Largest AMQP frame offered in connection.tune", nullptr,
   apply_uint<uint32_t, &bo::frame_max, 4096, 1073741824>, nullptr,
   show_uint<uint32_t, &bo::frame_max>},
  {"Protocol limits", "channel-max", 0, "N", false, scope::anywhere,
   "Highest channel number offered in connection.tune", nullptr,
   apply_uint<uint16_t, &bo::channel_max, 1, u16_max>, nullptr,
   show_uint<uint16_t, &bo::channel_max>},
  {"Protocol limits", "heartbeat", 0, "SECONDS", false, scope::anywhere,
   "Heartbeat interval offered in connection.tune; 0 disables", nullptr,
   apply_uint<uint16_t, &bo::heartbeat, 0, u16_max>, nullptr,
   show_uint<uint16_t, &bo::heartbeat>},
  {"Protocol limits", "max-message-size", 0, "BYTES", false, scope::anywhere,
   "Largest message body accepted", nullptr,
   apply_uint<uint64_t, &bo::max_message_size, 1, 536870912>, nullptr,
   show_uint<uint64_t, &bo::max_message_size>},
  // -- storage
  {"Storage", "data-dir", 0, "DIR", false, scope::anywhere,
   "Directory of durable state (the journal)", nullptr,
   apply_path<&bo::data_dir, false>, nullptr, show_string<&bo::data_dir>},
  {"Storage", "no-data-dir", 0, nullptr, false, scope::anywhere,
   "Keep everything in memory; --data-dir is not used", nullptr,
   apply_bool<&bo::no_data_dir>, nullptr, show_bool<&bo::no_data_dir>},
  {"Storage", "truncate", 0, "yes|no", false, scope::anywhere,
   "Discard stored state at startup", nullptr, apply_bool<&bo::truncate>,
   nullptr, show_bool<&bo::truncate>},
  {"Storage", "store-sync", 0, "yes|no", false, scope::anywhere,
   "fdatasync the journal before confirming; no is unsafe (power loss may "
   "lose confirmed messages)",
   nullptr, apply_bool<&bo::store_sync>, nullptr, show_bool<&bo::store_sync>},
  {"Storage", "repair-journal", 0, "yes|no", false, scope::anywhere,
   "Quarantine damaged journal segments and report what was lost, instead "
   "of refusing to start",
   nullptr, apply_bool<&bo::repair_journal>, nullptr,
   show_bool<&bo::repair_journal>},
  // -- resource limits
  {"Resource limits", "memory-high-watermark", 0, "FRACTION|SIZE", false,
   scope::anywhere,
   "Block publishers above this memory use: a fraction of RAM (0.4) or a "
   "size (2GiB); 0 disables",
   "0.4", apply_memory_watermark, nullptr, show_memory_watermark},
  {"Resource limits", "disk-free-limit", 0, "SIZE", false, scope::anywhere,
   "Block publishers when the data directory's disk has less free space; 0 "
   "disables",
   "50MB", apply_bytes<&bo::disk_free_limit>, nullptr,
   show_uint<uint64_t, &bo::disk_free_limit>},
  {"Resource limits", "queue-memory-limit", 0, "SIZE", false, scope::anywhere,
   "Message bytes a queue keeps in memory; the rest of its backlog is paged "
   "to the data directory; 0 never pages",
   "64MiB", apply_bytes<&bo::queue_memory_limit>, nullptr,
   show_uint<uint64_t, &bo::queue_memory_limit>},
  // -- security
  {"Security", "auth", 0, "yes|no", false, scope::anywhere,
   "Require SASL authentication (PLAIN, AMQPLAIN)", nullptr,
   apply_bool<&bo::auth>, nullptr, show_bool<&bo::auth>},
  {"Security", "users-file", 0, "FILE", false, scope::anywhere,
   "Users file (see config/README.md); without one, only guest/guest may "
   "log in, from loopback",
   "none", apply_path<&bo::users_file, true>, nullptr,
   show_string<&bo::users_file>},
  {"Security", "vhost", 0, "NAME", true, scope::anywhere,
   "Create virtual host NAME at startup; repeatable; \"/\" always exists", "/",
   apply_vhost, reset_vhosts, show_vhosts},
  {"Security", "definitions", 0, "FILE", false, scope::anywhere,
   "Create the vhosts, exchanges, queues and bindings of a definitions file "
   "(JSON, as exported by 'flotilla definitions export') at startup",
   "none", apply_path<&bo::definitions, true>, nullptr,
   show_string<&bo::definitions>},
  // -- logging
  {"Logging", "log-output", 0, "DEST", false, scope::anywhere,
   "Where logs go: stderr, stdout or a file path", nullptr, apply_log_output,
   nullptr, show_string<&bo::log_output>},
  {"Logging", "log-enable", 0, "LEVEL[+]", true, scope::anywhere,
   "Log LEVEL and above (trace, debug, info, notice, warning, error, "
   "critical); repeatable, the lowest wins",
   "info+", apply_log_enable, reset_log_enable, show_log_enable},
  // -- inspector
  {"Inspector", "inspector-port", 0, "PORT", false, scope::anywhere,
   "HTTP inspector port; 0 picks a free port", nullptr,
   apply_uint<uint16_t, &bo::inspector_port, 0, u16_max>, nullptr,
   show_uint<uint16_t, &bo::inspector_port>},
  {"Inspector", "inspector-interface", 0, "ADDR", false, scope::anywhere,
   "Address the inspector binds to", nullptr,
   apply_name<&bo::inspector_interface, false>, nullptr,
   show_string<&bo::inspector_interface>},
  {"Inspector", "inspector-web-dir", 0, "DIR", false, scope::anywhere,
   "Directory of the inspector page (default: web/dist of the source tree "
   "the binary was built from)",
   "auto", apply_path<&bo::inspector_web_dir, true>, nullptr,
   show_string<&bo::inspector_web_dir>},
  {"Inspector", "inspector-metrics-per-object", 0, "yes|no", false,
   scope::anywhere,
   "/metrics: one series per queue, exchange and connection (yes), or sums "
   "per vhost (no)",
   nullptr, apply_bool<&bo::inspector_metrics_per_object>, nullptr,
   show_bool<&bo::inspector_metrics_per_object>},
  // -- cluster
  {"Cluster", "cluster-name", 0, "NAME", false, scope::anywhere,
   "Join the cluster NAME; without it the broker is standalone", "none",
   apply_name<&bo::cluster_name, true>, nullptr,
   show_string<&bo::cluster_name>},
  // -- federation
  {"Federation", "fabric-port", 0, "PORT", false, scope::anywhere,
   "Inter-node fabric port that federation links connect to; 0 picks a free "
   "port",
   nullptr, apply_uint<uint16_t, &bo::fabric_port, 0, u16_max>, nullptr,
   show_uint<uint16_t, &bo::fabric_port>},
  {"Federation", "fabric-interface", 0, "ADDR", false, scope::anywhere,
   "Address the fabric binds to (loopback only without fabric TLS)", nullptr,
   apply_name<&bo::fabric_interface, false>, nullptr,
   show_string<&bo::fabric_interface>},
  {"Federation", "fabric-certificate", 0, "FILE", false, scope::anywhere,
   "TLS on the fabric: this broker's certificate (PEM); needs fabric-key and "
   "fabric-ca-file",
   "none", apply_path<&bo::fabric_certificate, true>, nullptr,
   show_string<&bo::fabric_certificate>},
  {"Federation", "fabric-key", 0, "FILE", false, scope::anywhere,
   "Private key (PEM) of fabric-certificate", "none",
   apply_path<&bo::fabric_key, true>, nullptr, show_string<&bo::fabric_key>},
  {"Federation", "fabric-ca-file", 0, "FILE", false, scope::anywhere,
   "CA certificate(s) (PEM) that peers' fabric certificates must be signed by",
   "none", apply_path<&bo::fabric_ca_file, true>, nullptr,
   show_string<&bo::fabric_ca_file>},
  {"Federation", "fabric-key-passphrase", 0, "TEXT", false, scope::anywhere,
   "Passphrase of an encrypted fabric-key", "none",
   apply_path<&bo::fabric_key_passphrase, true>, nullptr,
   show_string<&bo::fabric_key_passphrase>},
  {"Federation", "link-maintenance-interval", 0, "SECONDS", false,
   scope::anywhere,
   "First delay before a lost link reconnects; doubles up to 64 s", nullptr,
   apply_uint<uint32_t, &bo::link_maintenance_interval, 1, 64>, nullptr,
   show_uint<uint32_t, &bo::link_maintenance_interval>},
  {"Federation", "link-heartbeat-interval", 0, "SECONDS", false,
   scope::anywhere, "Fabric heartbeat; a peer silent for 4 intervals is down",
   nullptr, apply_uint<uint32_t, &bo::link_heartbeat_interval, 1, 3600>,
   nullptr, show_uint<uint32_t, &bo::link_heartbeat_interval>},
  {"Federation", "connector", 0, "FIELDS", true, scope::anywhere,
   "A link and its routes created at boot: 'name=N address=[USER/PASS@]HOST:"
   "FABRIC_PORT exchange=X [static=X/KEY] [include=P] [exclude=P] "
   "[duplex=yes] [max-hops=N] [credit=N]' (docs/federation.md)",
   "none", apply_connector, reset_connectors, show_connectors},
};

const option_spec* find_spec(std::string_view name) {
  for (auto& s : schema)
    if (name == s.name)
      return &s;
  return nullptr;
}

// Optimal string alignment distance (Levenshtein plus adjacent swaps), so
// that "prot" is one edit away from "port".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i)
    d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j)
    d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j]
        = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// Returns the closest option name allowed in `where`, or nullptr.
const char* suggest(std::string_view unknown, bool file) {
  const char* best = nullptr;
  size_t best_distance = 3; // Suggest only within two edits...
  for (auto& s : schema) {
    if (file && s.where == scope::command_line_only)
      continue;
    std::string_view name = s.name;
    auto d = edit_distance(lower(unknown), name);
    // ...or when one is a prefix of the other ("max-conn").
    if (d >= best_distance && unknown.size() >= 3
        && name.substr(0, unknown.size()) == unknown)
      d = 2;
    if (d < best_distance && d < std::max(unknown.size(), name.size())) {
      best = s.name;
      best_distance = d;
    }
  }
  return best;
}

// -- applying values ------------------------------------------------------

// One option occurrence from the command line (line == 0) or a file.
struct entry {
  const option_spec* spec;
  std::string value;
  int line;
};

std::string option_label(const option_spec& s, bool file) {
  return file ? std::string("'") + s.name + "'"
              : std::string("'--") + s.name + "'";
}

// Applies `entries` (all from one source) to `out`. `file` is the config file
// name, empty for the command line. Returns an error message or "".
std::string apply_entries(const std::vector<entry>& entries,
                          const std::string& file, broker_options& out) {
  bool is_file = !file.empty();
  std::vector<std::pair<const option_spec*, int>> seen;
  for (auto& e : entries) {
    auto prefix = is_file ? file + ":" + std::to_string(e.line) + ": " : "";
    auto first = std::find_if(seen.begin(), seen.end(), [&](auto& p) {
      return p.first == e.spec;
    });
    if (first == seen.end()) {
      seen.emplace_back(e.spec, e.line);
      if (e.spec->reset)
        e.spec->reset(out);
    } else if (!e.spec->repeatable) {
      auto msg = prefix + "option " + option_label(*e.spec, is_file)
                 + " given more than once";
      if (is_file)
        msg += " (first on line " + std::to_string(first->second) + ")";
      return msg;
    }
    std::string expected;
    if (!e.spec->apply(out, e.value, expected))
      return prefix + "invalid value '" + e.value + "' for option "
             + option_label(*e.spec, is_file) + ": " + expected;
  }
  return {};
}

// Splits config text into entries. Returns an error message or "".
std::string parse_config_text(std::string_view text, const std::string& file,
                              std::vector<entry>& out) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") // UTF-8 byte order mark
    text.remove_prefix(3);
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text
      = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    // A comment starts with '#' at the beginning or after whitespace, so
    // that values such as paths may still contain '#'.
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '#' && (i == 0 || is_space(line[i - 1]))) {
        line = line.substr(0, i);
        break;
      }
    line = trim(line);
    if (line.empty())
      continue;
    auto prefix = file + ":" + std::to_string(line_no) + ": ";
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return prefix + "missing '=' in '" + std::string(line)
             + "' (expected 'key = value')";
    auto key = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (key.empty())
      return prefix + "missing option name before '='";
    auto spec = find_spec(key);
    if (spec == nullptr) {
      auto msg = prefix + "unknown option '" + std::string(key) + "'";
      if (auto s = suggest(key, true))
        msg += std::string(" (did you mean '") + s + "'?)";
      return msg;
    }
    if (spec->where == scope::command_line_only)
      return prefix + "option '" + std::string(key)
             + "' is only allowed on the command line";
    out.push_back(entry{spec, std::string(value), line_no});
  }
  return {};
}

// Reads and splits the file at `path`. Returns an error message or "".
std::string read_config_file(const std::string& path, std::vector<entry>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return "cannot open config file '" + path + "': " + std::strerror(errno);
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad())
    return "cannot read config file '" + path + "'";
  return parse_config_text(text, path, out);
}

parse_result failure(std::string msg) {
  parse_result r;
  r.ok = false;
  r.exit_now = true;
  r.exit_code = 2;
  r.error = std::move(msg);
  return r;
}

// -- --help -----------------------------------------------------------------

// Appends `text` wrapped to `width` columns, continuation lines indented by
// `indent`; the first line continues at column `col`.
void wrap(std::ostream& os, std::string_view text, size_t col, size_t indent,
          size_t width) {
  bool first_word = true;
  while (!text.empty()) {
    auto sp = text.find(' ');
    auto word = text.substr(0, sp);
    text
      = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
    if (!first_word && col + 1 + word.size() > width) {
      os << '\n' << std::string(indent, ' ');
      col = indent;
    } else if (!first_word) {
      os << ' ';
      ++col;
    }
    os << word;
    col += word.size();
    first_word = false;
  }
  os << '\n';
}

void print_help(std::ostream& os) {
  constexpr size_t indent = 30;
  constexpr size_t width = 79;
  const broker_options defaults;
  os << "Usage: flotillad [OPTIONS]\n"
        "AMQP 0-9-1 message broker. Options other than help, version and\n"
        "config may also be given in the --config file as 'name = value'.\n";
  const char* group = nullptr;
  for (auto& s : schema) {
    if (group == nullptr || std::strcmp(group, s.group) != 0) {
      group = s.group;
      os << '\n' << group << ":\n";
    }
    std::string left = "  ";
    left += s.short_name ? std::string("-") + s.short_name + ", " : "    ";
    left += "--";
    left += s.name;
    if (s.arg) {
      left += ' ';
      left += s.arg;
    }
    std::string text = s.help;
    if (s.default_text) {
      text += std::string(" (default: ") + s.default_text + ")";
    } else if (s.arg && s.show) {
      std::vector<std::string> v;
      s.show(defaults, v);
      if (!v.empty())
        text += " (default: " + v.front() + ")";
    }
    os << left;
    size_t col = left.size();
    if (col + 1 >= indent) {
      os << '\n';
      col = 0;
    }
    os << std::string(indent - col, ' ');
    wrap(os, text, indent, indent, width);
  }
}

std::string default_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0')
    return "flotilla";
  return buf;
}

} // namespace

// -- public API ---------------------------------------------------------------

std::string_view to_string(log_level x) {
  switch (x) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::notice:
      return "notice";
    case log_level::warning:
      return "warning";
    case log_level::error:
      return "error";
    case log_level::critical:
      return "critical";
  }
  return "unknown";
}

broker_options::broker_options()
  : worker_threads(std::max(1u, std::thread::hardware_concurrency())),
    name(default_name()) {
  // nop
}

bool parse_yes_no(std::string_view text, bool& out) {
  auto t = lower(text);
  if (t == "yes" || t == "true" || t == "1" || t == "on") {
    out = true;
    return true;
  }
  if (t == "no" || t == "false" || t == "0" || t == "off") {
    out = false;
    return true;
  }
  return false;
}

bool parse_log_enable(std::string_view text, log_level& out) {
  if (!text.empty() && text.back() == '+')
    text.remove_suffix(1);
  auto t = lower(text);
  for (auto lvl :
       {log_level::trace, log_level::debug, log_level::info, log_level::notice,
        log_level::warning, log_level::error, log_level::critical})
    if (t == to_string(lvl)) {
      out = lvl;
      return true;
    }
  return false;
}

parse_result parse_config_file(const std::string& path, broker_options& out) {
  std::vector<entry> entries;
  if (auto err = read_config_file(path, entries); !err.empty())
    return failure(std::move(err));
  if (auto err = apply_entries(entries, path, out); !err.empty())
    return failure(std::move(err));
  return {};
}

parse_result parse_command_line(int argc, char** argv, broker_options& out,
                                std::ostream& help_out) {
  // Build the Boost description from the schema. Every value is taken as
  // text; the schema's apply hooks validate it, for the file alike.
  po::options_description desc;
  for (auto& s : schema) {
    std::string names = s.name;
    if (s.short_name) {
      names += ',';
      names += s.short_name;
    }
    if (s.arg)
      desc.add_options()(names.c_str(), po::value<std::string>(), "");
    else
      desc.add_options()(names.c_str(), po::value<std::string>()->zero_tokens(),
                         "");
  }
  std::vector<entry> cmd;
  try {
    auto style = po::command_line_style::default_style
                 & ~po::command_line_style::allow_guessing;
    auto parsed
      = po::command_line_parser(argc, argv).options(desc).style(style).run();
    for (auto& o : parsed.options) {
      const option_spec* spec = find_spec(o.string_key);
      if (o.position_key >= 0 || spec == nullptr) {
        auto arg = o.original_tokens.empty() ? std::string{}
                                             : o.original_tokens.front();
        return failure("unexpected argument '" + arg
                       + "' (options start with '-'; see --help)");
      }
      cmd.push_back(
        entry{spec, o.value.empty() ? std::string("yes") : o.value.front(), 0});
    }
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    if (auto eq = name.find('='); eq != std::string::npos)
      name.resize(eq);
    auto msg = "unknown option '" + name + "'";
    if (name.size() > 2 && name.compare(0, 2, "--") == 0)
      if (auto s = suggest(std::string_view(name).substr(2), false))
        msg += std::string(" (did you mean '--") + s + "'?)";
    return failure(msg + "; see --help");
  } catch (const po::invalid_command_line_syntax& e) {
    using ps = po::invalid_command_line_syntax;
    if (e.kind() == ps::missing_parameter)
      return failure("option '" + e.get_option_name() + "' requires a value");
    if (e.kind() == ps::extra_parameter)
      return failure("option '" + e.get_option_name() + "' takes no value");
    return failure(e.what());
  } catch (const std::exception& e) {
    return failure(e.what());
  }
  auto given = [&](std::string_view name) {
    return std::any_of(cmd.begin(), cmd.end(), [&](auto& e) {
      return name == e.spec->name;
    });
  };
  if (given("help")) {
    print_help(help_out);
    return parse_result{true, true, 0, {}};
  }
  if (given("version")) {
    help_out << "flotillad " << version() << '\n';
    return parse_result{true, true, 0, {}};
  }
  // Check the command line on its own first, so that its errors come first.
  broker_options probe = out;
  if (auto err = apply_entries(cmd, {}, probe); !err.empty())
    return failure(std::move(err));
  // Then the file, so that the command line wins over it.
  if (given("config")) {
    if (auto r = parse_config_file(probe.config, out); !r.ok)
      return r;
  }
  if (auto err = apply_entries(cmd, {}, out); !err.empty())
    return failure(std::move(err));
  return {};
}

std::string describe(const broker_options& opts) {
  std::string r;
  std::vector<std::string> values;
  for (auto& s : schema) {
    if (s.show == nullptr || s.where == scope::command_line_only)
      continue;
    values.clear();
    s.show(opts, values);
    for (auto& v : values) {
      r += s.name;
      r += v.empty() ? " =" : " = ";
      r += v;
      r += '\n';
    }
  }
  return r;
}

std::vector<std::string> option_names() {
  std::vector<std::string> r;
  for (auto& s : schema)
    r.emplace_back(s.name);
  return r;
}

bool parse_bytes(std::string_view text, uint64_t& out) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
    ++digits;
  if (digits == 0)
    return false;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, v);
  if (ec != std::errc{} || ptr != text.data() + digits)
    return false;
  auto unit = lower(text.substr(digits));
  struct unit_def {
    const char* name;
    uint64_t factor;
  };
  static constexpr unit_def units[] = {
    {"", 1},
    {"b", 1},
    {"kb", 1000},
    {"mb", 1000 * 1000},
    {"gb", 1000 * 1000 * 1000},
    {"tb", uint64_t{1000} * 1000 * 1000 * 1000},
    {"kib", uint64_t{1} << 10},
    {"mib", uint64_t{1} << 20},
    {"gib", uint64_t{1} << 30},
    {"tib", uint64_t{1} << 40},
  };
  for (auto& u : units) {
    if (unit != u.name)
      continue;
    if (v > std::numeric_limits<uint64_t>::max() / u.factor)
      return false;
    out = v * u.factor;
    return true;
  }
  return false;
}

std::string_view version() {
  std::string_view v = FLOTILLA_VERSION;
  return v.empty() ? "0.0.0" : v;
}

} // namespace flotilla::config
