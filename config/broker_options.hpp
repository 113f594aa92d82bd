#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

/// Settings of `flotillad`: one option schema feeds the command line (parsed
/// with Boost.program_options), the config file and `--help`. Plain C++, no
/// CAF. Used once at startup by apps/flotillad, and later read-only.
namespace flotilla::config {

/// Severity of a log line, lowest first. The names are qpidd's.
enum class log_level : uint8_t {
  trace,
  debug,
  info,
  notice,
  warning,
  error,
  critical,
};

/// Returns the lowercase name of `x` ("info").
std::string_view to_string(log_level x);

/// Every setting of `flotillad`. Defaults are the member initializers. Each
/// field is named after its option with '-' turned into '_' (`--data-dir` is
/// `data_dir`); the exceptions are `vhosts` (`--vhost`) and `config`.
/// Plain data: copy it freely; not synchronized.
struct broker_options {
  // -- network ---------------------------------------------------------------

  /// AMQP listening port. 0 asks the OS for a free port; flotillad then
  /// prints the port it got.
  uint16_t port = 5672;
  /// Address the AMQP listener binds to (a host name or an IP address).
  std::string interface = "127.0.0.1";
  /// Most client connections accepted at once; 0 means no limit.
  uint32_t max_connections = 0;
  /// Listen backlog of the AMQP socket.
  uint32_t connection_backlog = 128;

  // -- protocol limits (offered in connection.tune) --------------------------

  /// Largest frame in bytes, frame header and end octet included.
  uint32_t frame_max = 131072;
  /// Highest channel number a client may open.
  uint16_t channel_max = 2047;
  /// Heartbeat interval in seconds; 0 disables heartbeats.
  uint16_t heartbeat = 60;
  /// Largest message body in bytes; larger publishes are refused.
  uint64_t max_message_size = 134217728;

  // -- process ---------------------------------------------------------------

  /// Threads serving connections and actors. Default: the number of cores.
  uint32_t worker_threads = 1;
  /// Run in the background.
  bool daemon = false;
  /// Directory of the PID file. Empty means the data directory.
  std::string pid_dir;
  /// Node name, unique in a cluster. Default: the host name.
  std::string name;

  // -- storage ---------------------------------------------------------------

  /// Where durable state (the journal) lives.
  std::string data_dir = "./data";
  /// Keep everything in memory: `data_dir` is not used.
  bool no_data_dir = false;
  /// Discard any stored state at startup.
  bool truncate = false;
  /// fdatasync the journal before confirming (the safe default). `no` is the
  /// documented unsafe mode: a power loss may lose confirmed messages.
  bool store_sync = true;
  /// Quarantine damaged journal segments instead of refusing to start.
  bool repair_journal = false;

  // -- resource limits -------------------------------------------------------

  /// Memory high watermark: above it, publishing connections are blocked
  /// (connection.blocked) until memory use falls back. A fraction of the
  /// machine's memory (or of the cgroup's limit, if lower) when
  /// `memory_high_watermark_bytes` is 0, else that many bytes. 0 and 0
  /// disable the alarm.
  double memory_high_watermark = 0.4;
  uint64_t memory_high_watermark_bytes = 0;
  /// Free space the data directory's file system must keep: below it,
  /// publishing connections are blocked. 0 disables the alarm.
  uint64_t disk_free_limit = 50000000;
  /// Message bytes a queue keeps in memory before it pages the rest of its
  /// backlog out to disk (in the data directory); 0 never pages.
  uint64_t queue_memory_limit = uint64_t{64} << 20;

  // -- security and virtual hosts --------------------------------------------

  /// Require SASL authentication. With false, any user name is accepted.
  bool auth = true;
  /// The users file (see config/users.hpp). Empty means the built-in guest.
  std::string users_file;
  /// Virtual hosts created at startup, in order, without duplicates.
  /// Invariant: vhosts.front() == "/", which always exists.
  std::vector<std::string> vhosts = {"/"};
  /// A definitions file (JSON, see docs/management.md) applied at startup,
  /// after recovery. Empty means none.
  std::string definitions;

  // -- logging ---------------------------------------------------------------

  /// "stderr", "stdout" or the path of a log file.
  std::string log_output = "stderr";
  /// Lowest level logged (from `--log-enable`).
  log_level log_enable = log_level::info;

  // -- inspector (HTTP) -------------------------------------------------------

  /// Inspector listening port; 0 asks the OS for a free port.
  uint16_t inspector_port = 15672;
  /// Address the inspector binds to.
  std::string inspector_interface = "127.0.0.1";
  /// Directory of the inspector page (web/dist); empty: found next to the
  /// binary (build tree, scripts/run).
  std::string inspector_web_dir;
  /// /metrics gives one series per queue, exchange and connection (yes) or
  /// sums per vhost (no); ?per_object= overrides per scrape.
  bool inspector_metrics_per_object = true;

