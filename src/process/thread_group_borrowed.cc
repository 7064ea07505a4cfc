// What a thread borrowed to run code in the target (RemoteSyscalls,
// RemoteCall) needs from its ThreadGroup: its registers, one system call at
// a time, signals kept for later, and the other threads looked after while
// it runs.
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "process/ptrace_util.h"
#include "process/thread_group.h"

namespace hs {

// ---- registers and single system calls --------------------------------------

// A ptrace request on a thread we hold stopped failed with ESRCH: it has been
// woken by SIGKILL (the whole process is dying) and is running to its exit,
// which a later wait collects.
std::unexpected<Error> ThreadGroup::lost(TracedThread& t) {
  t.stopped = false;
  t.stop = StopKind::None;
  return fail(ErrorKind::TargetGone, "{}", gone_message());
}

Status ThreadGroup::set_regs(TracedThread& t, const user_regs_struct& regs) {
  if (!t.stopped) return fail(ErrorKind::Internal, "thread {} of PID {} is not stopped", t.tid, pid_);
  if (pt(PTRACE_SETREGS, t.tid, 0, reinterpret_cast<unsigned long>(&regs)) != 0) {
    int err = errno;
    if (err == ESRCH) return lost(t);
    return fail_errno(ErrorKind::Internal, err, "cannot set the registers of thread {} of PID {}", t.tid, pid_);
  }
  t.regs = regs;
  return {};
}

Status ThreadGroup::refresh_regs(TracedThread& t) {
  if (!t.stopped) return fail(ErrorKind::Internal, "thread {} of PID {} is not stopped", t.tid, pid_);
  if (pt(PTRACE_GETREGS, t.tid, 0, reinterpret_cast<unsigned long>(&t.regs)) != 0) {
    int err = errno;
    if (err == ESRCH) return lost(t);
    return fail_errno(ErrorKind::Internal, err, "cannot read the registers of thread {} of PID {}", t.tid, pid_);
  }
  return {};
}

Status ThreadGroup::syscall_step(TracedThread& thread) {
  const pid_t tid = thread.tid;
  if (!thread.stopped) return fail(ErrorKind::Internal, "thread {} of PID {} is not stopped", tid, pid_);
  // If it is dying (restart returns false), its exit report comes below.
  (void)HS_TRY(restart(thread, PTRACE_SYSCALL, false));
  for (;;) {
    Wait w = HS_TRY(wait_one(tid, true));
    TracedThread* t = find(tid);
    if (!t) return fail(ErrorKind::TargetGone, "{}", gone_message());
    if (w.what == Wait::Gone || (w.what == Wait::Status && is_exit(w.status))) {
      mark_gone(*t);
      return fail(ErrorKind::TargetGone, "{}", gone_message());
    }
    if (w.what != Wait::Status || !WIFSTOPPED(w.status)) continue;
    const int sig = WSTOPSIG(w.status);
    const int event = w.status >> 16;
    if (event == 0 && sig == kSyscallStop) {
      t->stopped = true;
      t->stop = StopKind::Syscall;
      return refresh_regs(*t);
    }
    if (event == 0) {
      // A signal arrived on the way: keep it for when the thread is resumed
      // (delivering it now would run a handler on our borrowed registers).
      record_signal(*t, sig);
    }
    // Anything else (a late PTRACE_EVENT_STOP, a job-control stop): go on.
    if (pt(PTRACE_SYSCALL, tid) != 0) {
      if (errno == ESRCH) continue;  // killed: the exit report comes next
      return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid, pid_);
    }
  }
}

// ---- a borrowed thread's companions ------------------------------------------

void ThreadGroup::record_signal(TracedThread& t, int sig) {
  if (t.pending_signal == 0)
    t.pending_signal = sig;
  else
    requeue_.emplace_back(t.tid, sig);
}

Status ThreadGroup::adopt_clone_of(pid_t parent, int resume, bool hold_child) {
  return adopt_clone(parent, Mode::Run, resume, hold_child);
}

Status ThreadGroup::service_others(pid_t borrowed) {
  for (size_t i = 0; i < threads_.size(); ++i) {  // grows as new threads are adopted
    const pid_t tid = threads_[i].tid;
    if (tid == borrowed) continue;
    TracedThread* o = find(tid);
    if (!o || o->deferred_status != kDeferredNone) continue;
    if (o->stopped) {
      // Held stopped: only its death can be reported. Keep (and reap) it.
      int status = 0;
      pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
      if (r == tid) o->deferred_status = status;
      else if (r < 0 && errno == ECHILD) o->deferred_status = kDeferredGone;
      continue;
    }
    for (;;) {
      Wait w = HS_TRY(wait_one(tid, false));
      if (w.what == Wait::None) break;
      if (w.what == Wait::Gone) {
        if (TracedThread* g = find(tid)) mark_gone(*g);
        break;
      }
      HS_CHECK(handle(tid, w.status, Mode::Run));
      if (!find(tid)) break;
    }
  }
  return {};
}

Status ThreadGroup::hold(pid_t tid) {
  pt(PTRACE_INTERRUPT, tid);
  TracedThread* t;
  while ((t = find(tid)) && !t->stopped) HS_CHECK(collect(tid, Mode::Stop));
  return {};
}

}  // namespace hs
