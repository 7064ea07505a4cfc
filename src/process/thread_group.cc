// Seizing, stopping and resuming every thread of a target with ptrace.
//
// A few kernel facts this file is built on (Linux 6.x, x86-64):
//
//  - PTRACE_SEIZE attaches without stopping. PTRACE_INTERRUPT asks for a
//    PTRACE_EVENT_STOP (status>>16 == PTRACE_EVENT_STOP, WSTOPSIG SIGTRAP;
//    a job-control stop reports the stop signal instead). The request is a
//    pending "trap" bit that *any* ptrace-stop clears, so a thread that
//    reports a signal-delivery-stop after our interrupt will not stop again
//    for it; one that was already sitting in an unreported stop when we
//    interrupted it keeps the bit and traps once more after it is resumed.
//    stop_all() therefore collects already-reported stops (WNOHANG) before
//    interrupting, and every code path treats a stray PTRACE_EVENT_STOP as
//    harmless.
//  - The signal argument of PTRACE_CONT/DETACH is honoured from a
//    signal-delivery-stop (delivered as is) and from a syscall-stop (raised
//    anew), and ignored from an event stop. A recorded signal is only ever
//    passed back from one of the first two; anything else is re-raised with
//    tgkill.
//  - With PTRACE_O_TRACECLONE, a seized thread that creates a thread stops in
//    PTRACE_EVENT_CLONE and the new thread is attached already, starting with
//    its own PTRACE_EVENT_STOP. fork()/vfork() children (exit signal SIGCHLD,
//    CLONE_VFORK) are not followed.
//  - A traced thread that exits stays a zombie until its tracer waits for it,
//    and the leader's exit is reported only once every other thread has been
//    reaped. See wait_leader().
//
// This file is the state machine: waiting, acting on each report, stopping
// and resuming. Attaching is in thread_group_seize.cc, what a borrowed
// thread needs in thread_group_borrowed.cc.
#include "process/thread_group.h"

#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "process/ptrace_util.h"

namespace hs {

ThreadGroup::ThreadGroup(ThreadGroup&& o) noexcept
    : pid_(o.pid_),
      threads_(std::move(o.threads_)),
      attached_(o.attached_),
      leader_exited_(o.leader_exited_),
      requeue_(std::move(o.requeue_)),
      trampoline_(o.trampoline_),
      seccomp_(std::move(o.seccomp_)) {
  o.attached_ = false;
  o.threads_.clear();
  o.requeue_.clear();
}

ThreadGroup::~ThreadGroup() {
  if (attached_) (void)detach();
}

TracedThread* ThreadGroup::find(pid_t tid) {
  for (auto& t : threads_)
    if (t.tid == tid && !t.gone) return &t;
  return nullptr;
}

std::string ThreadGroup::gone_message() const { return fmt::format("process {} exited during the operation", pid_); }

void ThreadGroup::mark_gone(TracedThread& t) {
  t.gone = true;
  t.stopped = false;
  t.stop = StopKind::None;
  t.deferred_status = kDeferredNone;
}

void ThreadGroup::compact() {
  std::erase_if(threads_, [](const TracedThread& t) { return t.gone; });
}

// The process is gone when its leader has been reported exited (the kernel
// reports that only once the whole group is dead), or when no thread is left.
Status ThreadGroup::check_alive() {
  bool leader = std::any_of(threads_.begin(), threads_.end(),
                            [&](const TracedThread& t) { return t.tid == pid_ && !t.gone; });
  bool any = std::any_of(threads_.begin(), threads_.end(), [](const TracedThread& t) { return !t.gone; });
  if (!any || (!leader && !leader_exited_)) return fail(ErrorKind::TargetGone, "{}", gone_message());
  return {};
}

// ---- waiting ----------------------------------------------------------------

Result<ThreadGroup::Wait> ThreadGroup::wait_one(pid_t tid, bool block) {
  if (TracedThread* t = find(tid); t && t->deferred_status != kDeferredNone) {
    int s = t->deferred_status;
    t->deferred_status = kDeferredNone;
    if (s == kDeferredGone) return Wait{Wait::Gone, 0};
    return Wait{Wait::Status, s};
  }
  if (block && tid == pid_) return wait_leader();
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(tid, &status, __WALL | (block ? 0 : WNOHANG));
    if (r == tid) return Wait{Wait::Status, status};
    if (r == 0) return Wait{Wait::None, 0};
    if (errno == EINTR) continue;
    if (errno == ECHILD) return Wait{Wait::Gone, 0};
    return fail_errno(ErrorKind::Internal, errno, "waitpid for thread {} of PID {} failed", tid, pid_);
  }
}

