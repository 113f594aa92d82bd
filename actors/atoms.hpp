#pragma once

// Atoms used between Flotilla's actors (CAF 0.17: at most 10 characters).
#include <caf/atom.hpp>

namespace flotilla {

using input_atom = caf::atom_constant<caf::atom("input")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using enqueue_atom = caf::atom_constant<caf::atom("enqueue")>;
using consume_atom = caf::atom_constant<caf::atom("consume")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;
using reject_atom = caf::atom_constant<caf::atom("reject")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using fetch_atom = caf::atom_constant<caf::atom("fetch")>;
using closed_atom = caf::atom_constant<caf::atom("closed")>;
using purge_atom = caf::atom_constant<caf::atom("purge")>;
using remove_atom = caf::atom_constant<caf::atom("remove")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using bind_atom = caf::atom_constant<caf::atom("bind")>;
using unbind_atom = caf::atom_constant<caf::atom("unbind")>;
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using autodel_atom = caf::atom_constant<caf::atom("autodel")>;
using cancelled_atom = caf::atom_constant<caf::atom("cancelled")>;
using dispatch_atom = caf::atom_constant<caf::atom("dispatch")>;
using persist_atom = caf::atom_constant<caf::atom("persist")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using restore_atom = caf::atom_constant<caf::atom("restore")>;
/// Management: statistics snapshots (actors/stats.hpp) and broker events.
using mgmt_atom = caf::atom_constant<caf::atom("mgmt")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using unblock_atom = caf::atom_constant<caf::atom("unblock")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using peek_atom = caf::atom_constant<caf::atom("peek")>;

} // namespace flotilla
