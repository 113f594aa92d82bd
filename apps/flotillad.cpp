// flotillad: one Flotilla node. Parses options, starts the actor system, the
// web inspector and the AMQP listener, prints "inspector port=N" and then
// "listening port=N", and runs until SIGTERM or SIGINT, then closes every
// client with 320 CONNECTION_FORCED and exits 0.

#include <malloc.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <caf/all.hpp>

#include "actors/broker.hpp"
#include "actors/log.hpp"
#include "actors/resource_monitor.hpp"
#include "actors/store_actor.hpp"
#include "config/broker_options.hpp"
#include "config/connectors.hpp"
#include "config/users.hpp"
#include "federation/core.hpp"
#include "federation/fabric.hpp"
#include "management/agent.hpp"
#include "management/definitions.hpp"
#include "transport/amqp_server.hpp"
#include "transport/inspector_server.hpp"

namespace fs = std::filesystem;
using namespace flotilla;

namespace {

log_level to_log_level(config::log_level x) {
  switch (x) {
    case config::log_level::trace:
      return log_level::trace;
    case config::log_level::debug:
      return log_level::debug;
    case config::log_level::info:
      return log_level::info;
    case config::log_level::notice:
      return log_level::notice;
    case config::log_level::warning:
      return log_level::warning;
    default:
      return log_level::error;
  }
}

/// Forks into the background (qpidd's -d). The parent waits until the child
/// reports its port through a pipe, prints it (so scripts can read it) and
/// exits; returns the write end of the pipe in the child.
int daemonize() {
  int fds[2];
  if (pipe(fds) != 0) {
    std::perror("flotillad: pipe");
    std::exit(1);
  }
  auto pid = fork();
  if (pid < 0) {
    std::perror("flotillad: fork");
    std::exit(1);
  }
  if (pid > 0) {
    close(fds[1]);
    char buf[256];
    auto n = read(fds[0], buf, sizeof(buf) - 1);
    if (n <= 0) {
      std::fprintf(stderr, "flotillad: daemon failed to start\n");
      std::exit(1);
    }
    buf[n] = '\0';
    std::fputs(buf, stdout);
    std::exit(0);
  }
  close(fds[0]);
  setsid();
  return fds[1];
}

/// Returns the directory of the built inspector page: --inspector-web-dir,
/// else "web" next to the binary's folder (the build tree: BUILD/apps/
/// flotillad and BUILD/web), else the source tree's build output.
std::string find_web_dir(const config::broker_options& opts) {
  if (!opts.inspector_web_dir.empty())
    return opts.inspector_web_dir;
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto& candidate :
         {exe.parent_path().parent_path() / "web", exe.parent_path() / "web"})
      if (fs::is_regular_file(candidate / "index.html", ec))
        return candidate.string();
  }
  return {};
}

