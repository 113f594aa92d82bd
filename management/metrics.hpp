#pragma once

// The Prometheus text exposition (format 0.0.4) of the web inspector's
// /metrics, built from management objects. The metrics and their meaning
// are listed in docs/inspector.md. Included by management/*.cpp only.

#include <string>
#include <vector>

namespace flotilla::management {

class Overview;
class Queue;
class Exchange;
class Connection;
class Link;
class Bridge;

/// The objects one scrape reports.
struct metrics_input {
  const Overview* overview = nullptr;
  std::vector<const Queue*> queues;
  std::vector<const Exchange*> exchanges;
  std::vector<const Connection*> connections;
  std::vector<const Link*> links;     ///< The node's links (every vhost).
  std::vector<const Bridge*> bridges; ///< Routes in and out, every vhost.
};

/// Returns the exposition text. `per_object`: queue, exchange, connection,
/// link and route series carry the object's labels (one series per object);
/// otherwise they are summed per vhost (links: per node, routes: per vhost
/// and direction; lag: the largest), so that the number of series does not
/// grow with the number of objects.
std::string format_metrics(const metrics_input& in, bool per_object);

/// Returns `s` escaped for a label value (backslash, double quote, newline).
std::string escape_label(const std::string& s);

} // namespace flotilla::management
