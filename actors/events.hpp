#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace flotilla {

/// A change worth telling operators about: an entity created or deleted, a
/// connection opened or closed, an alarm raised or cleared. Plain data.
struct broker_event {
  std::string kind;   ///< "queue", "exchange", "binding", "connection", ...
  std::string action; ///< "created", "deleted", "opened", "closed", ...
  std::string vhost;  ///< Empty for node-wide events (alarms).
  std::string name;   ///< The entity's name (a connection's id).
  std::vector<std::pair<std::string, std::string>> details;
};

/// Receives broker events. Implemented by the management agent (management/),
/// which publishes them on qmf.default.topic. Set once at startup, before any
/// listener starts; publish() is thread-safe and never blocks (it posts a
/// message to an actor).
class event_sink {
public:
  virtual ~event_sink() = default;

  virtual void publish(broker_event e) = 0;
};

} // namespace flotilla
