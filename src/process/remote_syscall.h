// Borrow one stopped thread of the target to run system calls in it
// (mmap, munmap, mprotect, memfd_create, ...), like rr's AutoRemoteSyscalls.
//
// The thread's registers are saved first. If it was stopped inside an
// interrupted system call (orig_rax >= 0 and rax = -ERESTART*), the saved
// state is normalised to "about to re-execute that syscall" (rip -= 2, rax =
// the syscall number, or __NR_restart_syscall for -ERESTART_RESTARTBLOCK), so
// that when it is put back, the thread's own call restarts exactly as the
// kernel would have done: no spurious EINTR. No byte of target memory is
// written on the thread's stack (including the red zone) and none of the
// program's memory is changed (the trampoline is a mapping of its own).
//
// Seccomp: before each call, the borrowed thread's filters are asked what
// they would do with it (seccomp_guard.h), on the exact number, arguments
// and instruction pointer. A call they would fail with an errno is not made
// and that errno is its result (`refused()` says so); a call they would
// answer in any harmful way (kill, SIGSYS, ...) is not made and is an error
// naming it and the verdict.
//
// Crash safety: each call runs the `syscall` of the recovery trampoline
// (trampoline.h), with the thread's own registers written to its data area
// first, so that a hotsplice killed mid-call leaves a thread that puts them
// back itself. create() finds or makes the trampoline once per group, and
// gives a thread a killed invocation left inside it its own registers back.
//
// Each call runs as PTRACE_SYSCALL to the syscall-entry-stop, then to the
// syscall-exit-stop; the thread is left at that stop (StopKind::Syscall) and
// finish() puts the saved registers back there. A signal that arrives
// meanwhile is not delivered (its handler would run on our registers): it
// is recorded in pending_signal and raised again when the thread is resumed
// (its siginfo is then the kernel's, not the original sender's). Prefer a
// thread from ThreadGroup::stop_one(), which is never in a
// signal-delivery-stop; borrowing one that is works the same way.
#pragma once

#include <sys/user.h>

#include "process/thread_group.h"
#include "support/done_flag.h"

namespace hs {

// The normalisation described above, on its own: registers of a thread
// stopped inside an interrupted system call become "about to re-execute it"
// (rip -= 2, rax = its number or restart_syscall), and orig_rax = -1 always.
// Idempotent. RemoteCall uses it too.
void normalise_syscall_restart(user_regs_struct& r);

class RemoteSyscalls {
 public:
  // `t` must be stopped. Finds a syscall instruction in the target.
  static Result<RemoteSyscalls> create(ThreadGroup& group, TracedThread& t, const Process& proc);

  RemoteSyscalls(RemoteSyscalls&&) noexcept = default;
  RemoteSyscalls& operator=(RemoteSyscalls&&) = delete;
  ~RemoteSyscalls();  // calls finish() if not done, ignoring errors

  // Runs syscall `nr` with up to 6 arguments in the borrowed thread; returns
  // the raw result (negative errno values are returned as values, not errors;
  // an Error means the thread could not be driven, e.g. TargetGone).
  template <class... Args>
  Result<long> syscall(long nr, Args... args) {
    static_assert(sizeof...(Args) <= 6);
    unsigned long a[6] = {static_cast<unsigned long>(args)...};
    return syscall_raw(nr, a);
  }
  Result<long> syscall_raw(long nr, const unsigned long (&args)[6]);

  // True if the last call was not made because the seccomp filter fails it
  // with the errno that was returned.
  bool refused() const { return refused_; }
  // The error for a call that returned `result` (a negative errno): "WHAT:
  // <strerror>", plus, when the seccomp filter refused it, "(EPERM from PID
  // N's seccomp filter; the call was not made)".
  Error failure(long result, std::string_view what) const;

  // Convenience wrappers returning an error naming the call on failure.
  Result<RemoteAddr> mmap(RemoteAddr hint, u64 len, int prot, int flags, int fd, u64 off);
  Status munmap(RemoteAddr addr, u64 len);
  Status mprotect(RemoteAddr addr, u64 len, int prot);

  // Puts the saved registers back. Reports restore errors.
  Status finish();

  // The trampoline in use (null: none, a `syscall` of the target's code is used).
  RemoteAddr trampoline() const { return trampoline_; }

  // Tests only: called with the syscall number at `phase` 0 (our registers
  // set, before PTRACE_SYSCALL) and 1 (at the syscall-entry-stop), to kill
  // the tool at the worst moments.
  static inline void (*test_kill_point)(long nr, int phase) = nullptr;

 private:
  RemoteSyscalls() = default;
  ThreadGroup* group_ = nullptr;
  const Process* proc_ = nullptr;
  pid_t tid_ = 0;  // the borrowed thread (not a pointer: the thread vector may grow)
  RemoteAddr syscall_insn_;
  RemoteAddr trampoline_;
  user_regs_struct saved_{};
  bool refused_ = false;
  DoneFlag done_;  // set by default and in a moved-from object
};

}  // namespace hs
