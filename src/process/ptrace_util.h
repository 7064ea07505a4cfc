// Small pieces the process layer's ptrace code shares (thread_group*.cc,
// remote_call.cc): a ptrace call with integer or pointer data, what a wait
// status says, SIGCHLD as the "a tracee changed state" wake-up, and how
// TracedThread::deferred_status encodes a report kept for later. Internal to
// src/process: not included outside it.
#pragma once

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cerrno>
#include <ctime>

namespace hs {

// TracedThread::deferred_status: no report kept, or "the thread is gone"
// (waitpid said ECHILD); any other value is a wait status.
inline constexpr int kDeferredNone = -1;
inline constexpr int kDeferredGone = -2;

// WSTOPSIG of a syscall-stop under PTRACE_O_TRACESYSGOOD.
inline constexpr int kSyscallStop = SIGTRAP | 0x80;

inline long pt(__ptrace_request req, pid_t tid, unsigned long addr = 0, unsigned long data = 0) {
  return ::ptrace(req, tid, reinterpret_cast<void*>(addr), reinterpret_cast<void*>(data));
}
inline long pt(__ptrace_request req, pid_t tid, unsigned long addr, void* data) {
  return ::ptrace(req, tid, reinterpret_cast<void*>(addr), data);
}

// The stop signals of job control: a PTRACE_EVENT_STOP with one of these is
// a group-stop, not our interrupt.
inline bool is_stop_signal(int sig) { return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU; }

inline bool is_exit(int status) { return WIFEXITED(status) || WIFSIGNALED(status); }

// Blocks SIGCHLD in the calling thread for the lifetime of the object, so
// that sigtimedwait() can use it as the "some tracee changed state" wake-up
// without a race against waitpid(WNOHANG).
class SigchldBlocked {
 public:
  SigchldBlocked() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigchldBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SigchldBlocked(const SigchldBlocked&) = delete;
  SigchldBlocked& operator=(const SigchldBlocked&) = delete;

  // Waits for SIGCHLD at most `ms` milliseconds; false on timeout.
  bool wait(long ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000};
    for (;;) {
      int r = sigtimedwait(&set_, nullptr, &ts);
      if (r >= 0) return true;
      if (errno != EINTR) return false;
    }
  }

 private:
  sigset_t set_, old_;
};

}  // namespace hs
