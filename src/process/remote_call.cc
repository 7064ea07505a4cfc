// Calling functions inside a stopped thread of the target (see the header
// for the protocol and what each outcome means).
//
// The wait loop. The borrowed thread runs with PTRACE_SYSCALL when the call
// returns into the recovery trampoline (its own system calls then stop it
// too, and it goes on), else with PTRACE_CONT; it also stops for signals,
// ptrace events and our own PTRACE_INTERRUPT. Its reports are
// collected with waitpid(WNOHANG); between polls the loop looks after the
// group's other threads and then sleeps in sigtimedwait() on SIGCHLD (which
// every tracee state change raises in the tracer), at most 50 ms at a time,
// so the timeout is honoured without busy-waiting.
//
// Other threads. Running ones are handled as ThreadGroup::poll_events()
// would (signals delivered, new threads adopted), because the callee may
// wait for them. Ones held stopped can only report their death (SIGKILL of
// the process); that report is kept in deferred_status, which also reaps
// them: the kernel reports the thread-group leader's exit only once every
// other thread is reaped, and the borrowed thread may be the leader.
#include "process/remote_call.h"

#include <elf.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <algorithm>
#include <thread>

#include "arch/x86_64.h"
#include "process/ptrace_util.h"
#include "process/remote_syscall.h"

namespace hs {

namespace {

constexpr unsigned long long kTrapFlag = 1ull << 8;
constexpr unsigned long long kDirectionFlag = 1ull << 10;

// Large enough for any XSAVE area the kernel reports (AMX included).
constexpr size_t kXstateMax = 64 * 1024;

// How long an interrupted thread may take to stop before we give up on it
// (it may sit in an uninterruptible sleep).
constexpr std::chrono::seconds kInterruptGrace{10};

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// A signal that the callee caused: a synchronous fault raised by the kernel
// (si_code > 0), or a SIGABRT the process sent itself (abort()).
bool is_fault(int sig, const siginfo_t& si, pid_t pid) {
  switch (sig) {
    case SIGSEGV:
    case SIGBUS:
    case SIGILL:
    case SIGFPE:
    case SIGTRAP:
    case SIGSYS: return si.si_code > 0;
    case SIGABRT: return si.si_code == SI_TKILL && si.si_pid == pid;
    default: return false;
  }
}

// Thread `t` is at a syscall-entry-stop that we are about to step past, and
// what the call does no longer matters (our getpid, or a callee's call being
// abandoned after a time-out). The kernel runs the seccomp filters after
// this stop on whatever number orig_rax then holds, even -1 (skipped): pick
// one they answer harmlessly, trying `first`, then -1, getpid, sched_yield;
// if none is harmless (or the filters cannot be read) the call is left as
// the program itself made it.
Status settle_entry_for_seccomp(ThreadGroup& group, TracedThread& t, long first) {
  const user_regs_struct& r = t.regs;
  SyscallProbe probe{.nr = 0, .ip = r.rip, .args = {r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9}};
  for (long nr : {first, -1L, static_cast<long>(SYS_getpid), static_cast<long>(SYS_sched_yield)}) {
    probe.nr = static_cast<int>(nr);
    auto v = group.seccomp().verdict(group.pid(), t.tid, probe);
    if (!v) return v.error().kind() == ErrorKind::TargetGone ? Status(std::unexpected(std::move(v.error()))) : Status();
    if (v->harmful()) continue;
    if (static_cast<long>(r.orig_rax) == nr) return {};
    user_regs_struct changed = r;
    changed.orig_rax = static_cast<unsigned long long>(nr);
    return group.set_regs(t, changed);
  }
  return {};
}

}  // namespace

struct RemoteCall::Outcome {
  enum : u8 { Returned, Crashed, TimedOut } what = Returned;
  u64 rax = 0;
  int sig = 0;
  siginfo_t si{};
  u64 rip = 0;
};

Result<RemoteCall> RemoteCall::create(ThreadGroup& group, TracedThread& t, const Process& proc) {
  if (!t.stopped)
    return fail(ErrorKind::Internal, "thread {} of PID {} must be stopped to call a function", t.tid, group.pid());
  {
    // The recovery trampoline (found or made, once per group), and the
    // thread's own registers if a killed hotsplice left it inside it.
    auto rs = HS_TRY(RemoteSyscalls::create(group, t, proc));
    HS_CHECK(rs.finish());
  }
  HS_CHECK(group.refresh_regs(t));

  RemoteCall rc;
  rc.group_ = &group;
  rc.proc_ = &proc;
  rc.tid_ = t.tid;
  rc.saved_ = t.regs;
  normalise_syscall_restart(rc.saved_);

  rc.saved_fp_.resize(kXstateMax);
  iovec iov{rc.saved_fp_.data(), rc.saved_fp_.size()};
  if (pt(PTRACE_GETREGSET, t.tid, NT_X86_XSTATE, &iov) == 0) {
    rc.fp_regset_ = NT_X86_XSTATE;
  } else {
    if (errno == ESRCH) return group.lost(t);
    iov = {rc.saved_fp_.data(), sizeof(user_fpregs_struct)};
    if (pt(PTRACE_GETREGSET, t.tid, NT_PRFPREG, &iov) != 0) {
      if (errno == ESRCH) return group.lost(t);
      return fail_errno(ErrorKind::Internal, errno, "cannot read the vector registers of thread {} of PID {}", t.tid,
                        group.pid());
    }
    rc.fp_regset_ = NT_PRFPREG;
  }
  rc.saved_fp_.resize(iov.iov_len);
  rc.done_ = false;
  return rc;
}

RemoteCall::~RemoteCall() {
  if (!done_) (void)finish();
}

Status RemoteCall::restore() {
  TracedThread* t = group_->find(tid_);
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());
  // Vector state first: if hotsplice dies between the two, the thread is
  // still inside the trampoline's return code, which restores both again.
  iovec iov{saved_fp_.data(), saved_fp_.size()};
  if (pt(PTRACE_SETREGSET, tid_, fp_regset_, &iov) != 0) {
    if (errno == ESRCH) return group_->lost(*t);
    return fail_errno(ErrorKind::Internal, errno, "cannot restore the vector registers of thread {} of PID {}", tid_,
                      group_->pid());
  }
  return group_->set_regs(*t, saved_);
}

