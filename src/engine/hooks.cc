// Hooks: running a payload's load, unload, pre-, action and post- hooks in
// the target, and what each kind's failure does to the operation.
//
// A hook is payload code that runs inside the target, on one borrowed
// thread (RemoteCall), with a time limit. When each kind runs, and which
// threads are stopped meanwhile (docs/DESIGN.md, "Hooks", says why):
//
//   load            upload: after the image is written and protected; the
//                   other threads run. A failure fails the upload (unmapped).
//   unload          unload: before the activeness check and munmap; the
//                   other threads run. Never run twice.
//   preapply,       before the stop window, the process running; a non-zero
//   prerevert       return refuses the operation, nothing changed.
//   apply, revert   in the stop window, every thread stopped, right after
//                   the writes; a non-zero return or a failure rolls the
//                   writes back. (Xen's action hooks replace the default
//                   action; in user space a hook cannot call the engine, so
//                   here they run after it, as the spec's "write ..., run
//                   hooks, resume" says.)
//   postapply,      after the operation is committed, the process running;
//   postrevert      a failure is a warning, the operation stays done.
//
// Crash safety. Hooks are not idempotent, so a repair never runs one, and
// what a hook did is committed as soon as it has returned: the record of an
// upload (after its first load hook), the new states of an apply/revert/
// replace (after its first action hook), the unload_hooks_started mark
// (after the first unload hook). A repair then goes forward from a committed
// hook and back from anything else. A tool killed while a hook runs leaves a
// hook that finishes on its own: it returns into the recovery trampoline,
// which gives the thread all its state back, and later invocations are
// refused as busy until it has (remote_call.h). Only the instant between a
// hook's return and that commit is ambiguous, and there a repair acts as if
// the hook had not run.
#include <fmt/format.h>
#include <hotsplice/livepatch.h>

#include "engine/instrument.h"
#include "engine/session.h"
#include "engine/unwind_frames.h"
#include "process/remote_call.h"
#include "process/remote_syscall.h"

namespace hs {

namespace {

// A code address in a crash message: "sym+0x12" after the nearest hook or
// exported symbol of the payload at or below it, else hex.
std::string describe_code(const PayloadRecord& p, u64 pc) {
  if (!p.range().contains(RemoteAddr(pc))) return fmt::format("{:#x}", pc);
  const std::string* best = nullptr;
  u64 best_addr = 0;
  auto consider = [&](const std::string& n, u64 a) {
    if (a <= pc && (!best || a > best_addr)) {
      best = &n;
      best_addr = a;
    }
  };
  for (const auto& h : p.hooks) consider(h.name, h.addr);
  for (const auto& [n, a] : p.exports) consider(n, a);
  if (!best) return fmt::format("payload '{}'+{:#x}", p.name, pc - p.base);
  return fmt::format("{}+{:#x}", *best, pc - best_addr);
}

// What an apply or revert hook's argument says (enum hotsplice_action in
// include/hotsplice/livepatch.h).
u64 hook_action(JournalOp op) {
  switch (op) {
    case JournalOp::Apply: return HOTSPLICE_ACTION_APPLY;
    case JournalOp::Revert: return HOTSPLICE_ACTION_REVERT;
    case JournalOp::Replace: return HOTSPLICE_ACTION_REPLACE;
    default: return HOTSPLICE_ACTION_NONE;
  }
}

// An int hook's result (eax, sign-extended).
int int_result(u64 rax) { return static_cast<int>(static_cast<u32>(rax)); }

}  // namespace

Result<u64> Session::call_hook(const PayloadRecord& p, const HookRecord& h, pid_t tid, bool stop_window, u64 arg) {
  TracedThread* t = group_->find(tid);
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "process {} exited during the operation", proc_->pid());
  auto rc = HS_TRY(RemoteCall::create(*group_, *t, *proc_));
  // Threads a hook creates in the stop window stay stopped until it ends.
  rc.keep_new_threads_stopped(stop_window);
  rc.set_describer([&p](u64 pc) { return describe_code(p, pc); });
  // Xen's `struct payload *` there; here an apply or revert hook learns
  // which operation runs it (enum hotsplice_action in the public header),
  // the others get NULL. Load and unload hooks take none and ignore it.
  auto r = rc.call(RemoteAddr(h.addr), arg);
  auto fin = rc.finish();
  if (!r) {
    const Error& e = r.error();
    if (e.kind() == ErrorKind::TargetGone)
      return fail(ErrorKind::TargetGone, "payload '{}': {} hook '{}': {}", p.name, h.kind, h.name, e.message());
    return std::unexpected(
        Error(e.kind(), fmt::format("payload '{}': {} hook '{}' {}", p.name, h.kind, h.name, e.message()),
              e.sys_errno()));
  }
  HS_CHECK(fin);
  return *r;
}

