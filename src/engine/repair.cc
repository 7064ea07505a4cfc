// Repair after a killed tool: what Session::open does when it finds a journal
// in the registry, left by an invocation that died in the middle of an
// operation. What to do is planned by plan_repair (repair.h, repair_plan.cc)
// from the state, the target's memory and its mappings; this file does it:
// the code writes with every thread stopped, the unmap by a remote system
// call, then the state without the journal committed.
#include <fmt/format.h>

#include "engine/code_check.h"
#include "engine/repair.h"
#include "engine/session.h"
#include "engine/unwind_frames.h"
#include "process/remote_syscall.h"

namespace hs {

Status Session::repair() {
  const Journal& j = *state_.journal;
  // Code writes are planned and made in one stop, so the bytes they were
  // checked against cannot change in between.
  const bool writes = !j.writes.empty();
  if (writes) HS_CHECK(group_->stop_all());
  auto maps = proc_->maps();
  if (!maps) {
    if (writes) (void)group_->resume_all();
    return std::unexpected(maps.error());
  }
  auto plan = plan_repair(state_, memory_of(*proc_), *maps, proc_->pid());
  if (!plan) {
    if (writes) (void)group_->resume_all();
    return std::unexpected(plan.error());
  }
  for (const auto& w : plan->writes) {
    auto st = proc_->write(RemoteAddr(w.addr), w.after);
    if (!st) {
      (void)group_->resume_all();
      return st;
    }
  }
  if (writes) HS_CHECK(group_->resume_all());
  if (plan->unmap) {
    // The journal is the target's word: a forged one could name a live
    // payload whose record it deleted. Nothing known may refer into what
    // is unmapped (code_check.h).
    PayloadRecord gone;
    gone.name = j.payload;
    gone.base = plan->unmap->begin.value();
    gone.size = plan->unmap->size();
    HS_CHECK(check_unreferenced(state_, gone, got_areas(*HS_TRY(objects())), memory_of(*proc_), proc_->pid()));
    // The unwinder must not know a table whose memory goes (unwind_frames.h).
    if (auto block = unwind_block_in(*maps, *plan->unmap))
      HS_CHECK(settle_frames_running(*group_, *proc_, *HS_TRY(objects()), *block, false, j.payload));
    TracedThread* t = HS_TRY(group_->stop_one());
    {
      auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
      HS_CHECK(rs.munmap(plan->unmap->begin, plan->unmap->size()));
      HS_CHECK(rs.finish());
    }
    HS_CHECK(group_->resume_all());
  }
  // A payload that stays (an upload completed, an unload rolled back) is
  // known to the unwinder again, whatever step the tool died at.
  if (!plan->unmap && !plan->drop_payload && (j.op == JournalOp::Upload || j.op == JournalOp::Unload))
    if (const PayloadRecord* p = state_.find(j.payload))
      if (auto block = unwind_block_of(*p)) {
        auto objs = objects();
        auto st = objs ? settle_frames_running(*group_, *proc_, **objs, *block, true, p->name)
                       : Result<FrameChange>(std::unexpected(objs.error()));
        if (!st) notes_.push_back(fmt::format("warning: {}", st.error().message()));
      }
  if (plan->drop_payload) {
    const std::string name = j.payload;
    if (const PayloadRecord* p = state_.find(name)) forget_patches_of(state_, *p);
    std::erase_if(state_.payloads, [&](const PayloadRecord& p) { return p.name == name; });
  }
  notes_.push_back(std::move(plan->note));
  state_.journal.reset();
  return commit();
}

}  // namespace hs
