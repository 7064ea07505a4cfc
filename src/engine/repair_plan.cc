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
#include <cstdint>
#include <optional>

#include "engine/placement.h"
#include "engine/repair.h"
#include "process/named_memfd.h"

namespace hs {

namespace {

// The journal's writes were made in order, and the tool died after some
// number k of them (0 to all): the bytes each write covers must be what k
// writes leave there, for some k (a byte takes the `after` of the last write
// up to k that covers it, or else the `before` of the first later one).
// Several writes may cover one place (a replace reverts one payload's patch
// and writes another's), so one write's before or after alone says nothing.
// Returns the bytes found at each write, or a Corrupt error naming the
// address, what is there and what the journal says should be.
Result<std::vector<Bytes>> check_journal_bytes(const std::vector<JournalWrite>& writes, const MemoryReader& read,
                                               pid_t pid) {
  std::vector<Bytes> found;
  for (const auto& w : writes)
    if (w.before.size() != w.after.size())
      return fail(ErrorKind::Corrupt, "registry of PID {} is corrupt: its journal writes {} bytes over {} at {:#x}", pid,
                  w.after.size(), w.before.size(), w.addr);
  for (const auto& w : writes) found.push_back(HS_TRY(read(RemoteAddr(w.addr), w.after.size())));
  // What byte `b` of write `i` should be after the first k writes.
  auto expected = [&](size_t k, size_t i, size_t b) -> u8 {
    const u64 a = writes[i].addr + b;
    std::optional<u8> last_done, first_pending;
    for (size_t n = 0; n < writes.size(); n++) {
      const auto& w = writes[n];
      if (a < w.addr || a - w.addr >= w.after.size()) continue;
      if (n < k)
        last_done = w.after[a - w.addr];
      else if (!first_pending)
        first_pending = w.before[a - w.addr];
    }
    return last_done ? *last_done : *first_pending;  // write i covers a, so one is set
  };
  size_t best_k = 0, best_bad = SIZE_MAX;
  for (size_t k = 0; k <= writes.size() && best_bad != 0; k++) {
    size_t bad = 0;
    for (size_t i = 0; i < writes.size(); i++)
      for (size_t b = 0; b < found[i].size(); b++) bad += found[i][b] != expected(k, i, b);
    if (bad < best_bad) best_bad = bad, best_k = k;
  }
  if (best_bad == 0) return found;
  for (size_t i = 0; i < writes.size(); i++)
    for (size_t b = 0; b < found[i].size(); b++)
      if (found[i][b] != expected(best_k, i, b))
        return fail(ErrorKind::Corrupt,
                    "registry of PID {} is corrupt: its journal would write at {:#x}, which holds {}, neither the "
                    "journal's before ({}) nor after ({})",
                    pid, writes[i].addr, to_hex(found[i]), to_hex(writes[i].before), to_hex(writes[i].after));
  return found;
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
        HS_CHECK(check_journal_bytes(j.writes, read, pid));
        for (const auto& w : j.writes) {
          Bytes cur = HS_TRY(mem.read(w.addr, w.after.size()));
          mem.write(w.addr, std::move(cur), w.after);
        }
        plan.note = fmt::format(
            "repaired: completed an interrupted {} of '{}' (tool PID {}): {} hook had run", op_name(j.op), j.payload,
            j.tool_pid,
            j.op == JournalOp::Apply ? "its apply" : j.op == JournalOp::Revert ? "its revert" : "an apply or revert");
        break;
      }
      // Writing each change's `before`, newest first, restores every byte to
      // what it was before the first change touched it, however many of the
      // writes had happened.
      HS_CHECK(check_journal_bytes(j.writes, read, pid));
      for (size_t k = j.writes.size(); k-- > 0;) {
        Bytes cur = HS_TRY(mem.read(j.writes[k].addr, j.writes[k].before.size()));
        mem.write(j.writes[k].addr, std::move(cur), j.writes[k].before);
      }
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
