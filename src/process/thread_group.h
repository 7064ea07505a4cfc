// Every thread of a target, attached with PTRACE_SEIZE.
//
// Seizing does not stop anything: the process keeps running until
// stop_all(). Attachment doubles as the per-process operation lock: the
// thread-group leader is always seized first, and the kernel lets only one
// tracer attach, so of two hotsplice instances exactly one gets it; the other
// gets Busy ("PID N is busy: another hotsplice (PID M) is working on it").
// A tracer that is not hotsplice (a debugger) gets Permission-kind
// "PID N is already traced by PID M (gdb)". A stopped (SIGSTOP) target is
// refused: "PID N is stopped (state T); continue it first".
// If hotsplice dies, the kernel detaches every thread (the lock is released).
//
// stop_all() interrupts every thread first, then waits for each (the stop
// window is about one round trip, not one per thread). Threads created while
// attaching or stopped are caught through PTRACE_O_TRACECLONE; threads that
// exit are dropped. Signals that arrive while a thread is stopped are recorded
// and re-delivered when it is resumed, so none is lost.
//
// While seized but not stopped, a thread that receives a signal or creates a
// thread stops until its tracer looks at it. stop_all(), stop_one(),
// resume_all() and detach() all look; during a long phase with the process
// running (e.g. building a payload image) call poll_events() now and then so
// such threads are let go at once.
//
// Waiting on the thread-group leader is special: the kernel holds back the
// leader's exit report until every other (traced) thread has been reaped,
// so a blocking wait on the leader alone could hang if the process is killed
// meanwhile. The leader is therefore waited for last, and while waiting on it
// the other threads are polled as well (SIGCHLD is briefly blocked in the
// calling thread and used as the wake-up). A leader that exits on its own
// (pthread_exit) while its process lives on never reports: after 50 ms of
// quiet /proc is asked, and such a leader is dropped from threads(). (One
// that has already exited cannot be attached to: seize() refuses, State.)
//
// A ThreadGroup must not be used from more than one host thread, and
// RemoteSyscalls objects must not outlive (or see a move of) their group.
#pragma once

#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>

#include <functional>
#include <vector>

#include "process/process.h"
#include "process/seccomp_guard.h"
#include "process/trampoline.h"

namespace hs {

// What kind of ptrace-stop a stopped thread sits in. It decides how the
// thread may be resumed: a recorded signal can only be re-delivered from a
// signal-delivery-stop or a syscall-stop (the kernel ignores the signal
// argument when resuming from an event stop).
enum class StopKind : u8 {
  None,       // not stopped
  Interrupt,  // PTRACE_EVENT_STOP: our PTRACE_INTERRUPT, or a new thread's first stop
  GroupStop,  // PTRACE_EVENT_STOP of a job-control stop (SIGSTOP/SIGTSTP/...); resumed with PTRACE_LISTEN
  Signal,     // signal-delivery-stop; `pending_signal` is re-delivered on resume
  Syscall,    // syscall stop: the exit stop RemoteSyscalls / RemoteCall leave (registers put back)
};

struct TracedThread {
  pid_t tid = 0;
  bool stopped = false;
  user_regs_struct regs{};   // valid while stopped (read at stop time)
  int pending_signal = 0;    // to re-deliver on resume
  StopKind stop = StopKind::None;

  // Stopped in the second wave of stop_all(between): it was running when
  // the stop began. resume_all() and detach() let these go first.
  bool late = false;

  // Internal to ThreadGroup: a wait status collected early (while waiting for
  // the leader) and not yet acted on; a thread found exited; a
  // PTRACE_INTERRUPT sent and its stop not yet seen.
  int deferred_status = -1;
  bool gone = false;
  bool interrupted = false;
};

class ThreadGroup {
 public:
  // Seizes every thread (leader first), repeating the /proc/PID/task scan
  // until no new thread appears.
  static Result<ThreadGroup> seize(const Process& proc);

  ThreadGroup(ThreadGroup&&) noexcept;
  ThreadGroup& operator=(ThreadGroup&&) = delete;
  ~ThreadGroup();  // resumes (if stopped) and detaches, ignoring errors

  pid_t pid() const { return pid_; }