  // -- cluster ---------------------------------------------------------------

  /// Name of the cluster to join; empty means a standalone broker.
  std::string cluster_name;

  // -- federation (federation/, docs/federation.md) -------------------------

  /// Port of the inter-node fabric (CAF BASP) that federation links connect
  /// to; 0 picks a free port (flotillad prints it, management reports it).
  uint16_t fabric_port = 0;
  /// Address the fabric binds to. Without TLS (fabric_certificate) only
  /// loopback addresses are accepted.
  std::string fabric_interface = "127.0.0.1";
  /// TLS on the fabric (caf::openssl): this broker's certificate (PEM),
  /// its private key and the CA that signed every peer's certificate. All
  /// three or none; with them every link and the fabric port use TLS with
  /// mutual verification. `fabric_key_passphrase` unlocks an encrypted key.
  std::string fabric_certificate;
  std::string fabric_key;
  std::string fabric_ca_file;
  std::string fabric_key_passphrase;
  /// First delay before a link reconnects, in seconds; it doubles up to 64.
  uint32_t link_maintenance_interval = 2;
  /// Fabric heartbeat interval in seconds; a peer silent for four intervals
  /// is considered down and its links reconnect.
  uint32_t link_heartbeat_interval = 5;
  /// Federation connectors created at boot, one `connector = ...` line each
  /// (see config/connectors.hpp for the fields). Checked when parsed: every
  /// entry is accepted by parse_connector() and names are unique.
  std::vector<std::string> connectors;

  // -- bookkeeping -----------------------------------------------------------

  /// The config file that was loaded (`--config`), empty if none.
  std::string config;

  /// Fills in the defaults that depend on the host (name, worker_threads).
  broker_options();
};

/// Outcome of parsing options.
struct parse_result {
  /// False on a bad option or config line; `error` then says why.
  bool ok = true;
  /// True if the caller should exit now with `exit_code`: after `--help` or
  /// `--version` (ok, exit code 0) or after an error (exit code 2).
  bool exit_now = false;
  /// Process exit code to use when `exit_now` is set.
  int exit_code = 0;
  /// One line without a trailing newline, for example
  /// "flotillad.conf:7: unknown option 'prot' (did you mean 'port'?)".
  std::string error;
};

/// Parses the command line of flotillad into `out`. If `--config FILE` is
/// given, FILE is applied first and the command line wins over it: a single
/// value option replaces the file's value; a repeatable option (`--vhost`,
/// `--log-enable`) given on the command line replaces all of the file's
/// values. `--help` and `--version` print to `help_out` and set `exit_now`.
/// No default config file is read. An option given twice (unless repeatable)
/// is an error. Never throws.
parse_result parse_command_line(int argc, char** argv, broker_options& out,
                                std::ostream& help_out);

/// Applies the config file at `path` to `out`. The format is qpidd.conf's:
/// `key = value` lines, keys being long option names without dashes, `#`
/// comments, blank lines; flags take yes/no/true/false/1/0. Errors name
/// the file and line. Does not set `out.config`. Never throws.
parse_result parse_config_file(const std::string& path, broker_options& out);

/// Returns the effective configuration, one `key = value` line per setting
/// (a line per value of repeatable options), in `--help` order. The text is
/// itself a valid config file. Omits `config`.
std::string describe(const broker_options& opts);

/// Parses a qpidd-style `--log-enable` value: `LEVEL` or `LEVEL+`, LEVEL
/// being trace, debug, info, notice, warning, error or critical. Both forms
/// mean "this level and above". qpidd's `:category` suffix is not supported.
/// Returns false (leaving `out` alone) if `text` is not of that form.
bool parse_log_enable(std::string_view text, log_level& out);

/// Parses a flag value: yes/no, true/false, on/off, 1/0, case-insensitive.
/// Returns false (leaving `out` alone) on anything else.
bool parse_yes_no(std::string_view text, bool& out);

/// Parses a byte count: an integer with an optional unit, decimal (kB, MB,
/// GB, TB) or binary (KiB, MiB, GiB, TiB), case-insensitive, as in "50MB"
/// or "512MiB". Returns false (leaving `out` alone) on anything else or on
/// overflow.
bool parse_bytes(std::string_view text, uint64_t& out);

/// Returns the long name of every option, command-line-only ones included
/// ("help", "version", "config"), in `--help` order.
std::vector<std::string> option_names();

/// Returns the version of flotilla ("0.1.0").
std::string_view version();

} // namespace flotilla::config