// Blocking wait for the leader. The kernel will not report the leader's
// exit while another traced thread of the group is an unreaped zombie, and a
// thread we already count as stopped can still be killed (SIGKILL). So,
// while waiting here, the other threads are polled too and whatever they
// report is kept (deferred_status) for whoever waits on them next. A leader
// that exited on its own (pthread_exit) never reports while the process
// lives: it is noticed in /proc after a quiet spell and treated as gone.
Result<ThreadGroup::Wait> ThreadGroup::wait_leader() {
  auto poll_leader = [&]() -> Result<Wait> {
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, __WALL | WNOHANG);
      if (r == pid_) return Wait{Wait::Status, status};
      if (r == 0) return Wait{Wait::None, 0};
      if (errno == EINTR) continue;
      if (errno == ECHILD) return Wait{Wait::Gone, 0};
      return fail_errno(ErrorKind::Internal, errno, "waitpid for thread {} of PID {} failed", pid_, pid_);
    }
  };
  Wait w = HS_TRY(poll_leader());
  if (w.what != Wait::None) return w;

  SigchldBlocked chld;
  for (;;) {
    w = HS_TRY(poll_leader());
    if (w.what != Wait::None) return w;
    bool progressed = false;
    for (auto& t : threads_) {
      if (t.tid == pid_ || t.gone) continue;
      if (t.deferred_status == kDeferredGone || (t.deferred_status >= 0 && is_exit(t.deferred_status))) continue;
      int status = 0;
      pid_t r = ::waitpid(t.tid, &status, __WALL | WNOHANG);
      if (r == t.tid) {
        // A thread has at most one stop to report before it is resumed;
        // an exit report replaces an unprocessed stop.
        if (t.deferred_status == kDeferredNone || is_exit(status)) t.deferred_status = status;
        progressed = true;
      } else if (r < 0 && errno == ECHILD) {
        t.deferred_status = kDeferredGone;
        progressed = true;
      }
    }
    if (progressed) continue;
    if (chld.wait(50)) continue;
    // Fifty quiet milliseconds: a leader in a long uninterruptible sleep, or
    // one that has exited while its process lives on.
    auto st = Process::task_status(pid_, pid_);
    if (!st || st->state == 'Z' || st->state == 'X') {
      w = HS_TRY(poll_leader());
      if (w.what != Wait::None) return w;
      leader_exited_ = true;
      return Wait{Wait::Gone, 0};
    }
  }
}

// Waits (blocking) for the next report of `tid` and acts on it.
Status ThreadGroup::collect(pid_t tid, Mode mode) {
  Wait w = HS_TRY(wait_one(tid, true));
  if (w.what == Wait::Gone) {
    if (TracedThread* t = find(tid)) mark_gone(*t);
    return {};
  }
  if (w.what == Wait::Status) return handle(tid, w.status, mode);
  return {};
}