/// Raises the open-files limit to the hard limit: every client is a socket.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int run(config::broker_options& opts) {
  int daemon_pipe = opts.daemon ? daemonize() : -1;
  if (!log_init(to_log_level(opts.log_enable), opts.log_output)) {
    std::fprintf(stderr, "flotillad: cannot open log output '%s': %s\n",
                 opts.log_output.c_str(), std::strerror(errno));
    return 1;
  }
  raise_fd_limit();
  std::shared_ptr<const config::user_db> users;
  if (!opts.users_file.empty()) {
    std::string error;
    auto db = config::user_db::load(opts.users_file, error);
    if (!db) {
      std::fprintf(stderr, "flotillad: %s\n", error.c_str());
      return 2;
    }
    users = std::make_shared<config::user_db>(std::move(*db));
  } else {
    users = std::make_shared<config::user_db>(
      config::user_db::with_default_guest());
  }
  std::error_code fec;
  if (!opts.no_data_dir) {
    fs::create_directories(opts.data_dir, fec);
    if (fec) {
      std::fprintf(stderr, "flotillad: cannot create data dir '%s': %s\n",
                   opts.data_dir.c_str(), fec.message().c_str());
      return 1;
    }
  }
  // Signals go to the main thread only: block them before threads start.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  federation::fabric_settings fopts;
  fopts.interface = opts.fabric_interface;
  fopts.port = opts.fabric_port;
  fopts.maintenance_interval
    = std::chrono::seconds(opts.link_maintenance_interval);
  fopts.heartbeat_interval = std::chrono::seconds(opts.link_heartbeat_interval);
  if (!opts.no_data_dir)
    fopts.routes_path
      = (fs::path{opts.data_dir} / "federation.routes").string();
  fopts.certificate = opts.fabric_certificate;
  fopts.key = opts.fabric_key;
  fopts.ca_file = opts.fabric_ca_file;
  fopts.passphrase = opts.fabric_key_passphrase;
  if (auto why = federation::validate(fopts); !why.empty()) {
    std::fprintf(stderr, "flotillad: %s\n", why.c_str());
    return 2;
  }
  for (auto& text : opts.connectors) {
    config::connector_spec spec;
    if (config::parse_connector(text, spec).empty() && !fopts.tls()
        && !federation::is_loopback(spec.host)) {
      std::fprintf(stderr,
                   "flotillad: connector '%s': %s is not a loopback address; "
                   "links elsewhere need fabric TLS (fabric-certificate, "
                   "fabric-key, fabric-ca-file)\n",
                   spec.name.c_str(), spec.host.c_str());
      return 2;
    }
  }

  // Connector passwords are kept in the config file in clear (as in
  // ActiveMQ's networkConnectors): say so when others may read it.
  if (!opts.config.empty() && !opts.connectors.empty()) {
    struct stat cs {};
    if (::stat(opts.config.c_str(), &cs) == 0 && (cs.st_mode & 077) != 0)
      FLOTILLA_LOG(warning, "config file "
                              << opts.config
                              << " may hold connector passwords and others "
                                 "can read it; chmod 600 it");
  }

  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(opts.worker_threads));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // CAF's default idle workers spin, then wake every 50 us for tens of
  // milliseconds before they block: at moderate rates (scenario 5 of
  // docs/benchmarks.md, 2,000-10,000 msg/s) that kept both workers awake
  // and cost a third of the broker's CPU on two cores, taken from the
  // clients and the I/O thread. Spin briefly, then block: a worker is woken
  // when work is scheduled to it from outside, and checks for work to steal
  // every millisecond. Measured: same throughput, about 40% fewer
  // worker context switches.
  cfg.set("work-stealing.aggressive-poll-attempts", size_t{10});
  cfg.set("work-stealing.aggressive-steal-interval", size_t{1});
  cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
  cfg.set("work-stealing.relaxed-steal-interval", size_t{1});
  cfg.set("work-stealing.relaxed-sleep-duration",
          caf::timespan{std::chrono::milliseconds(1)});
  federation::configure(cfg, fopts);
  caf::actor_system sys{cfg};

  // The fabric port opens first: management reports it (broker_limits).
  std::unique_ptr<federation::fabric> fabric;
  try {
    fabric = std::make_unique<federation::fabric>(sys, fopts, users);
  } catch (std::exception& e) {
    FLOTILLA_LOG(error, e.what());
    std::fprintf(stderr, "flotillad: %s\n", e.what());
    return 1;
  }

  broker_limits limits;
  limits.frame_max = opts.frame_max;
  limits.channel_max = opts.channel_max;
  limits.heartbeat = opts.heartbeat;
  limits.max_message_size = opts.max_message_size;
  limits.auth = opts.auth;
  limits.node_name = opts.name;
  limits.cluster_name
    = opts.cluster_name.empty() ? opts.name : opts.cluster_name;
  limits.fabric_port = fabric->port();
  limits.fabric_interface = opts.fabric_interface;
  limits.federation_id = fabric->broker_id();
  if (!opts.no_data_dir && opts.queue_memory_limit != 0) {
    limits.queue_memory_limit = opts.queue_memory_limit;
    limits.paging_dir = (fs::path{opts.data_dir} / "paging").string();
    // Paged messages are a cache of the queues' memory: never recovered.
    fs::remove_all(limits.paging_dir, fec);
    fs::create_directories(limits.paging_dir, fec);
  }
  broker node{sys, limits, users};
  recovered_state recovered;
  if (!opts.no_data_dir) {
    store::journal_options jopts;
    jopts.dir = (fs::path{opts.data_dir} / "journal").string();
    jopts.sync = opts.store_sync;
    jopts.repair = opts.repair_journal;
    if (opts.truncate) {
      fs::remove_all(jopts.dir, fec);
      FLOTILLA_LOG(notice, "--truncate: discarded " << jopts.dir);
    }
    store::recovery_report report;
    std::string error;
    auto journal = open_journal(jopts, recovered, report, error);
    if (!journal) {
      FLOTILLA_LOG(error, "cannot open the journal: " << error);
      std::fprintf(stderr,
                   "flotillad: cannot open the journal: %s\n%s\n"
                   "(start with --repair-journal yes to quarantine the damaged "
                   "segment and list what is lost)\n",
                   error.c_str(), report.to_string().c_str());
      return 1;
    }
    if (!report.truncated_file.empty() || !report.damaged.empty())
      FLOTILLA_LOG(warning, report.to_string());
    else
      FLOTILLA_LOG(notice, report.to_string());
    if (!opts.store_sync)
      FLOTILLA_LOG(warning, "--store-sync no: confirmed messages may be lost "
                            "on power loss");
    node.set_store(spawn_store(sys, std::move(journal), [&node](bool failing) {
      node.set_alarm(broker::store_alarm, failing);
    }));
  }
  node.add_vhost("/");
  for (auto& vh : opts.vhosts)
    node.add_vhost(vh);
  if (!opts.no_data_dir) {
    // Never inside the log macro: it skips its argument below the level.
    auto summary = node.restore(recovered);
    FLOTILLA_LOG(notice, "recovered " << summary);
  }
  if (!opts.definitions.empty()) {
    std::string summary;
    std::string error;
    if (!management::load_definitions(node, opts.definitions, summary, error)) {
      FLOTILLA_LOG(error, "definitions: " << error);
      std::fprintf(stderr, "flotillad: %s\n", error.c_str());
      node.stop();
      return 1;
    }
    FLOTILLA_LOG(notice, "definitions: " << summary);
  }
  // The management agents: qmf.default.direct / qmf.default.topic.
  auto installed = management::install_agents(node);
  auto& agents = installed.agents;
  auto stop_agents = [&agents, &fabric] {
    fabric->stop();
    for (auto& a : agents)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    agents.clear();
  };
  // Federation: links and bridges (after the agents' event sink exists).
  if (std::string error; !fabric->start(node, error)) {
    FLOTILLA_LOG(error, "federation: " << error);
    std::fprintf(stderr,
                 "flotillad: federation: %s\n(fix or remove the file; it "
                 "holds the durable links and routes)\n",
                 error.c_str());
    stop_agents();
    node.stop();
    return 1;
  }
  // Connectors of the config file (checked when the options were parsed).
  for (auto& text : opts.connectors) {
    config::connector_spec spec;
    if (config::parse_connector(text, spec).empty())
      fabric->add_connector(spec);
  }

  // The web inspector: its own Beast thread, asks the agents for snapshots.
  inspector_server::options iopts;
  iopts.interface = opts.inspector_interface;
  iopts.port = opts.inspector_port;
  iopts.web_dir = find_web_dir(opts);
  iopts.auth = opts.auth;
  iopts.metrics_per_object = opts.inspector_metrics_per_object;
  std::unique_ptr<inspector_server> inspector;
  try {
    inspector
      = std::make_unique<inspector_server>(installed.door, node.users(), iopts);
  } catch (std::exception& e) {
    FLOTILLA_LOG(error, e.what());
    std::fprintf(stderr, "flotillad: %s\n", e.what());
    stop_agents();
    node.stop();
    return 1;
  }
  inspector->start();
  if (iopts.web_dir.empty())
    FLOTILLA_LOG(warning, "inspector: the page (web/) was not found; the API "
                          "and /metrics work, the page does not "
                          "(--inspector-web-dir)");

  amqp_server::options sopts;
  sopts.interface = opts.interface;
  sopts.port = opts.port;
  sopts.backlog = static_cast<int>(opts.connection_backlog);
  sopts.max_connections = opts.max_connections;
  std::unique_ptr<amqp_server> server;
  try {
    server = std::make_unique<amqp_server>(node, sopts);
  } catch (std::exception& e) {
    FLOTILLA_LOG(error, e.what());
    std::fprintf(stderr, "flotillad: %s\n", e.what());
    inspector->stop();
    stop_agents();
    node.stop();
    return 1;
  }
  server->start();
  fabric->set_amqp_port(server->port());

  resource_limits rlimits;
  rlimits.memory_high_watermark
    = opts.memory_high_watermark_bytes != 0
        ? opts.memory_high_watermark_bytes
        : static_cast<uint64_t>(opts.memory_high_watermark
                                * static_cast<double>(total_memory()));
  if (!opts.no_data_dir) {
    rlimits.data_dir = opts.data_dir;
    rlimits.disk_free_limit = opts.disk_free_limit;
  }
  FLOTILLA_LOG(notice, "memory high watermark "
                         << (rlimits.memory_high_watermark >> 20) << " MiB ("
                         << (total_memory() >> 20)
                         << " MiB available), disk free limit "
                         << rlimits.disk_free_limit << " bytes");
  auto monitor = spawn_resource_monitor(sys, node, rlimits);

  std::string pid_dir = !opts.pid_dir.empty() ? opts.pid_dir
                        : opts.no_data_dir    ? std::string{}
                                              : opts.data_dir;
  fs::path pid_file;
  if (!pid_dir.empty()) {
    fs::create_directories(pid_dir, fec);
    pid_file = fs::path{pid_dir} / "flotillad.pid";
    std::ofstream{pid_file} << getpid() << '\n';
  }

  // The inspector line first: harnesses wait for "listening" and then know
  // both ports.
  auto line = "inspector port=" + std::to_string(inspector->port())
              + "\nfabric port=" + std::to_string(fabric->port())
              + "\nlistening port=" + std::to_string(server->port()) + "\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  if (daemon_pipe >= 0) {
    (void)!write(daemon_pipe, line.data(), line.size());
    close(daemon_pipe);
    if (!freopen("/dev/null", "w", stdout)) {
      // Nothing sensible to do; stdout is only used for the startup line.
    }
  }
  FLOTILLA_LOG(notice, "flotillad " << config::version() << " listening on "
                                    << opts.interface << ":" << server->port()
                                    << " (node " << opts.name << ")");
  FLOTILLA_LOG(notice, "inspector on http://" << opts.inspector_interface << ":"
                                              << inspector->port() << "/");
  FLOTILLA_LOG(notice, "fabric on " << opts.fabric_interface << ":"
                                    << fabric->port() << " (federation id "
                                    << fabric->broker_id() << ")");

  int sig = 0;
  sigwait(&sigs, &sig);
  FLOTILLA_LOG(notice, "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                                   << ", shutting down");
  server->stop_accepting();
  node.close_all_connections("shutdown");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server->open_sockets() > 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  server->stop();
  server.reset();
  inspector->stop();
  caf::anon_send_exit(monitor, caf::exit_reason::user_shutdown);
  stop_agents();
  node.stop();
  if (!pid_file.empty())
    fs::remove(pid_file, fec);
  FLOTILLA_LOG(notice, "stopped");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  // Large message bodies are allocated and freed at a high rate. glibc's
  // defaults map each one afresh or return the arena's top to the kernel
  // and fault it back in (page faults were 7% of the CPU with 1 MiB
  // messages): keep freed memory up to 128 MiB for reuse. Memory alarms
  // count memory in use (mallinfo2), not what the allocator keeps.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  config::broker_options opts;
  auto res = config::parse_command_line(argc, argv, opts, std::cout);
  if (res.exit_now) {
    if (!res.ok)
      std::cerr << "flotillad: " << res.error << "\n";
    return res.exit_code;
  }
  return run(opts);
}