// One hook with the process running: one thread is stopped for it.
Result<u64> Session::call_hook_running(const PayloadRecord& p, const HookRecord& h) {
  TracedThread* t = HS_TRY(group_->stop_one());
  auto r = call_hook(p, h, t->tid);
  auto resumed = group_->resume_all();
  if (!r) return r;
  HS_CHECK(resumed);
  return r;
}

// The thread for hooks in the stop window: the leader unless it has a
// signal to take, else another thread without one, else any.
pid_t Session::stopped_hook_thread() const {
  pid_t other = 0, any = 0;
  for (const auto& t : group_->threads()) {
    if (t.gone || !t.stopped) continue;
    if (!any) any = t.tid;
    if (t.stop == StopKind::Signal || t.pending_signal != 0) continue;
    if (t.tid == proc_->pid()) return t.tid;
    if (!other) other = t.tid;
  }
  return other ? other : any;
}

Status Session::run_pre_hook(std::string_view name, std::string_view kind, JournalOp op) {
  const PayloadRecord* p = HS_TRY(need(name));
  const HookRecord* h = p->hook(kind);
  if (!h) return {};
  auto r = call_hook_running(*p, *h);
  if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
  if (!r) return std::unexpected(std::move(r.error()).consequence(fmt::format("{} refused", op_name(op))));
  if (int v = int_result(*r); v != 0)
    return fail(ErrorKind::BadTarget, "payload '{}': {} hook '{}' returned {}; {} refused", p->name, kind, h->name, v,
                op_name(op));
  return {};
}

Status Session::run_post_hook(std::string_view name, std::string_view kind) {
  const PayloadRecord* p = state_.find(name);
  const HookRecord* h = p ? p->hook(kind) : nullptr;
  if (!h) return {};
  auto r = call_hook_running(*p, *h);
  if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
  if (!r) notes_.push_back(fmt::format("warning: {}; the payload stays {}", r.error().message(), state_name(p->state)));
  return {};
}

// In the stop window, every thread stopped and the writes done. Once the
// first hook has returned 0, the new states are committed with the journal
// kept: a repair from then on completes the operation instead of undoing
// it. A hook that fails undoes everything: the old states are committed
// again (a repair would now roll back), the writes are undone, the process
// resumes. Hooks that had completed are not compensated.
Status Session::run_action_hooks(JournalOp op, std::string_view name, const Plan& plan) {
  const RegistryState before = state_;
  auto undo = [&](std::unexpected<Error> e) -> Status {
    state_ = before;
    (void)commit();
    for (size_t k = plan.writes.size(); k-- > 0;)
      (void)proc_->write(RemoteAddr(plan.writes[k].addr), plan.writes[k].before);
    (void)group_->resume_all();
    state_.journal.reset();
    (void)commit();
    return e;
  };
  HS_FAULT_POINT("hooks:action");
  const pid_t tid = stopped_hook_thread();
  const std::string rolled_back = fmt::format("{} rolled back", op_name(op));
  bool committed = false;
  for (const auto& [pname, h] : plan.action_hooks) {
    const PayloadRecord* p = state_.find(pname);
    if (!p) return undo(fail(ErrorKind::Internal, "payload '{}' is missing from the registry", pname));
    auto r = call_hook(*p, h, tid, /*stop_window=*/true, hook_action(op));
    if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
    if (!r) return undo(std::unexpected(std::move(r.error()).consequence(rolled_back)));
    if (int v = int_result(*r); v != 0)
      return undo(fail(ErrorKind::BadTarget, "payload '{}': {} hook '{}' returned {}; {}", pname, h.kind, h.name, v,
                       rolled_back));
    if (!committed) {
      if (auto st = transition(op, name, plan); !st) return undo(std::unexpected(std::move(st.error())));
      if (auto st = commit(); !st) return undo(std::unexpected(std::move(st.error())));
      committed = true;
      HS_FAULT_POINT("hooks:action-committed");
    }
  }
  return {};
}