// Acts on one wait status of thread `tid`. In Stop mode a stop is kept (and
// the registers read); in Run mode the thread is let go again. StopOne is
// Stop for the thread itself and Run for threads it creates.
Status ThreadGroup::handle(pid_t tid, int status, Mode mode) {
  TracedThread* t = find(tid);
  if (!t) return {};
  if (is_exit(status)) {
    mark_gone(*t);
    return {};
  }
  if (!WIFSTOPPED(status)) return {};
  const int sig = WSTOPSIG(status);
  const int event = status >> 16;

  if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK)
    return adopt_clone(tid, mode);

  StopKind kind;
  if (event == PTRACE_EVENT_STOP) {
    kind = is_stop_signal(sig) ? StopKind::GroupStop : StopKind::Interrupt;
  } else if (event != 0) {
    // An event we did not ask for: bring the thread back to a plain stop.
    if (mode == Mode::Run) {
      if (pt(PTRACE_CONT, tid) != 0 && errno != ESRCH)
        return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid, pid_);
      return {};
    }
    pt(PTRACE_INTERRUPT, tid);
    if (pt(PTRACE_CONT, tid) != 0 && errno != ESRCH)
      return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid, pid_);
    return {};
  } else if (sig == kSyscallStop) {
    kind = StopKind::Syscall;
  } else {
    kind = StopKind::Signal;
  }

  if (mode == Mode::Run) {
    long r;
    if (kind == StopKind::Signal) {
      r = pt(PTRACE_CONT, tid, 0, static_cast<unsigned long>(sig));  // deliver it now
    } else if (kind == StopKind::GroupStop) {
      r = pt(PTRACE_LISTEN, tid);  // stay stopped, as job control wants
    } else {
      r = pt(PTRACE_CONT, tid);
    }
    if (r != 0 && errno != ESRCH)
      return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", tid, pid_);
    return {};
  }

  t->stopped = true;
  t->stop = kind;
  if (kind == StopKind::Signal) {
    if (t->pending_signal != 0) requeue_.emplace_back(tid, t->pending_signal);
    t->pending_signal = sig;
  }
  if (pt(PTRACE_GETREGS, tid, 0, reinterpret_cast<unsigned long>(&t->regs)) != 0) {
    if (errno != ESRCH)
      return fail_errno(ErrorKind::Internal, errno, "cannot read the registers of thread {} of PID {}", tid, pid_);
    // Killed while stopping: it is running to its exit, which comes next.
    t->stopped = false;
    t->stop = StopKind::None;
  }
  return {};
}

// `parent` reported PTRACE_EVENT_CLONE: the new thread is attached already.
Status ThreadGroup::adopt_clone(pid_t parent, Mode mode, int resume, bool hold_child) {
  unsigned long msg = 0;
  if (pt(PTRACE_GETEVENTMSG, parent, 0, reinterpret_cast<unsigned long>(&msg)) != 0) {
    if (errno == ESRCH) return {};  // killed meanwhile; its exit report follows
    return fail_errno(ErrorKind::Internal, errno, "cannot read the new thread of thread {} of PID {}", parent, pid_);
  }
  const pid_t child = static_cast<pid_t>(msg);
  // Only threads of this process are ours (a CLONE_VM child without
  // CLONE_THREAD is another process).
  struct stat sb;
  bool ours = ::stat(fmt::format("/proc/{}/task/{}", pid_, child).c_str(), &sb) == 0;
  // In Stop mode its first stop is waited for like an interrupted thread's.
  if (child > 0 && ours && !find(child))
    threads_.push_back(TracedThread{.tid = child, .interrupted = mode == Mode::Stop});
  if (child > 0 && !ours) {
    // Wait for its first stop, then let it go.
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(child, &status, __WALL);
      if (r < 0 && errno == EINTR) continue;
      if (r == child && WIFSTOPPED(status)) pt(PTRACE_DETACH, child);
      break;
    }
  }

  // The parent: in Stop mode it is asked to stop again right after clone()
  // returns (a clean stop outside the system call); otherwise it goes on.
  if (mode == Mode::Stop || mode == Mode::StopOne) pt(PTRACE_INTERRUPT, parent);
  if (pt(static_cast<__ptrace_request>(resume), parent) != 0 && errno != ESRCH)
    return fail_errno(ErrorKind::Internal, errno, "cannot resume thread {} of PID {}", parent, pid_);

  // The child starts with a stop of its own. In Stop mode the caller waits
  // for it with the others; otherwise let it run now.
  if (child > 0 && ours && hold_child) return collect(child, Mode::Stop);
  if (child > 0 && ours && mode != Mode::Stop) HS_CHECK(collect(child, Mode::Run));
  return {};
}

// ---- resuming ---------------------------------------------------------------

