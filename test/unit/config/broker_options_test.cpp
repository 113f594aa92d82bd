#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "config/broker_options.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "test/unit/config/test_util.hpp"

using namespace flotilla::config;
using flotilla::config::test::args;
using flotilla::config::test::temp_dir;

namespace {

struct parsed {
  parse_result result;
  broker_options opts;
  std::string out; // What went to help_out.
};

parsed parse(args&& a) {
  parsed p;
  std::ostringstream os;
  p.result = parse_command_line(a.argc(), a.argv(), p.opts, os);
  p.out = os.str();
  return p;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

} // namespace

TEST_SUITE("config") {

  TEST_CASE("defaults") {
    broker_options o;
    CHECK(o.port == 5672);
    CHECK(o.interface == "127.0.0.1");
    CHECK(o.max_connections == 0);
    CHECK(o.connection_backlog == 128);
    CHECK(o.frame_max == 131072);
    CHECK(o.channel_max == 2047);
    CHECK(o.heartbeat == 60);
    CHECK(o.max_message_size == 134217728);
    CHECK(o.worker_threads
          == std::max(1u, std::thread::hardware_concurrency()));
    CHECK(o.daemon == false);
    CHECK(o.pid_dir.empty());
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    CHECK(o.name == host);
    CHECK(o.data_dir == "./data");
    CHECK(o.no_data_dir == false);
    CHECK(o.truncate == false);
    CHECK(o.auth == true);
    CHECK(o.users_file.empty());
    CHECK(o.vhosts == std::vector<std::string>{"/"});
    CHECK(o.log_output == "stderr");
    CHECK(o.log_enable == log_level::info);
    CHECK(o.inspector_port == 15672);
    CHECK(o.inspector_interface == "127.0.0.1");
    CHECK(o.cluster_name.empty());
    CHECK(o.fabric_port == 0);
    CHECK(o.fabric_interface == "127.0.0.1");
    CHECK(o.link_maintenance_interval == 2);
    CHECK(o.link_heartbeat_interval == 5);
    CHECK(o.config.empty());
  }

  TEST_CASE("an empty command line keeps the defaults") {
    auto p = parse(args{});
    REQUIRE(p.result.ok);
    CHECK_FALSE(p.result.exit_now);
    CHECK(p.result.exit_code == 0);
    CHECK(p.result.error.empty());
    CHECK(describe(p.opts) == describe(broker_options{}));
    CHECK(p.out.empty());
  }

  TEST_CASE("every option from the command line") {
    temp_dir dir;
    auto conf = dir.write("empty.conf", "");
    auto p = parse(args{"--port",
                        "1234",
                        "--interface",
                        "0.0.0.0",
                        "--max-connections",
                        "100",
                        "--connection-backlog",
                        "64",
                        "--frame-max",
                        "65536",
                        "--channel-max",
                        "10",
                        "--heartbeat",
                        "0",
                        "--max-message-size",
                        "1048576",
                        "--worker-threads",
                        "3",
                        "--daemon",
                        "--pid-dir",
                        "/run/flotilla",
                        "--name",
                        "node-a",
                        "--data-dir",
                        "/var/lib/flotilla",
                        "--no-data-dir",
                        "--truncate",
                        "yes",
                        "--store-sync",
                        "no",
                        "--repair-journal",
                        "yes",
                        "--memory-high-watermark",
                        "2GiB",
                        "--disk-free-limit",
                        "1GB",
                        "--queue-memory-limit",
                        "1MiB",
                        "--auth",
                        "no",
                        "--users-file",
                        "/etc/flotilla/users",
                        "--vhost",
                        "orders",
                        "--vhost",
                        "billing",
                        "--definitions",
                        "/etc/flotilla/definitions.json",
                        "--log-output",
                        "/var/log/flotillad.log",
                        "--log-enable",
                        "warning+",
                        "--inspector-port",
                        "8080",
                        "--inspector-interface",
                        "0.0.0.0",
                        "--inspector-web-dir",
                        "/usr/share/flotilla/web",
                        "--inspector-metrics-per-object",
                        "no",
                        "--cluster-name",
                        "alpha",
                        "--fabric-port",
                        "25672",
                        "--fabric-interface",
                        "127.0.0.2",
                        "--link-maintenance-interval",
                        "4",
                        "--link-heartbeat-interval",
                        "30",
                        "--fabric-certificate",
                        "/etc/flotilla/node.pem",
                        "--fabric-key",
                        "/etc/flotilla/node.key",
                        "--fabric-ca-file",
                        "/etc/flotilla/ca.pem",
                        "--fabric-key-passphrase",
                        "s3cret",
                        "--connector",
                        "name=a address=127.0.0.1:1 exchange=amq.direct",
                        "--config",
                        conf});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK_FALSE(p.result.exit_now);
    auto& o = p.opts;
    CHECK(o.port == 1234);
    CHECK(o.interface == "0.0.0.0");
    CHECK(o.max_connections == 100);
    CHECK(o.connection_backlog == 64);
    CHECK(o.frame_max == 65536);
    CHECK(o.channel_max == 10);
    CHECK(o.heartbeat == 0);
    CHECK(o.max_message_size == 1048576);
    CHECK(o.worker_threads == 3);
    CHECK(o.daemon);
    CHECK(o.pid_dir == "/run/flotilla");
    CHECK(o.name == "node-a");
    CHECK(o.data_dir == "/var/lib/flotilla");
    CHECK(o.no_data_dir);
    CHECK(o.truncate);
    CHECK(!o.store_sync);
    CHECK(o.repair_journal);
    CHECK(o.memory_high_watermark_bytes == (uint64_t{2} << 30));
    CHECK(o.memory_high_watermark == 0);
    CHECK(o.disk_free_limit == 1000000000);
    CHECK(o.queue_memory_limit == (uint64_t{1} << 20));
    CHECK_FALSE(o.auth);
    CHECK(o.users_file == "/etc/flotilla/users");
    CHECK(o.vhosts == std::vector<std::string>{"/", "orders", "billing"});
    CHECK(o.definitions == "/etc/flotilla/definitions.json");
    CHECK(o.log_output == "/var/log/flotillad.log");
    CHECK(o.log_enable == log_level::warning);
    CHECK(o.inspector_port == 8080);
    CHECK(o.inspector_interface == "0.0.0.0");
    CHECK(o.inspector_web_dir == "/usr/share/flotilla/web");
    CHECK_FALSE(o.inspector_metrics_per_object);
    CHECK(o.cluster_name == "alpha");
    CHECK(o.fabric_port == 25672);
    CHECK(o.fabric_interface == "127.0.0.2");
    CHECK(o.link_maintenance_interval == 4);
    CHECK(o.link_heartbeat_interval == 30);
    CHECK(o.fabric_certificate == "/etc/flotilla/node.pem");
    CHECK(o.fabric_key == "/etc/flotilla/node.key");
    CHECK(o.fabric_ca_file == "/etc/flotilla/ca.pem");
    CHECK(o.fabric_key_passphrase == "s3cret");
    CHECK(o.connectors.size() == 1);
    CHECK(o.config == conf);
    // Every option that takes part in describe() was changed above.
    auto d = describe(o);
    std::istringstream defaults(describe(broker_options{}));
    for (std::string lb; std::getline(defaults, lb);) {
      auto key = lb.substr(0, lb.find(' '));
      if (key == "vhost")
        continue;
      CHECK_MESSAGE(d.find(lb + "\n") == std::string::npos,
                    "unchanged: " << lb);
    }
  }

  TEST_CASE("short options and value syntaxes") {
    auto p = parse(args{"-p", "10001", "-d"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.port == 10001);
    CHECK(p.opts.daemon);
    p = parse(args{"-p5673"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.port == 5673);
    p = parse(args{"--port=5674", "--auth=no"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.port == 5674);
    CHECK_FALSE(p.opts.auth);
    p = parse(args{"-dp", "7"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.daemon);
    CHECK(p.opts.port == 7);
  }

  TEST_CASE("sizes and memory watermarks") {
    uint64_t v = 0;
    CHECK(parse_bytes("0", v));
    CHECK(v == 0);
    CHECK(parse_bytes("50MB", v));
    CHECK(v == 50000000);
    CHECK(parse_bytes("512mib", v));
    CHECK(v == (uint64_t{512} << 20));
    CHECK(parse_bytes("3kB", v));
    CHECK(v == 3000);
    CHECK(parse_bytes("7b", v));
    CHECK(v == 7);
    CHECK_FALSE(parse_bytes("", v));
    CHECK_FALSE(parse_bytes("MB", v));
    CHECK_FALSE(parse_bytes("5 MB", v));
    CHECK_FALSE(parse_bytes("5XB", v));
    CHECK_FALSE(parse_bytes("-5", v));
    CHECK_FALSE(parse_bytes("99999999999TiB", v));
    CHECK(v == 7);
    auto p = parse(args{"--memory-high-watermark", "0.25"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.memory_high_watermark == 0.25);
    CHECK(p.opts.memory_high_watermark_bytes == 0);
    p = parse(args{"--memory-high-watermark", "0"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.memory_high_watermark == 0);
    CHECK(p.opts.memory_high_watermark_bytes == 0);
    for (auto bad : {"1.5", "-0.1", "0.4x", "lots", ".", "nan"}) {
      p = parse(args{"--memory-high-watermark", bad});
      CHECK_MESSAGE(!p.result.ok, bad);
      CHECK(p.result.error.find("memory-high-watermark") != std::string::npos);
    }
    // describe() writes a fraction so that it reads back as one.
    broker_options o;
    o.memory_high_watermark = 1.0;
    auto d = describe(o);
    CHECK(d.find("memory-high-watermark = 1.0\n") != std::string::npos);
    p = parse(args{"--disk-free-limit", "ten"});
    CHECK_FALSE(p.result.ok);
  }

  TEST_CASE("port 0 asks for a free port") {
    auto p = parse(args{"-p", "0", "--inspector-port", "0"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.port == 0);
    CHECK(p.opts.inspector_port == 0);
  }

  TEST_CASE("qpidd command lines from the seeds") {
    auto p = parse(args{"-p", "10001", "--pid-dir", "/tmp/brokera",
                        "--data-dir", "/tmp/brokera", "--auth", "no"});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK(p.opts.port == 10001);
    CHECK(p.opts.pid_dir == "/tmp/brokera");
    CHECK(p.opts.data_dir == "/tmp/brokera");
    CHECK_FALSE(p.opts.auth);
    p = parse(args{"-p5672", "--cluster-name=MY_CLUSTER",
                   "--log-output=cluster0.log", "-d", "--no-data-dir",
                   "--auth=no"});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK(p.opts.port == 5672);
    CHECK(p.opts.cluster_name == "MY_CLUSTER");
    CHECK(p.opts.log_output == "cluster0.log");
    CHECK(p.opts.daemon);
    CHECK(p.opts.no_data_dir);
    CHECK_FALSE(p.opts.auth);
    p = parse(args{"--cluster-name", "my_cluster", "--truncate", "yes"});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK(p.opts.truncate);
  }

  TEST_CASE("log-enable takes qpidd's syntax") {
    log_level l = log_level::critical;
    CHECK(parse_log_enable("info+", l));
    CHECK(l == log_level::info);
    CHECK(parse_log_enable("debug+", l));
    CHECK(l == log_level::debug);
    CHECK(parse_log_enable("warning+", l));
    CHECK(l == log_level::warning);
    CHECK(parse_log_enable("error", l));
    CHECK(l == log_level::error);
    CHECK(parse_log_enable("trace+", l));
    CHECK(l == log_level::trace);
    CHECK(parse_log_enable("notice", l));
    CHECK(l == log_level::notice);
    CHECK(parse_log_enable("critical+", l));
    CHECK(l == log_level::critical);
    CHECK(parse_log_enable("INFO+", l));
    CHECK(l == log_level::info);
    for (auto bad : {"", "+", "info++", "warn", "info+:Broker", " info", "8"}) {
      l = log_level::notice;
      CHECK_FALSE_MESSAGE(parse_log_enable(bad, l), bad);
      CHECK(l == log_level::notice);
    }
    for (auto lvl : {log_level::trace, log_level::debug, log_level::info,
                     log_level::notice, log_level::warning, log_level::error,
                     log_level::critical}) {
      log_level back = log_level::info;
      CHECK(parse_log_enable(std::string(to_string(lvl)) + "+", back));
      CHECK(back == lvl);
    }
  }

  TEST_CASE("repeated log-enable: the lowest level wins") {
    auto p = parse(args{"--log-enable", "error"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.log_enable == log_level::error); // Replaces the default.
    p = parse(args{"--log-enable", "error", "--log-enable", "debug+"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.log_enable == log_level::debug);
  }

  TEST_CASE("vhosts are deduplicated and / always exists") {
    auto p = parse(
      args{"--vhost", "a", "--vhost", "/", "--vhost", "a", "--vhost", "b"});
    REQUIRE(p.result.ok);
    CHECK(p.opts.vhosts == std::vector<std::string>{"/", "a", "b"});
  }

  TEST_CASE("--help lists every option") {
    auto p = parse(args{"--help"});
    CHECK(p.result.ok);
    CHECK(p.result.exit_now);
    CHECK(p.result.exit_code == 0);
    CHECK(starts_with(p.out, "Usage: flotillad"));
    for (auto& name : option_names())
      CHECK_MESSAGE(p.out.find("--" + name) != std::string::npos, name);
    CHECK(p.out.find("-p, --port PORT") != std::string::npos);
    CHECK(p.out.find("(default: 5672)") != std::string::npos);
    CHECK(parse(args{"-h"}).out == p.out);
    // --help wins over other options, even invalid values.
    auto q = parse(args{"--port", "abc", "--help"});
    CHECK(q.result.ok);
    CHECK(q.result.exit_now);
    // No line is wider than 80 columns.
    std::istringstream in(p.out);
    for (std::string line; std::getline(in, line);)
      CHECK_MESSAGE(line.size() <= 80, line);
  }

  TEST_CASE("option_names covers the documented options") {
    auto names = option_names();
    for (auto n : {"help",
                   "version",
                   "config",
                   "port",
                   "interface",
                   "data-dir",
                   "no-data-dir",
                   "pid-dir",
                   "auth",
                   "log-output",
                   "log-enable",
                   "daemon",
                   "worker-threads",
                   "max-connections",
                   "connection-backlog",
                   "users-file",
                   "vhost",
                   "inspector-port",
                   "inspector-interface",
                   "frame-max",
                   "channel-max",
                   "heartbeat",
                   "max-message-size",
                   "name",
                   "cluster-name",
                   "truncate"})
      CHECK_MESSAGE(std::find(names.begin(), names.end(), n) != names.end(), n);
  }

  TEST_CASE("--version") {
    auto p = parse(args{"--version"});
    CHECK(p.result.ok);
    CHECK(p.result.exit_now);
    CHECK(p.result.exit_code == 0);
    CHECK(p.out == "flotillad " + std::string(version()) + "\n");
    CHECK_FALSE(version().empty());
  }

  TEST_CASE("config file with comments and whitespace") {
    temp_dir dir;
    auto path = dir.write("flotillad.conf",
                          "# A comment\n"
                          "\n"
                          "   # An indented comment\n"
                          "port=10001\n"
                          "  interface   =   0.0.0.0  \n"
                          "\theartbeat\t=\t30\t\n"
                          "auth = no # trailing comment\n"
                          "daemon = true\r\n"
                          "no-data-dir = 1\n"
                          "truncate = off\n"
                          "data-dir = /srv/data#1\n"
                          "vhost = a\n"
                          "vhost = b\n"
                          "log-enable = debug+\n"
                          "pid-dir =\n"
                          "cluster-name = c1"); // No final newline.
    broker_options o;
    auto r = parse_config_file(path, o);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK_FALSE(r.exit_now);
    CHECK(o.port == 10001);
    CHECK(o.interface == "0.0.0.0");
    CHECK(o.heartbeat == 30);
    CHECK_FALSE(o.auth);
    CHECK(o.daemon);
    CHECK(o.no_data_dir);
    CHECK_FALSE(o.truncate);
    CHECK(o.data_dir == "/srv/data#1");
    CHECK(o.vhosts == std::vector<std::string>{"/", "a", "b"});
    CHECK(o.log_enable == log_level::debug);
    CHECK(o.pid_dir.empty());
    CHECK(o.cluster_name == "c1");
    CHECK(o.config.empty());
    // The same through --config.
    auto p = parse(args{"--config", path});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK(p.opts.config == path);
    CHECK(p.opts.port == 10001);
    CHECK(p.opts.vhosts == std::vector<std::string>{"/", "a", "b"});
  }

  TEST_CASE("the command line wins over the file") {
    temp_dir dir;
    auto path = dir.write("flotillad.conf", "port = 1000\n"
                                            "heartbeat = 5\n"
                                            "vhost = from-file\n"
                                            "log-enable = error\n");
    // Before or after --config makes no difference.
    auto p = parse(args{"--port", "2000", "--config", path, "--vhost", "cli",
                        "--log-enable", "warning"});
    REQUIRE_MESSAGE(p.result.ok, p.result.error);
    CHECK(p.opts.port == 2000);
    CHECK(p.opts.heartbeat == 5); // From the file: not on the command line.
    // A repeatable option on the command line replaces the file's values.
    CHECK(p.opts.vhosts == std::vector<std::string>{"/", "cli"});
    CHECK(p.opts.log_enable == log_level::warning);
    p = parse(args{"--config", path});
    REQUIRE(p.result.ok);
    CHECK(p.opts.vhosts == std::vector<std::string>{"/", "from-file"});
    CHECK(p.opts.log_enable == log_level::error);
  }

  TEST_CASE("config file errors name the file and line") {
    temp_dir dir;
    auto check_error = [&](const std::string& text, const std::string& want) {
      auto path = dir.write("flotillad.conf", text);
      broker_options o;
      auto r = parse_config_file(path, o);
      CHECK_FALSE(r.ok);
      CHECK(r.exit_now);
      CHECK(r.exit_code == 2);
      CHECK(r.error == path + ":" + want);
      // Through --config the message is the same.
      auto p = parse(args{"--config", path});
      CHECK_FALSE(p.result.ok);
      CHECK(p.result.error == path + ":" + want);
    };
    check_error("# c\n\n\n\n\nauth = no\nprot = 5672\n",
                "7: unknown option 'prot' (did you mean 'port'?)");
    check_error("\n\nport = abc\n",
                "3: invalid value 'abc' for option 'port': expected an "
                "integer 0-65535");
    check_error("port = 65536\n", "1: invalid value '65536' for option 'port': "
                                  "expected an integer 0-65535");
    check_error("port = -1\n", "1: invalid value '-1' for option 'port': "
                               "expected an integer 0-65535");
    check_error("port =\n", "1: invalid value '' for option 'port': expected "
                            "an integer 0-65535");
    check_error("port\n", "1: missing '=' in 'port' (expected 'key = value')");
    check_error("= 5\n", "1: missing option name before '='");
    check_error("auth = maybe\n", "1: invalid value 'maybe' for option 'auth': "
                                  "expected yes or no");
    check_error("port = 1\nport = 2\n",
                "2: option 'port' given more than once (first on line 1)");
    check_error("config = other.conf\n",
                "1: option 'config' is only allowed on the command line");
    check_error("help = yes\n",
                "1: option 'help' is only allowed on the command line");
    check_error("xyzzy = 1\n", "1: unknown option 'xyzzy'");
    check_error("max-conections = 5\n", "1: unknown option 'max-conections' "
                                        "(did you mean 'max-connections'?)");
    check_error("log-enable = loud\n",
                "1: invalid value 'loud' for option 'log-enable': expected "
                "LEVEL or LEVEL+ with LEVEL one of trace, debug, info, notice, "
                "warning, error, critical");
    check_error("frame-max = 100\n",
                "1: invalid value '100' for option 'frame-max': expected an "
                "integer 4096-1073741824");
    check_error("worker-threads = 0\n",
                "1: invalid value '0' for option 'worker-threads': expected an "
                "integer 1-1024");
    check_error("name = two words\n",
                "1: invalid value 'two words' for option 'name': expected a "
                "name without spaces");
    check_error("log-output = syslog\n",
                "1: invalid value 'syslog' for option 'log-output': expected "
                "stderr, stdout or a file path (syslog is not supported)");
  }

  TEST_CASE("a missing config file is an error") {
    auto p = parse(args{"--config", "/nonexistent/flotillad.conf"});
    CHECK_FALSE(p.result.ok);
    CHECK(p.result.exit_now);
    CHECK(p.result.exit_code == 2);
    CHECK(p.result.error
          == "cannot open config file '/nonexistent/flotillad.conf': No such "
             "file or directory");
  }

  TEST_CASE("command line errors") {
    auto error_of = [](args&& a) {
      auto p = parse(std::move(a));
      CHECK_FALSE(p.result.ok);
      CHECK(p.result.exit_now);
      CHECK(p.result.exit_code == 2);
      CHECK(p.out.empty());
      return p.result.error;
    };
    CHECK(error_of(args{"--prot", "5672"})
          == "unknown option '--prot' (did you mean '--port'?); see --help");
    CHECK(error_of(args{"--prot=5672"})
          == "unknown option '--prot' (did you mean '--port'?); see --help");
    CHECK(error_of(args{"--max-conn", "5"})
          == "unknown option '--max-conn' (did you mean "
             "'--max-connections'?); see --help");
    CHECK(error_of(args{"-x"}) == "unknown option '-x'; see --help");
    CHECK(error_of(args{"--port"}) == "option '--port' requires a value");
    CHECK(error_of(args{"-p"}) == "option '--port' requires a value");
    CHECK(error_of(args{"--daemon=yes"}) == "option '--daemon' takes no value");
    CHECK(error_of(args{"--port", "abc"})
          == "invalid value 'abc' for option '--port': expected an integer "
             "0-65535");
    CHECK(error_of(args{"--auth", "maybe"})
          == "invalid value 'maybe' for option '--auth': expected yes or no");
    CHECK(error_of(args{"--port", "1", "-p", "2"})
          == "option '--port' given more than once");
    CHECK(error_of(args{"5672"})
          == "unexpected argument '5672' (options start with '-'; see --help)");
    CHECK(error_of(args{"--config", ""})
          == "invalid value '' for option '--config': expected a file path");
    CHECK(error_of(args{"--vhost", ""})
          == "invalid value '' for option '--vhost': expected a virtual host "
             "name of 1-255 bytes");
  }

  TEST_CASE("command line errors come before file errors") {
    temp_dir dir;
    auto path = dir.write("bad.conf", "prot = 1\n");
    auto p = parse(args{"--config", path, "--port", "x"});
    CHECK_FALSE(p.result.ok);
    CHECK(p.result.error
          == "invalid value 'x' for option '--port': expected an integer "
             "0-65535");
  }

  TEST_CASE("describe output is a config file that round-trips") {
    auto p = parse(args{"-p", "0", "--vhost", "x", "--log-enable", "trace",
                        "--name", "n1", "--no-data-dir"});
    REQUIRE(p.result.ok);
    auto text = describe(p.opts);
    CHECK(text.find("port = 0\n") != std::string::npos);
    CHECK(text.find("vhost = /\nvhost = x\n") != std::string::npos);
    CHECK(text.find("log-enable = trace+\n") != std::string::npos);
    CHECK(text.find("no-data-dir = yes\n") != std::string::npos);
    CHECK(text.find("pid-dir =\n") != std::string::npos);
    CHECK(text.find("config") == std::string::npos);
    temp_dir dir;
    auto path = dir.write("described.conf", text);
    broker_options back;
    auto r = parse_config_file(path, back);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(describe(back) == text);
  }

  TEST_CASE("the example flotillad.conf documents every option") {
    auto text = read_file(FLOTILLA_EXAMPLE_CONF);
    REQUIRE_FALSE(text.empty());
    // As shipped (all commented out) it yields the defaults.
    broker_options o;
    auto r = parse_config_file(FLOTILLA_EXAMPLE_CONF, o);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(describe(o) == describe(broker_options{}));
    // Every option allowed in a file appears as "# key =".
    for (auto& name : option_names()) {
      bool cli_only = name == "help" || name == "version" || name == "config";
      auto found = text.find("\n# " + name + " =") != std::string::npos;
      CHECK_MESSAGE(found != cli_only, name);
    }
    // Uncommented, its values are the defaults (host-dependent ones aside).
    std::istringstream in(text);
    std::string uncommented;
    for (std::string line; std::getline(in, line);) {
      if (!starts_with(line, "# ") || line.find(" =") == std::string::npos
          || line.find('<') != std::string::npos)
        continue;
      auto key = line.substr(2, line.find(" =") - 2);
      if (key.find(' ') != std::string::npos)
        continue; // Prose that happens to contain " =".
      uncommented += line.substr(2) + "\n";
    }
    temp_dir dir;
    auto path = dir.write("uncommented.conf", uncommented);
    broker_options u;
    r = parse_config_file(path, u);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(describe(u) == describe(broker_options{}));
  }

} // TEST_SUITE