// Upload, the image written and protected, thread `tid` borrowed (the others
// run). Once the first load hook has returned, the record is committed with
// the Upload journal kept: from then on a repair keeps the payload (the
// hook may have left pointers into it) rather than unmapping it. A failing
// hook fails the upload: the record is dropped (a repair would now unmap),
// then the image is unmapped. Hooks that had completed are not compensated.
Status Session::run_load_hooks(PayloadRecord rec, pid_t tid) {
  const std::string name = rec.name;
  rec.upload_seq = state_.next_seq++;
  state_.payloads.push_back(std::move(rec));  // not committed yet
  HS_FAULT_POINT("upload:hooks");
  bool committed = false;
  for (const HookRecord* h : HS_TRY(need(name))->hooks_of("load")) {
    auto r = call_hook(*HS_TRY(need(name)), *h, tid);
    if (r) {
      if (!committed) {
        HS_CHECK(commit());
        committed = true;
        HS_FAULT_POINT("upload:hooks-committed");
      }
      continue;
    }
    const Error e = r.error();
    if (e.kind() == ErrorKind::TargetGone) return std::unexpected(e);
    const Journal j = *state_.journal;
    const std::optional<RemoteAddr> block = unwind_block_of(*HS_TRY(need(name)));
    std::erase_if(state_.payloads, [&](const PayloadRecord& q) { return q.name == name; });
    if (committed) HS_CHECK(commit());
    // The unwinder forgets the table before the memory goes (a failure
    // leaves the mapping to the repair, which asks again).
    if (block) HS_CHECK(settle_frames(*group_, tid, *proc_, *HS_TRY(objects()), *block, false, name));
    TracedThread* t = group_->find(tid);
    if (!t) return fail(ErrorKind::TargetGone, "process {} exited during the operation", proc_->pid());
    {
      auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
      HS_CHECK(rs.munmap(RemoteAddr(j.map_base), j.map_size));
      HS_CHECK(rs.finish());
    }
    HS_CHECK(group_->resume_all());
    state_.journal.reset();
    HS_CHECK(commit());
    return std::unexpected(Error(e).consequence("upload rolled back"));
  }
  return {};
}

// Unload, journaled: the unload hooks run before the activeness check and
// munmap, with the process running. unload_hooks_started is committed once
// the first one has returned (or one has failed), so they never run twice:
// not in a retried unload (after a failing hook or an activeness timeout),
// not in a repair.
Status Session::run_unload_hooks(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->unload_hooks_started || p->hooks_of("unload").empty()) return {};
  HS_FAULT_POINT("unload:hooks");
  TracedThread* t = HS_TRY(group_->stop_one());
  const pid_t tid = t->tid;
  for (const HookRecord* h : p->hooks_of("unload")) {
    auto r = call_hook(*p, *h, tid);
    if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
    const bool first = !p->unload_hooks_started;
    p->unload_hooks_started = true;
    if (r) {
      if (first) {
        HS_CHECK(commit());
        HS_FAULT_POINT("unload:hooks-committed");
      }
      continue;
    }
    const Error e = r.error();
    (void)group_->resume_all();
    state_.journal.reset();
    HS_CHECK(commit());
    return std::unexpected(Error(e).consequence("the payload stays loaded (its unload hooks will not run again)"));
  }
  return group_->resume_all();
}

}  // namespace hs