// Restarts a stopped thread with PTRACE_CONT, PTRACE_DETACH or
// PTRACE_SYSCALL. With `deliver`, its recorded signal goes with it when the
// kind of stop allows that, and is re-raised with tgkill otherwise. Returns
// false if the thread could not be restarted because it is dying (SIGKILL).
Result<bool> ThreadGroup::restart(TracedThread& t, int request, bool deliver) {
  const pid_t tid = t.tid;
  int sig = 0;
  bool raise_after = false;
  if (deliver && t.pending_signal != 0) {
    if (t.stop == StopKind::Signal || t.stop == StopKind::Syscall)
      sig = t.pending_signal;
    else
      raise_after = true;
  }
  int req = request;
  if (req == PTRACE_CONT && t.stop == StopKind::GroupStop) req = PTRACE_LISTEN;
  long r = pt(static_cast<__ptrace_request>(req), tid, 0, static_cast<unsigned long>(sig));
  int err = errno;
  t.stopped = false;
  t.stop = StopKind::None;
  t.late = false;
  if (r != 0) {
    // ESRCH: killed while stopped; its exit report is still to come.
    if (err == ESRCH) return false;
    return fail_errno(ErrorKind::Internal, err, "cannot resume thread {} of PID {}", tid, pid_);
  }
  if (deliver) {
    int pending = t.pending_signal;
    t.pending_signal = 0;
    if (raise_after) ::syscall(SYS_tgkill, pid_, tid, pending);
    for (auto it = requeue_.begin(); it != requeue_.end();) {
      if (it->first == tid) {
        ::syscall(SYS_tgkill, pid_, tid, it->second);
        it = requeue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return true;
}

Status ThreadGroup::resume_all() {
  if (!attached_) return fail(ErrorKind::Internal, "PID {} is not attached", pid_);
  bool lost = false;
  for (const bool late : {true, false}) {
    for (auto& t : threads_) {
      if (t.gone || t.late != late) continue;
      if (t.deferred_status != kDeferredNone) {
        // Killed while we held it stopped (collected while waiting on the leader).
        HS_CHECK(collect(t.tid, Mode::Run));
        continue;
      }
      if (!t.stopped) continue;
      if (!HS_TRY(restart(t, PTRACE_CONT, true))) lost = true;
    }
  }
  compact();
  if (lost) HS_CHECK(poll_events());
  return check_alive();
}

Status ThreadGroup::poll_events() {
  if (!attached_) return {};
  for (size_t i = 0; i < threads_.size(); ++i) {  // grows as new threads are adopted
    const pid_t tid = threads_[i].tid;
    for (;;) {
      TracedThread* t = find(tid);
      if (!t || (t->stopped && t->deferred_status == kDeferredNone)) break;
      Wait w = HS_TRY(wait_one(tid, false));
      if (w.what == Wait::None) break;
      if (w.what == Wait::Gone) {
        mark_gone(*t);
        break;
      }
      HS_CHECK(handle(tid, w.status, t->stopped ? Mode::Stop : Mode::Run));
    }
  }
  compact();
  return check_alive();
}

// ---- stopping ---------------------------------------------------------------

// Collects the stops that have already happened (a signal to deliver, a new
// thread) without blocking.
Status ThreadGroup::collect_reported() {
  for (size_t i = 0; i < threads_.size(); ++i) {
    const pid_t tid = threads_[i].tid;
    TracedThread* t = &threads_[i];
    if (t->gone || t->stopped) continue;
    Wait w = HS_TRY(wait_one(tid, false));
    if (w.what == Wait::Gone) {
      mark_gone(threads_[i]);
    } else if (w.what == Wait::Status) {
      HS_CHECK(handle(tid, w.status, Mode::Stop));
    }
  }
  return {};
}

Status ThreadGroup::wait_interrupted() {
  auto waiting = [](const TracedThread* t) {
    return t && !t->gone && ((!t->stopped && t->interrupted) || t->deferred_status != kDeferredNone);
  };
  for (;;) {
    for (size_t i = 0; i < threads_.size(); ++i) {  // grows with clone events
      const pid_t tid = threads_[i].tid;
      if (tid == pid_) continue;
      while (waiting(find(tid))) HS_CHECK(collect(tid, Mode::Stop));
    }
    if (waiting(find(pid_))) {
      HS_CHECK(collect(pid_, Mode::Stop));
      continue;
    }
    if (std::none_of(threads_.begin(), threads_.end(), [&](const TracedThread& t) { return waiting(&t); })) break;
  }
  for (auto& t : threads_)
    if (t.stopped) t.interrupted = false;
  return {};
}

// Brings every thread to a stop: first collect the stops that have already
// happened, then interrupt all the others at once, then wait for each (the
// leader last, see wait_leader()). A thread born meanwhile comes stopped
// (its first stop) and is waited for with the others.
Status ThreadGroup::stop_threads() {
  HS_CHECK(collect_reported());
  for (;;) {
    for (auto& t : threads_) {
      if (t.gone || t.stopped || t.interrupted) continue;
      // ESRCH: exiting; the wait below collects it.
      pt(PTRACE_INTERRUPT, t.tid);
      t.interrupted = true;
    }
    HS_CHECK(wait_interrupted());
    // New threads adopted while waiting have not been interrupted: they
    // stop by themselves, but are waited for like the others.
    bool all = true;
    for (auto& t : threads_)
      if (!t.gone && !t.stopped) all = false;
    if (all) break;
  }
  compact();
  return check_alive();
}

Status ThreadGroup::stop_all() {
  if (!attached_) return fail(ErrorKind::Internal, "PID {} is not attached", pid_);
  return stop_threads();
}

Result<bool> ThreadGroup::stop_all(const std::function<Result<bool>()>& between) {
  if (!attached_) return fail(ErrorKind::Internal, "PID {} is not attached", pid_);
  HS_CHECK(collect_reported());
  // Wave 1: the threads that are not running now. Interrupting one that is
  // blocked makes the kernel wake it to stop, which costs a scheduling round
  // each; the running ones keep their CPUs meanwhile.
  // The states are read first, so that the interrupts go out together.
  std::vector<TracedThread*> first;
  for (auto& t : threads_)
    if (!t.gone && !t.stopped && Process::thread_state(pid_, t.tid) != 'R') first.push_back(&t);
  for (TracedThread* t : first) {
    pt(PTRACE_INTERRUPT, t->tid);
    t->interrupted = true;
  }
  HS_CHECK(wait_interrupted());
  compact();
  HS_CHECK(check_alive());
  if (!HS_TRY(between())) return false;
  // Wave 2: the rest.
  for (auto& t : threads_)
    if (!t.gone && !t.stopped) t.late = true;
  HS_CHECK(stop_threads());
  return true;
}

Result<TracedThread*> ThreadGroup::stop_one() {
  if (!attached_) return fail(ErrorKind::Internal, "PID {} is not attached", pid_);
  HS_CHECK(poll_events());
  auto usable = [](const TracedThread* t) { return t && t->stopped && t->stop != StopKind::Signal; };

  std::vector<pid_t> order;
  order.push_back(pid_);
  for (const auto& t : threads_)
    if (t.tid != pid_) order.push_back(t.tid);
  for (pid_t tid : order)
    if (usable(find(tid))) return find(tid);

  for (pid_t tid : order) {
    TracedThread* t = find(tid);
    if (!t || t->stopped) continue;
    pt(PTRACE_INTERRUPT, tid);
    while ((t = find(tid)) && !t->stopped) HS_CHECK(collect(tid, Mode::StopOne));
    if (usable(t)) {
      compact();
      return find(tid);
    }
    HS_CHECK(check_alive());
  }

  // Every thread has a signal to take. Deliver one (the leader's if it has
  // one) and stop that thread again right after: PTRACE_INTERRUPT first,
  // so it traps once the signal is dealt with.
  for (int round = 0; round < 64; ++round) {
    TracedThread* t = nullptr;
    for (pid_t tid : order)
      if (TracedThread* c = find(tid); c && c->stopped) {
        t = c;
        break;
      }
    if (!t) break;
    const pid_t tid = t->tid;
    pt(PTRACE_INTERRUPT, tid);
    (void)HS_TRY(restart(*t, PTRACE_CONT, true));
    while ((t = find(tid)) && !t->stopped) HS_CHECK(collect(tid, Mode::StopOne));
    if (usable(t)) {
      compact();
      return find(tid);
    }
  }
  compact();
  HS_CHECK(check_alive());
  return fail(ErrorKind::Internal, "could not stop any thread of PID {} outside a signal delivery", pid_);
}

Status ThreadGroup::detach() {
  if (!attached_) return {};
  // Every thread must be in a ptrace-stop to be detached, and a signal it
  // has to take must be passed on with the detach.
  Status st = stop_threads();
  for (const bool late : {true, false}) {
    for (auto& t : threads_) {
      if (t.gone || t.late != late) continue;
      if (t.stopped) {
        auto r = restart(t, PTRACE_DETACH, true);
        if (!r && st) st = std::unexpected(std::move(r.error()));
      } else {
        pt(PTRACE_DETACH, t.tid);
      }
    }
  }
  for (auto [tid, sig] : requeue_) ::syscall(SYS_tgkill, pid_, tid, sig);
  requeue_.clear();
  threads_.clear();
  attached_ = false;
  return st;
}

}  // namespace hs
