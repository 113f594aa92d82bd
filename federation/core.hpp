#pragma once

// The federation's rules as plain C++ (no actors, no sockets), so they are
// tested without a fabric: loop and hop checks on a message's trace, the
// per-origin duplicate window, origin numbering, the path-vector interest of
// dynamic routes, and the reconnect backoff.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/message.hpp"
#include "federation/routes_file.hpp"
#include "federation/wire.hpp"

namespace flotilla::federation {

/// AMQP headers that carry a federated message's history on every broker it
/// reaches (consumers see them, as RabbitMQ's x-received-from).
constexpr const char* trace_header = "x-flotilla-trace";
constexpr const char* origin_seq_header = "x-flotilla-origin-seq";

/// Queues that bridges use on a source broker start with this prefix; their
/// bindings are not local interest (they already are propagated interest).
constexpr const char* export_queue_prefix = "federation.";

/// Returns the name of a durable route's queue on its source broker:
/// "federation.NODE.BRIDGE" (NODE: the destination's node name).
std::string durable_export_queue(const std::string& dest_node,
                                 const std::string& bridge);

/// Where a message came from and which brokers it left, origin first.
struct trace_info {
  std::string origin;
  uint64_t origin_seq = 0;
  std::vector<std::string> trace;
};

/// Returns the history of a message that arrived over a link, or nullopt
/// for a message published on this broker.
std::optional<trace_info> read_trace(const message& m);

/// Stores the history in the message's headers (replacing older ones) and
/// drops the raw header so deliveries re-encode the properties.
void write_trace(message& m, const trace_info& t);

/// Returns "a,b,c" / parses it back.
std::string join_ids(const std::vector<std::string>& ids);
std::vector<std::string> split_ids(const std::string& text);

bool contains(const std::vector<std::string>& ids, const std::string& id);

/// Why a message arriving from a link is not accepted.
enum class arrival { accept, loop, too_many_hops, duplicate };

const char* to_string(arrival x);

/// Remembers, per origin broker, which origin numbers arrived recently: the
/// highest number and a bitmap of the `window` numbers below it. A number
/// older than the window counts as a duplicate (and is counted as such): a
/// message overtaken by `window` later messages of the same origin on another
/// path is dropped. Thread-safe.
class dedup_window {
public:
  explicit dedup_window(uint64_t window = 65536) : window_(window) {}

  /// Returns true the first time (origin, seq) is seen.
  bool accept(const std::string& origin, uint64_t seq);

  /// Forgets (origin, seq): a message accepted but then refused by a queue
  /// is accepted again when the source forwards it once more.
  void forget(const std::string& origin, uint64_t seq);

private:
  struct per_origin {
    uint64_t high = 0;
    std::vector<uint64_t> bits; // window_ bits, indexed by seq % window_
  };
  bool test_and_set(per_origin& w, uint64_t seq);

  uint64_t window_;
  std::mutex mtx_;
  std::unordered_map<std::string, per_origin> origins_;
};

/// Checks a message arriving at broker `self` against its trace, the hop
/// limit and the duplicate window (the window is only touched when the other
/// checks pass).
arrival check_arrival(const trace_info& t, const std::string& self,
                      uint32_t max_hops, dedup_window& seen);

/// Numbers the messages that leave their origin broker. A message routed to
/// several bridges' queues is one shared object: every bridge gets the same
/// number for it, so the brokers downstream recognize the copies.
/// Thread-safe.
class origin_numbers {
public:
  uint64_t number_of(const message_ptr& m);

private:
  struct entry {
    std::weak_ptr<const message> msg;
    uint64_t seq = 0;
  };
  std::mutex mtx_;
  uint64_t next_ = 1;
  size_t inserts_ = 0;
  std::unordered_map<const message*, entry> live_;
};

/// What a queue of broker `self` writes when it pages `m` out (the fabric
/// installs this as the broker's page_out_hook): in an export queue
/// (`federation.` names), a message that originated here gets its origin
/// number now, written into its trace headers (origin and trace: `self`),
/// so that every copy read back, in any export queue, carries the same
/// number (the object read back is new, and numbers() keys on objects).
/// Anything else is returned as it is.
message_ptr number_for_paging(const std::string& queue, const message_ptr& m,
                              const std::string& self, origin_numbers& numbers);

/// The interest a broker sends to one peer for one exchange (dynamic routes):
/// its own bindings as (key, [self]), plus the items it received from the
/// other peers with itself appended, leaving out items whose path names the
/// peer or itself and items longer than `max_hops`. Sorted, no duplicates.
struct received_interest {
  std::string peer; ///< Who sent these items (a downstream broker).
  std::vector<interest_item> items;
};
std::vector<interest_item>
interest_for_peer(const std::string& self, const std::string& peer,
                  const std::vector<std::string>& local_keys,
                  const std::vector<received_interest>& received,
                  uint32_t max_hops);

/// Returns the distinct keys of `items`, sorted.
std::vector<std::string> keys_of(const std::vector<interest_item>& items);

/// Reconnect delays of a link: `initial`, doubling, at most `max`.
class backoff {
public:
  backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(max), next_(initial) {}

  /// Returns the delay before the next attempt and doubles the one after.
  std::chrono::milliseconds next();

  /// Back to the initial delay (after a success).
  void reset() {
    next_ = initial_;
  }

  std::chrono::milliseconds max() const {
    return max_;
  }

private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds next_;
};

/// Returns the delay before a link reconnects after losing its connection:
/// `delay`, plus half of it if this broker's id is the greater one of the
/// two. Both ends of a lost connection notice the loss at the same moment;
/// when each has a link to the other, equal delays would make both dial at
/// once, and CAF 0.17 may then close both new connections (each side keeps
/// the connection it accepted and drops the one it dialled). The staggered
/// side finds the other's connection up and logs in over it. Ids unknown
/// (empty): `delay`.
std::chrono::milliseconds reconnect_delay(std::chrono::milliseconds delay,
                                          const std::string& local_id,
                                          const std::string& remote_id);

/// When a declared route that is not running raises its alarm: after it
/// has been seen not running for more than `limit_ms` (consecutively), and
/// cleared as soon as it runs again.
class route_alarm {
public:
  /// Records whether the route runs at `now_ms`. Returns true if the alarm
  /// was raised or cleared by this call.
  bool update(bool running, int64_t now_ms, int64_t limit_ms);

  bool raised() const {
    return raised_;
  }

private:
  int64_t down_since_ = -1; ///< -1: running.
  bool raised_ = false;
};

/// Returns a new random federation id for this broker process (16 hex
/// digits): traces name brokers by it.
std::string make_broker_id();

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

} // namespace flotilla::federation
