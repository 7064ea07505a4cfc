// Repair after a killed tool: what Session::open does when it finds a journal
// in the registry, left by an invocation that died in the middle of an
// operation.
//
// Every change to the target is preceded by a committed journal (the
// operation, its payload, the writes with their before and after bytes, the
// mapping being created or removed). The repair rolls the operation back:
// code writes are undone newest first, a half-made upload's mapping is
// unmapped if it is there and is our named memfd, an unload whose mapping is
// gone is completed. Where a hook of the operation had already returned and
// its effect was committed (hooks.cc), it goes forward instead: the upload's
// payload is kept, the apply or revert is completed by making its writes
// again. The repair never runs a hook.
#include <fmt/format.h>

#include <algorithm>

#include "engine/placement.h"
#include "process/named_memfd.h"
#include "engine/session.h"
#include "process/remote_syscall.h"

namespace hs {

// Whether the journal's payload mapping exists: a mapping at its address
// that is our named memfd (never a mapping of the target's own).
Result<bool> Session::payload_mapped(const Journal& j) {
  auto maps = HS_TRY(proc_->maps());
  return std::any_of(maps.begin(), maps.end(), [&](const MapEntry& m) {
    return m.range.begin.value() == j.map_base && is_memfd_named(m.path, payload_mapping_name(j.payload));
  });
}

// Repairs what a killed invocation left in the journal: rolls it back, or
// forward where a hook of it had already run (see hooks.cc).
Status Session::repair() {
  Journal j = *state_.journal;
  switch (j.op) {
    case JournalOp::Upload: {
      if (state_.find(j.payload)) {
        // Killed among the load hooks, after the first had returned (the
        // record is committed then, see run_load_hooks): they may have left
        // pointers into the payload, so it is kept, never unmapped.
        notes_.push_back(fmt::format(
            "repaired: completed an interrupted upload of '{}' (tool PID {}): a load hook of it had run",
            j.payload, j.tool_pid));
        break;
      }
      if (HS_TRY(payload_mapped(j))) {
        TracedThread* t = HS_TRY(group_->stop_one());
        {
          auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
          HS_CHECK(rs.munmap(RemoteAddr(j.map_base), j.map_size));
          HS_CHECK(rs.finish());
        }
        HS_CHECK(group_->resume_all());
      }
      notes_.push_back(fmt::format("repaired: rolled back an interrupted upload of '{}' (tool PID {})", j.payload,
                                   j.tool_pid));
      break;
    }
    case JournalOp::Apply:
    case JournalOp::Revert:
    case JournalOp::Replace: {
      // Killed among the apply/revert hooks, after the first had returned
      // (the new states are committed then, see run_action_hooks): the
      // operation is completed (its writes made again, they are
      // idempotent), never undone.
      const PayloadRecord* target = state_.find(j.payload);
      if (target && target->state == (j.op == JournalOp::Revert ? PayloadState::Checked : PayloadState::Applied)) {
        HS_CHECK(group_->stop_all());
        for (const auto& w : j.writes) {
          auto st = proc_->write(RemoteAddr(w.addr), w.after);
          if (!st) {
            (void)group_->resume_all();
            return st;
          }
        }
        HS_CHECK(group_->resume_all());
        notes_.push_back(fmt::format(
            "repaired: completed an interrupted {} of '{}' (tool PID {}): {} hook had run", op_name(j.op),
            j.payload, j.tool_pid,
            j.op == JournalOp::Apply ? "its apply" : j.op == JournalOp::Revert ? "its revert" : "an apply or revert"));
        break;
      }
      // Writing each change's `before`, newest first, restores every byte to
      // what it was before the first change touched it, however many of the
      // writes had happened.
      HS_CHECK(group_->stop_all());
      for (size_t k = j.writes.size(); k-- > 0;) {
        auto st = proc_->write(RemoteAddr(j.writes[k].addr), j.writes[k].before);
        if (!st) {
          (void)group_->resume_all();
          return st;
        }
      }
      HS_CHECK(group_->resume_all());
      notes_.push_back(fmt::format("repaired: rolled back an interrupted {} of '{}' (tool PID {})", op_name(j.op),
                                   j.payload, j.tool_pid));
      break;
    }
    case JournalOp::Unload: {
      if (!HS_TRY(payload_mapped(j))) {
        std::erase_if(state_.payloads, [&](const PayloadRecord& p) { return p.name == j.payload; });
        notes_.push_back(fmt::format("repaired: completed an interrupted unload of '{}' (tool PID {})", j.payload,
                                     j.tool_pid));
      } else {
        const PayloadRecord* q = state_.find(j.payload);
        notes_.push_back(fmt::format("repaired: rolled back an interrupted unload of '{}' (tool PID {}){}", j.payload,
                                     j.tool_pid,
                                     q && q->unload_hooks_started
                                         ? "; its unload hooks have run and will not run again"
                                         : ""));
      }
      break;
    }
    case JournalOp::None: break;
  }
  state_.journal.reset();
  return commit();
}

}  // namespace hs