Status RemoteCall::finish() {
  if (done_) return {};
  done_ = true;
  return restore();
}

Result<u64> RemoteCall::call_raw(RemoteAddr fn, std::span<const u64> args) {
  if (done_) return fail(ErrorKind::Internal, "remote calls on thread {} are finished", tid_);
  if (args.size() > kMaxArgs)
    return fail(ErrorKind::Internal, "a remote call takes at most {} arguments, not {}", kMaxArgs, args.size());
  TracedThread* t = group_->find(tid_);
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());

  known_tids_.clear();
  for (const auto& k : group_->threads()) known_tids_.push_back(k.tid);
  user_regs_struct r = saved_;
  const u64 sp = return_slot(saved_.rsp);
  r.rsp = sp;
  r.rip = fn.value();
  r.rax = 0;
  r.orig_rax = static_cast<unsigned long long>(-1);
  unsigned long long* const arg_regs[] = {&r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9};
  for (size_t i = 0; i < args.size(); i++) *arg_regs[i] = args[i];
  r.eflags &= ~(kTrapFlag | kDirectionFlag);

  // With the trampoline, the callee returns into it (see the header);
  // without, to address 0.
  using RT = RecoveryTrampoline;
  const RecoveryTrampoline& trampoline = group_->trampoline();
  const RemoteAddr tr = trampoline.base();
  const u64 entry = fp_regset_ == NT_X86_XSTATE ? RT::kReturnXsave : RT::kReturnFxsave;
  bool guarded = !tr.is_null() && saved_fp_.size() <= RT::kVectorRoom;
  if (guarded) {
    // The trampoline's return path makes a getpid in the thread: not if its
    // seccomp filters would answer it harmfully (or cannot be read). The
    // return to address 0 makes no system call.
    SyscallProbe probe{.nr = SYS_getpid, .ip = tr.value() + entry + x86_64::kCallReturnSyscallEnd, .args = {}};
    auto v = group_->seccomp().verdict(group_->pid(), tid_, probe);
    if (!v && v.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(v.error()));
    guarded = v && !v->harmful();
  }
  u64 return_address = 0;
  returned_at_ = 0;
  resume_ = PTRACE_CONT;
  if (guarded) {
    HS_CHECK(trampoline.write_state(*group_, *proc_, tid_, saved_, saved_fp_));
    return_address = tr.value() + entry;
    returned_at_ = return_address + x86_64::kCallReturnSyscallEnd;
    resume_ = PTRACE_SYSCALL;
  }
  HS_CHECK(proc_->write(RemoteAddr(sp), ByteView(reinterpret_cast<const u8*>(&return_address), sizeof return_address)));
  HS_CHECK(group_->set_regs(*t, r));
  if (test_kill_point) test_kill_point();

  if (pt(resume_, tid_) != 0) {
    if (errno == ESRCH) return group_->lost(*t);
    return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid_, group_->pid());
  }
  t->stopped = false;
  t->stop = StopKind::None;

  auto outcome = run_until_return(sp + 8);
  // The call is over, however it ended: the return address goes, so that a
  // later invocation does not take it for a call still running.
  auto forget_call = [&] {
    if (!guarded) return;
    const u64 zero = 0;
    (void)proc_->write(RemoteAddr(sp), ByteView(reinterpret_cast<const u8*>(&zero), sizeof zero));
  };
  if (!outcome) {
    // Put the thread's own state back if we still hold it.
    if (TracedThread* s = group_->find(tid_); s && s->stopped) {
      forget_call();
      (void)restore();
    }
    return std::unexpected(std::move(outcome.error()));
  }
  // Every thread the callee created is held, if asked: one that was let run
  // while the call went on (its own events serviced) is stopped again here.
  forget_call();
  HS_CHECK(adopt_new_threads());
  HS_CHECK(restore());
  switch (outcome->what) {
    case Outcome::Returned: return outcome->rax;
    case Outcome::TimedOut: return fail(ErrorKind::Timeout, "did not return within {} ms", timeout_.count());
    case Outcome::Crashed: break;
  }
  const int sig = outcome->sig;
  std::string where = describe_ ? describe_(outcome->rip) : fmt::format("{:#x}", outcome->rip);
  std::string extra;
  if (sig == SIGSEGV || sig == SIGBUS)
    extra = fmt::format(" (fault address {:#x})", reinterpret_cast<u64>(outcome->si.si_addr));
  return fail(ErrorKind::BadPayload, "crashed with {} at {}{}", signal_name(sig), where, extra);
}

