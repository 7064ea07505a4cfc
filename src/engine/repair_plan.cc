// plan_repair (repair.h): how to roll back, or forward, what a killed tool
// left in the journal, decided without touching the target.
//
// An upload is rolled back (its mapping unmapped if there) unless its record
// was committed, which happens once a load hook has returned: then it is
// kept. An apply, revert or replace is completed (its writes made again) if
// the new states were committed, which happens once one of its action hooks
// returned (hooks.cc); otherwise it is rolled back, each write's `before`
// put back newest first, which restores every byte to what it was before
// the first write touched it however many had been made. An unload whose
// mapping is gone is completed, otherwise it is rolled back (nothing to
// write). The repair never runs a hook.
#include <fmt/format.h>

#include <algorithm>

#include "engine/placement.h"
#include "engine/repair.h"
#include "process/named_memfd.h"

namespace hs {

namespace {

// Plans one write of the journal (its `before`, or its `after` going
// forward) against what the memory holds once the writes planned so far
// are made.
Status plan_write(Overlay& mem, const JournalWrite& w, bool forward, pid_t pid) {
  Bytes cur = HS_TRY(mem.read(w.addr, w.after.size()));
  if (cur != w.before && cur != w.after)
    return fail(ErrorKind::Corrupt,
                "registry of PID {} is corrupt: its journal would write at {:#x}, which holds {}, neither the "
                "journal's before ({}) nor after ({})",
                pid, w.addr, to_hex(cur), to_hex(w.before), to_hex(w.after));
  mem.write(w.addr, std::move(cur), forward ? w.after : w.before);
  return {};
}

// The mapping of a half-made upload, if it is there: every mapping in
// [base, base + size) must be the payload's named memfd and cover it from
// `base` on (never a mapping of the target's own).
Result<std::optional<RemoteRange>> upload_mapping(const Journal& j, std::span<const MapEntry> maps, pid_t pid) {
  const RemoteRange want{RemoteAddr(j.map_base), RemoteAddr(j.map_base + j.map_size)};
  const std::string name = payload_mapping_name(j.payload);
  bool found = false;
  for (const auto& m : maps) {
    if (!m.range.overlaps(want)) continue;
    if (!is_memfd_named(m.path, name))
      return fail(ErrorKind::Corrupt,
                  "registry of PID {} is corrupt: its journal uploads '{}' at {}+{:#x}, over a mapping at {} that is "
                  "not that payload's",
                  pid, j.payload, want.begin, j.map_size, m.range.begin);
    if (m.range.begin == want.begin) found = true;
  }
  if (!found) return std::optional<RemoteRange>();
  return std::optional<RemoteRange>(want);
}

}  // namespace

Result<RepairPlan> plan_repair(const RegistryState& s, const MemoryReader& read, std::span<const MapEntry> maps,
                               pid_t pid) {
  if (!s.journal) return fail(ErrorKind::Internal, "no journal to repair in PID {}", pid);
  const Journal& j = *s.journal;
  RepairPlan plan;
  Overlay mem(read);
  switch (j.op) {
    case JournalOp::Upload: {
      if (s.find(j.payload)) {
        // Killed among the load hooks, after the first had returned (the
        // record is committed then, see run_load_hooks): they may have left
        // pointers into the payload, so it is kept, never unmapped.
        plan.note = fmt::format(
            "repaired: completed an interrupted upload of '{}' (tool PID {}): a load hook of it had run", j.payload,
            j.tool_pid);
        break;
      }
      plan.unmap = HS_TRY(upload_mapping(j, maps, pid));
      plan.note = fmt::format("repaired: rolled back an interrupted upload of '{}' (tool PID {})", j.payload,
                              j.tool_pid);
      break;
    }
    case JournalOp::Apply:
    case JournalOp::Revert:
    case JournalOp::Replace: {
      // Killed among the apply/revert hooks, after the first had returned
      // (the new states are committed then, see run_action_hooks): the
      // operation is completed, never undone.
      const PayloadRecord* target = s.find(j.payload);
      if (target && target->state == (j.op == JournalOp::Revert ? PayloadState::Checked : PayloadState::Applied)) {
        for (const auto& w : j.writes) HS_CHECK(plan_write(mem, w, true, pid));
        plan.note = fmt::format(
            "repaired: completed an interrupted {} of '{}' (tool PID {}): {} hook had run", op_name(j.op), j.payload,
            j.tool_pid,
            j.op == JournalOp::Apply ? "its apply" : j.op == JournalOp::Revert ? "its revert" : "an apply or revert");
        break;
      }
      for (size_t k = j.writes.size(); k-- > 0;) HS_CHECK(plan_write(mem, j.writes[k], false, pid));
      plan.note = fmt::format("repaired: rolled back an interrupted {} of '{}' (tool PID {})", op_name(j.op),
                              j.payload, j.tool_pid);
      break;
    }
    case JournalOp::Unload: {
      const bool mapped = std::ranges::any_of(maps, [&](const MapEntry& m) {
        return m.range.begin.value() == j.map_base && is_memfd_named(m.path, payload_mapping_name(j.payload));
      });
      const PayloadRecord* q = s.find(j.payload);
      if (!mapped) {
        plan.drop_payload = true;
        plan.note = fmt::format("repaired: completed an interrupted unload of '{}' (tool PID {})", j.payload,
                                j.tool_pid);
      } else {
        plan.note = fmt::format("repaired: rolled back an interrupted unload of '{}' (tool PID {}){}", j.payload,
                                j.tool_pid,
                                q && q->unload_hooks_started ? "; its unload hooks have run and will not run again"
                                                             : "");
      }
      break;
    }
    case JournalOp::None: break;
  }
  plan.writes = mem.take_writes();
  return plan;
}

}  // namespace hs
