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

/// The objects one scrape reports.
struct metrics_input {
  const Overview* overview = nullptr;
  std::vector<const Queue*> queues;
  std::vector<const Exchange*> exchanges;
  std::vector<const Connection*> connections;
};

/// Returns the exposition text. `per_object`: queue, exchange and
/// connection series carry the object's labels (one series per object);
/// otherwise they are summed per vhost, so that the number of series does
/// not grow with the number of queues.
std::string format_metrics(const metrics_input& in, bool per_object);

/// Returns `s` escaped for a label value (backslash, double quote, newline).
std::string escape_label(const std::string& s);

} // namespace flotilla::management
