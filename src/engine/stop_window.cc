// The stop window (see stop_window.h): stopping the threads when it is safe,
// and Session::execute, which journals a Plan, makes its writes inside the
// window, runs the apply/revert hooks there, commits the new states and lets
// the threads go.
#include "engine/stop_window.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "engine/code_check.h"
#include "engine/session.h"

namespace hs {

Result<std::optional<UnsafeThread>> stop_when_safe(ThreadGroup& group, ActivenessChecker& checker,
                                                   std::span<const GuardedRange> guards,
                                                   std::chrono::milliseconds timeout, bool force, PhaseTimer& timer) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto backoff = std::chrono::microseconds(200);
  for (int tries = 1;; tries++) {
    const long long stop_at = timer.last();
    // The threads that were not running are stopped and checked first, the
    // running ones after that (ThreadGroup::stop_all): a thread doing work
    // is held for the second wave's check, the writes and the commit only.
    std::optional<UnsafeThread> unsafe;
    std::vector<pid_t> checked;
    auto check_stopped = [&]() -> Result<bool> {
      if (force) return true;
      unsafe = HS_TRY(checker.check(group, guards, &checked));
      return !unsafe;
    };
    auto stopped = group.stop_all(check_stopped);
    if (stopped && *stopped) timer.mark("stop");
    if (stopped && *stopped) stopped = check_stopped();
    if (!stopped) {
      (void)group.resume_all();
      return std::unexpected(stopped.error());
    }
    timer.mark("check");
    if (!unsafe) {
      timer.put("t0", stop_at);
      timer.put("tries", tries);
      timer.put("threads", static_cast<long long>(group.threads().size()));
      return std::optional<UnsafeThread>();
    }
    HS_CHECK(group.resume_all());
    timer.mark("resume");
    if (std::chrono::steady_clock::now() >= deadline) return unsafe;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
    timer.mark("backoff");
  }
}

// The threads stopped at a safe moment for `op` of `name`. On a timeout the
// journal the caller wrote is cleared again (nothing has changed).
Status Session::enter_stop_window(JournalOp op, std::string_view name, std::span<const GuardedRange> guards,
                                  PhaseTimer& timer) {
  // Kept by the session, so that tearing libdw down happens after the
  // threads are running again, not inside the stop window.
  checker_ = std::make_unique<ActivenessChecker>(*proc_);
  for (const auto& p : state_.payloads) checker_->add_payload(p);
  if (!opts_.force) HS_CHECK(checker_->prepare());
  timer.mark("prepare");
  const auto unsafe = HS_TRY(stop_when_safe(*group_, *checker_, guards, opts_.timeout, opts_.force, timer));
  if (!unsafe) return {};
  state_.journal.reset();
  HS_CHECK(commit());
  return fail(ErrorKind::Timeout, "{} of '{}' is not safe after {} ms: {}", op_name(op), name, opts_.timeout.count(),
              describe_unsafe(*unsafe));
}

Status Session::execute(JournalOp op, std::string_view name, const Plan& plan) {
  Journal j;
  j.op = op;
  j.payload = std::string(name);
  j.tool_pid = static_cast<u64>(getpid());
  j.writes = plan.writes;
  PhaseTimer timer(op_name(op));
  state_.journal = std::move(j);
  HS_CHECK(commit());
  timer.mark("journal");
  const std::vector<JournalWrite>& writes = plan.writes;
  HS_FAULT_POINT(op_name(op));

  HS_CHECK(enter_stop_window(op, name, plan.guards, timer));
  // The code is the truth: nothing may have changed the bytes since they
  // were checked and planned (code_check.h).
  if (auto st = check_writes(writes, memory_of(*proc_), proc_->pid()); !st) {
    (void)group_->resume_all();
    state_.journal.reset();
    (void)commit();
    return st;
  }
  timer.mark("verify");
  for (size_t i = 0; i < writes.size(); i++) {
    auto st = proc_->write(RemoteAddr(writes[i].addr), writes[i].after);
    if (!st) {
      // Put back what was written, newest first, then report.
      for (size_t k = i; k-- > 0;) (void)proc_->write(RemoteAddr(writes[k].addr), writes[k].before);
      (void)group_->resume_all();
      state_.journal.reset();
      (void)commit();
      return st;
    }
    HS_FAULT_POINT("write");
  }
  timer.mark("write");
  if (!plan.action_hooks.empty()) HS_CHECK(run_action_hooks(op, name, plan));
  // The new state is committed while the threads are still stopped, and
  // when nothing else needs them held (no post-hook to run), detaching
  // resumes them: the process stops once per operation, not a second time
  // for the detach.
  HS_CHECK(transition(op, name, plan));
  state_.journal.reset();
  HS_CHECK(commit());
  timer.mark("commit");
  if (plan.detach_when_done && opts_.release_when_done)
    HS_CHECK(close());
  else
    HS_CHECK(group_->resume_all());
  timer.mark("resume");
  timer.put("writes", static_cast<long long>(writes.size()));
  timer.put("t1", timer.last());
  return {};
}

// The registry states `plan` leads to. Idempotent: run_action_hooks() makes
// the transition before the hooks run, and the operation makes it again.
Status Session::transition(JournalOp op, std::string_view name, const Plan& plan) {
  auto switch_off = [](PayloadRecord& r) {
    for (auto& f : r.funcs) f.applied = false;
    r.state = PayloadState::Checked;
    r.apply_seq = 0;
  };
  for (const auto& rn : plan.reverted) switch_off(*HS_TRY(need(rn)));
  PayloadRecord* p = HS_TRY(need(name));
  if (op == JournalOp::Revert) {
    switch_off(*p);
    return {};
  }
  if (p->state == PayloadState::Applied) return {};
  for (const auto& [pn, i, undo] : plan.applied) {
    if (pn != p->name) continue;
    p->funcs[i].applied = true;
    p->funcs[i].undo = undo;
  }
  p->state = PayloadState::Applied;
  p->apply_seq = state_.next_seq++;
  return {};
}

// In the stop window, every thread stopped and the writes done. Once the

}  // namespace hs
