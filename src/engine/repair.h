// Repair after a killed tool, as a plan: what Session::repair (repair.cc)
// must write, unmap and forget to finish what a journal left half-done,
// worked out from the state, the target's memory and its mappings without
// touching anything, so it can be fuzzed in memory.
//
// The journal comes back from the target, which may have forged it:
// check_state has already bounded every write to a patch site or a recorded
// call site of a payload, and the plan makes the writes only if the bytes
// there now are what some number of the journal's writes, made in order,
// leave there (anything else is refused as corruption, naming the address
// and the bytes found); an upload's mapping is unmapped only when all of it
// is that payload's named memfd.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/plan.h"
#include "engine/registry.h"
#include "process/process.h"

namespace hs {

struct RepairPlan {
  // Made in this order, with every thread stopped; `before` is what the
  // write finds (as read for the plan), `after` what it leaves.
  std::vector<JournalWrite> writes;
  std::optional<RemoteRange> unmap;  // a half-made upload's mapping
  bool drop_payload = false;         // the journal's payload leaves the registry (an unload completed)
  std::string note;                  // what was repaired, for the user
};

// The repair of `s.journal` (which must be set) in process `pid`, whose
// memory `mem` reads and whose mappings are `maps`.
Result<RepairPlan> plan_repair(const RegistryState& s, const MemoryReader& mem, std::span<const MapEntry> maps,
                               pid_t pid);

}  // namespace hs
