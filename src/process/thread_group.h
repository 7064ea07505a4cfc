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
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <vector>

#include "process/process.h"

namespace hs {

struct TracedThread {
  pid_t tid = 0;
  bool stopped = false;
  user_regs_struct regs{};   // valid while stopped (read at stop time)
  int pending_signal = 0;    // to re-deliver on resume
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
  // Resume every stopped thread (re-delivering recorded signals).
  Status resume_all();
  // Stop one thread only (for remote syscalls while the rest keeps running).
  Result<TracedThread*> stop_one();
  // Detach from every thread (resuming them).
  Status detach();

  std::vector<TracedThread>& threads() { return threads_; }
  const std::vector<TracedThread>& threads() const { return threads_; }

  // Registers of a stopped thread.
  Status set_regs(TracedThread& t, const user_regs_struct& regs);
  Status refresh_regs(TracedThread& t);
  // Resume one thread until its next syscall-stop (PTRACE_SYSCALL) and wait.
  // Used by RemoteSyscalls. Returns TargetGone if it exits meanwhile.
  Status syscall_step(TracedThread& t);

 private:
  ThreadGroup() = default;
  pid_t pid_ = 0;
  std::vector<TracedThread> threads_;
  bool attached_ = false;
};

}  // namespace hs