Result<RemoteCall::Outcome> RemoteCall::run_until_return(u64 ret_sp) {
  using Clock = std::chrono::steady_clock;
  SigchldBlocked chld;
  const auto deadline = Clock::now() + timeout_;
  bool interrupted = false;
  auto give_up = deadline;

  // The borrowed thread is at a stop: note it (and its registers).
  auto stopped_at = [&](StopKind kind) -> Result<TracedThread*> {
    TracedThread* t = group_->find(tid_);
    if (!t) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());
    t->stopped = true;
    t->stop = kind;
    HS_CHECK(group_->refresh_regs(*t));
    return t;
  };
  auto go_on = [&]() -> Status {
    TracedThread* t = group_->find(tid_);
    if (!t) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());
    t->stopped = false;
    t->stop = StopKind::None;
    // ESRCH: killed meanwhile; its exit report comes next.
    if (pt(resume_, tid_) != 0 && errno != ESRCH)
      return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid_, group_->pid());
    return {};
  };

  unsigned reports = 0;
  for (;;) {
    // The clock is looked at on every pass: a callee making system calls
    // in a loop (each one a stop, under PTRACE_SYSCALL) always has a report
    // ready. For the same reason the other threads are looked after every
    // 64 reports, not only when this one has nothing to say.
    if (const auto now = Clock::now(); !interrupted && now >= deadline) {
      pt(PTRACE_INTERRUPT, tid_);
      interrupted = true;
      give_up = now + kInterruptGrace;
    } else if (interrupted && now >= give_up) {
      return fail(ErrorKind::Internal, "thread {} of PID {} does not stop after the call timed out", tid_,
                  group_->pid());
    }
    if (++reports % 64 == 0) HS_CHECK(group_->service_others(tid_));
    int status = 0;
    pid_t r = ::waitpid(tid_, &status, __WALL | WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != ECHILD)
      return fail_errno(ErrorKind::Internal, errno, "waitpid for thread {} of PID {} failed", tid_, group_->pid());
    if (r < 0 || (r == tid_ && (WIFEXITED(status) || WIFSIGNALED(status)))) {
      if (TracedThread* t = group_->find(tid_)) group_->mark_gone(*t);
      // The whole process is dying (the usual case), or the callee ended
      // just its own thread: a dying process is gone within moments.
      auto until = Clock::now() + std::chrono::milliseconds(500);
      while (proc_->alive() && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (!proc_->alive()) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());
      return fail(ErrorKind::BadPayload, "ended its thread {} (the process lives on)", tid_);
    }
    if (r == tid_ && WIFSTOPPED(status)) {
      const int sig = WSTOPSIG(status);
      const int event = status >> 16;
      if (event == PTRACE_EVENT_CLONE) {
        // The callee goes on; its new thread is held from its first stop if
        // asked (it must not run while the others are held).
        HS_CHECK(group_->adopt_clone_of(tid_, resume_, keep_new_stopped_));
        HS_CHECK(adopt_new_threads());
        continue;
      }
      if (event != 0) {
        // PTRACE_EVENT_STOP: ours, a stray one, or a job-control stop.
        if (interrupted && event == PTRACE_EVENT_STOP) {
          HS_CHECK(stopped_at(is_stop_signal(sig) ? StopKind::GroupStop : StopKind::Interrupt));
          return Outcome{.what = Outcome::TimedOut};
        }
        HS_CHECK(go_on());
        continue;
      }
      if (sig == kSyscallStop) {
        // A syscall stop (PTRACE_SYSCALL): the callee's own calls, or the
        // entry of the trampoline's getpid, which is the return. That one
        // is taken to its exit stop, where the thread is left (as
        // RemoteSyscalls leaves it): registers set at an entry stop would
        // skip the call, and its exit stop would come at the next
        // PTRACE_SYSCALL. A syscall stop while interrupted stands for the
        // interrupt's (a ptrace trap after the PTRACE_INTERRUPT clears it; a
        // stop already queued before leaves it pending, and its late
        // PTRACE_EVENT_STOP is passed over later, like any stray one);
        // at an entry stop the call is skipped (orig_rax = -1) to reach its
        // exit stop at once.
        TracedThread* t = HS_TRY(stopped_at(StopKind::Syscall));
        const bool ours = returned_at_ != 0 && t->regs.rip == returned_at_ && t->regs.rsp == ret_sp &&
                          t->regs.orig_rax == SYS_getpid;
        if (!ours && !interrupted) {
          HS_CHECK(go_on());
          continue;
        }
        // Entry or exit stop: the kernel says (5.3 and later); else rax is
        // -ENOSYS at an entry stop, and ours is always met first at its entry.
        __ptrace_syscall_info info{};
        const long n = pt(PTRACE_GET_SYSCALL_INFO, tid_, sizeof info, &info);
        const bool at_entry =
            n > 0 ? info.op == PTRACE_SYSCALL_INFO_ENTRY : ours || static_cast<long>(t->regs.rax) == -ENOSYS;
        if (at_entry) {
          // Ours is checked exactly here (a filter may test its leftover
          // arguments); a callee's call is skipped (-1) if the filters allow.
          HS_CHECK(settle_entry_for_seccomp(*group_, *t, ours ? static_cast<long>(SYS_getpid) : -1L));
          HS_CHECK(group_->syscall_step(*t));
          t = group_->find(tid_);
          if (!t) return fail(ErrorKind::TargetGone, "{}", group_->gone_message());
        }
        if (ours) return Outcome{.what = Outcome::Returned, .rax = t->regs.rdi};
        return Outcome{.what = Outcome::TimedOut};
      }
      // A signal-delivery-stop.
      siginfo_t si{};
      if (pt(PTRACE_GETSIGINFO, tid_, 0, &si) != 0 && errno != ESRCH)
        return fail_errno(ErrorKind::Internal, errno, "cannot read the signal of thread {} of PID {}", tid_,
                          group_->pid());
      TracedThread* t = HS_TRY(stopped_at(StopKind::Signal));
      if (sig == SIGSEGV && si.si_code > 0 && t->regs.rip == 0 && t->regs.rsp == ret_sp)
        return Outcome{.what = Outcome::Returned, .rax = t->regs.rax};
      if (is_fault(sig, si, group_->pid()))
        return Outcome{.what = Outcome::Crashed, .sig = sig, .si = si, .rip = t->regs.rip};
      // Someone else's signal: the thread gets it once it is its own again.
      group_->record_signal(*t, sig);
      if (interrupted) return Outcome{.what = Outcome::TimedOut};  // this stop is as good as ours
      HS_CHECK(go_on());
      continue;
    }

    HS_CHECK(group_->service_others(tid_));
    const auto now = Clock::now();
    if (!interrupted && now >= deadline) continue;  // interrupted at the top
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>((interrupted ? give_up : deadline) - now);
    chld.wait(std::max<long>(1, std::min(left + std::chrono::milliseconds(1), std::chrono::milliseconds(50)).count()));
  }
}

// Threads the callee created: kept stopped if the caller asked for that.
// (Known by tid, not by position: exited threads are dropped from the list.)
Status RemoteCall::adopt_new_threads() {
  if (!keep_new_stopped_) return {};
  for (size_t i = 0; i < group_->threads().size(); ++i) {
    const pid_t tid = group_->threads()[i].tid;
    if (std::find(known_tids_.begin(), known_tids_.end(), tid) != known_tids_.end()) continue;
    const TracedThread* n = group_->find(tid);
    if (!n || n->stopped) continue;
    HS_CHECK(group_->hold(tid));
  }
  return {};
}

}  // namespace hs
