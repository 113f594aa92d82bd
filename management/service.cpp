#include "management/service.hpp"

namespace flotilla::management {

service::~service() = default;

void event_log::append(std::string json) {
  std::lock_guard<std::mutex> guard{mtx_};
  events_.push_back(event_record{next_++, std::move(json)});
  while (events_.size() > capacity_)
    events_.pop_front();
}

std::vector<event_record> event_log::since(uint64_t after, size_t max) const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::vector<event_record> out;
  for (auto& e : events_)
    if (e.seq > after && out.size() < max)
      out.push_back(e);
  return out;
}

uint64_t event_log::last_seq() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return next_ - 1;
}

} // namespace flotilla::management