  // Interrupt all, then wait for all; registers are read into each thread.
  Status stop_all();
  // The same in two waves, so that threads doing work are held as briefly as
  // possible: first the threads that are not running (blocked in a system
  // call or sleeping, as /proc says), then `between` is called with those
  // stopped, then the running ones (marked `late`). If `between` returns
  // false, the stop ends there with only the first wave stopped (the caller
  // resumes them). Returns whether the second wave ran.
  Result<bool> stop_all(const std::function<Result<bool>()>& between);
  // Resume every stopped thread (re-delivering recorded signals); the late
  // ones first.
  Status resume_all();
  // Stop one thread only (for remote syscalls while the rest keeps running).
  // Returns a thread in an Interrupt (or GroupStop/Syscall) stop, never one in
  // a signal-delivery-stop: those stay stopped with their signal recorded and
  // another thread is tried. If every thread has a signal to take, the
  // leader's is delivered now and the leader is stopped again right after.
  // The pointer is valid until the next call that may add or drop threads.
  Result<TracedThread*> stop_one();
  // Detach from every thread (resuming them). Recorded signals go with the
  // detach; a process in a job-control stop stays stopped.
  Status detach();
  // Without blocking: lets threads that stopped on their own while running
  // (a signal to deliver, a new thread) go on, and adopts new threads.
  Status poll_events();

  std::vector<TracedThread>& threads() { return threads_; }
  const std::vector<TracedThread>& threads() const { return threads_; }
  TracedThread* find(pid_t tid);

  // Registers of a stopped thread.
  Status set_regs(TracedThread& t, const user_regs_struct& regs);
  Status refresh_regs(TracedThread& t);
  // Resume one thread until its next syscall-stop (PTRACE_SYSCALL) and wait.
  // Used by RemoteSyscalls. Returns TargetGone if it exits meanwhile.
  // Signals that arrive on the way are recorded (pending_signal) and not
  // delivered; when the thread is resumed later they are.
  Status syscall_step(TracedThread& t);

  // ---- for a thread borrowed to run code (RemoteSyscalls, RemoteCall) ----

  // A ptrace request on thread `t`, held stopped, failed with ESRCH: it has
  // been woken by SIGKILL (the whole process is dying) and runs to its exit,
  // which a later wait collects. Marks it running; returns TargetGone.
  std::unexpected<Error> lost(TracedThread& t);
  // Thread `t` has exited (its exit status has been collected).
  void mark_gone(TracedThread& t);
  // "process N exited during the operation".
  std::string gone_message() const;
  // Keeps signal `sig`, which arrived while `t` ran on borrowed registers,
  // to be raised when `t` is resumed as itself.
  void record_signal(TracedThread& t, int sig);
  // Thread `parent`, run by the caller with `resume` (PTRACE_CONT or
  // PTRACE_SYSCALL), reported PTRACE_EVENT_CLONE: adopts the new thread and
  // resumes `parent` the same way. The new thread runs, or with
  // `hold_child` is kept at its first stop.
  Status adopt_clone_of(pid_t parent, int resume, bool hold_child);
  // Without blocking, while the caller drives thread `borrowed`: lets every
  // other running thread go on from a stop of its own (a signal delivered, a
  // new thread adopted), as poll_events() does. A thread held stopped can
  // only report its death: that report is collected (the thread reaped,
  // which the leader's exit report waits for) and kept for later.
  Status service_others(pid_t borrowed);
  // Interrupts running thread `tid` and waits until it is stopped (or gone).
  Status hold(pid_t tid);

  // The recovery trampoline of this process and the fallback `syscall`
  // instruction: found (or made) once per attachment, used by every
  // RemoteSyscalls and RemoteCall on this group.
  RecoveryTrampoline& trampoline() { return trampoline_; }
  // What each thread's seccomp filters make of the calls we make in it
  // (read once per attachment, checked before every remote system call).
  SeccompGuard& seccomp() { return seccomp_; }

 private:
  enum class Mode : u8 { Stop, StopOne, Run };
  struct Wait {
    enum : u8 { None, Status, Gone } what = None;
    int status = 0;
  };

  ThreadGroup() = default;
  Result<Wait> wait_one(pid_t tid, bool block);
  Result<Wait> wait_leader();
  Status handle(pid_t tid, int status, Mode mode);
  // The parent is resumed with `resume` (PTRACE_CONT, or PTRACE_SYSCALL for
  // a RemoteCall that waits for its return at a system call). With
  // `hold_child`, the new thread is kept at its first stop whatever `mode`.
  Status adopt_clone(pid_t parent, Mode mode, int resume = PTRACE_CONT, bool hold_child = false);
  Status collect(pid_t tid, Mode mode);
  Status collect_reported();
  // Waits until every thread that was interrupted, or has a deferred
  // status, is stopped (or gone); the leader last.
  Status wait_interrupted();
  Result<bool> restart(TracedThread& t, int request, bool deliver);
  Status stop_threads();
  Status check_alive();
  void compact();

  pid_t pid_ = 0;
  std::vector<TracedThread> threads_;
  bool attached_ = false;
  bool leader_exited_ = false;             // leader called pthread_exit; process lives on
  std::vector<std::pair<pid_t, int>> requeue_;  // extra signals seen while a thread was borrowed
  RecoveryTrampoline trampoline_;
  SeccompGuard seccomp_;
};

}  // namespace hs
