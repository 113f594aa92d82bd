#include "actors/exchange_actor.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/messages.hpp"

namespace flotilla {

namespace {

struct exchange_state {
  static inline const char* name = "exchange";
  exchange_entry_ptr entry;
};

caf::behavior exchange_impl(caf::stateful_actor<exchange_state>* self,
                            exchange_entry_ptr entry) {
  self->state.entry = std::move(entry);
  return {
    [=](bind_atom, bind_req& req, binding_dest& dest) -> op_result {
      op_result r;
      r.message_count = self->state.entry->add_binding(
        binding{req.key, std::move(req.arguments), std::move(dest)});
      return r;
    },
    [=](unbind_atom, bind_req& req, binding_dest& dest) -> op_result {
      auto& x = *self->state.entry;
      auto removed = x.remove_binding(req.key, req.arguments, dest);
      op_result r;
      r.message_count = static_cast<uint32_t>(x.binding_count());
      r.consumer_count = removed ? 1 : 0;
      return r;
    },
  };
}

} // namespace

caf::actor spawn_exchange(caf::actor_system& sys, exchange_entry_ptr entry) {
  return sys.spawn(exchange_impl, std::move(entry));
}

} // namespace flotilla
