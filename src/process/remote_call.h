// Call a function of the target on one borrowed, stopped thread, the way a
// debugger's "print f(1, 2)" does: the payload hooks run this way.
//
// Same discipline as RemoteSyscalls (remote_syscall.h): the thread's
// registers are saved when the object is created, normalised if it was
// stopped inside an interrupted system call (so its own call restarts
// exactly once later), and put back after every call, so that between calls
// the thread always carries its own state. Its floating-point / vector state
// (XSAVE area, or the FXSAVE one where the kernel offers no XSTATE regset) is
// saved and put back too: the callee may use any caller-saved register.
//
// One call:
//
//   rsp' = ((rsp - 128) & ~15) - 8     below the red zone; at the callee's
//                                      entry (rsp'+8) % 16 == 0 (psABI)
//   [rsp'] = the return address (below)
//   rip = fn, rdi rsi rdx rcx r8 r9 = arguments, rax = 0 (no vector
//   arguments), orig_rax = -1, DF and TF cleared
//   PTRACE_SYSCALL (PTRACE_CONT without a trampoline), then wait
//
// With the recovery trampoline (trampoline.h), which every process gets
// unless it refuses executable memory: its data area first receives the
// thread's own registers and vector state image, and the callee returns
// into the trampoline's call-return code (x86_64::make_call_return), which
// zeroes the return address slot, moves the result to rdi and makes a
// getpid system call. The thread runs under PTRACE_SYSCALL, so its own
// system calls stop too (and go on); the entry stop of that getpid, at its
// known rip with rsp == rsp' + 8, is the return. It is stepped to its exit
// stop, rdi is the result, and the registers are put back there. If
// hotsplice is killed at any moment of the call, the kernel detaches the
// thread; the callee finishes, returns into the same code, the getpid runs
// untraced, and the code restores the vector state (xrstor or fxrstor) and
// then every general register, rflags and rsp from the data area and jumps
// back: the thread carries on as if never borrowed. While such an orphaned
// call still runs, a later invocation is refused as Busy (retry-able): it
// would otherwise overwrite the data area, or repair away the code that runs.
//
// Without a trampoline the return address is 0: `ret` jumps there, a
// SIGSEGV whose signal-delivery-stop has rip == 0 and rsp == rsp' + 8. That
// stop, and only that one, is the return; rax holds the result. The SIGSEGV
// is suppressed (never delivered) and the registers are put back at once.
//
// What else can happen meanwhile:
//
//  - The callee faults (a synchronous SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGTRAP
//    raised by the kernel, or a SIGABRT the process sends itself, as abort()
//    does): the call fails (BadPayload) naming the signal, where it happened
//    and the fault address. The signal is suppressed and the thread's
//    registers are put back, so the process carries on as if the call had
//    never been made, except for what the callee did before it crashed.
//    Delivering the signal instead would kill the process (or run the
//    program's own handler on a state that is not the program's) for a
//    fault of code hotsplice injected; suppressing is the safer of the two.
//  - The callee does not return within the timeout (it may wait for a lock
//    that a thread held stopped owns): the thread is interrupted, its
//    registers are put back, and the call fails (Timeout). Whatever the
//    callee had done (locks taken included) stays done.
//  - Any other signal (sent by someone, or a timer) is recorded in
//    pending_signal and re-delivered when the thread is resumed, exactly as
//    RemoteSyscalls does; the callee runs on without it.
//  - The process dies (the callee calls exit(), or someone kills it):
//    TargetGone, "process N exited during the operation".
//  - The callee creates a thread: it is adopted into the ThreadGroup, and
//    runs, or is kept stopped from its first stop if the caller says so
//    (keep_new_threads_stopped, for calls made while every thread is held
//    stopped; a callee that then waits for that thread times out).
//  - While the callee runs, the group's other threads that are running are
//    looked after (a signal to deliver, a new thread): a callee that waits
//    for one of them is not blocked by hotsplice.
//
// Known gap: without a trampoline (a process whose seccomp filter refuses
// PROT_EXEC mappings), hotsplice killed while the callee runs leaves the
// thread with the call's registers; when the callee returns to address 0
// the process dies of SIGSEGV. A call abandoned because its thread does not
// stop even 10 s after the timeout's PTRACE_INTERRUPT (an uninterruptible
// sleep) is still running when the operation goes on; later remote calls of
// the same invocation do not check for it.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <chrono>
#include <functional>
#include <span>
#include <string>

#include "process/thread_group.h"
#include "support/done_flag.h"

namespace hs {

class RemoteCall {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};
  static constexpr size_t kMaxArgs = 6;  // integer arguments, in registers
  static constexpr u64 kRedZone = 128;

  // Where a call made on a thread whose stack pointer is `rsp` puts its
  // return address: rsp' above, below the red zone, so that the callee's
  // entry sees the psABI's alignment. The trampoline looks there too.
  static constexpr u64 return_slot(u64 rsp) { return ((rsp - kRedZone) & ~u64{15}) - 8; }

  // `t` must be stopped. Saves its registers and vector state.
  static Result<RemoteCall> create(ThreadGroup& group, TracedThread& t, const Process& proc);

  RemoteCall(RemoteCall&&) noexcept = default;
  RemoteCall& operator=(RemoteCall&&) = delete;
  ~RemoteCall();  // calls finish() if not done, ignoring errors

  // Calls fn(args...) (at most 6 integer/pointer arguments) and returns rax.
  template <class... Args>
  Result<u64> call(RemoteAddr fn, Args... args) {
    static_assert(sizeof...(Args) <= kMaxArgs);
    const u64 a[] = {0, static_cast<u64>(args)...};
    return call_raw(fn, std::span<const u64>(a + 1, sizeof...(Args)));
  }
  Result<u64> call_raw(RemoteAddr fn, std::span<const u64> args);

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  // Threads the callee creates stay stopped (default: they run).
  void keep_new_threads_stopped(bool keep) { keep_new_stopped_ = keep; }
  // How a code address is named in a crash message (default: hex).
  void set_describer(std::function<std::string(u64)> f) { describe_ = std::move(f); }
  pid_t tid() const { return tid_; }

  // Puts the saved registers back (again). Reports restore errors.
  Status finish();

 private:
  RemoteCall() = default;
  struct Outcome;
  Result<Outcome> run_until_return(u64 ret_sp);
  Status adopt_new_threads();
  std::vector<pid_t> known_tids_;  // threads before the call under way
  Status restore();

  ThreadGroup* group_ = nullptr;
  const Process* proc_ = nullptr;
  pid_t tid_ = 0;  // the borrowed thread (not a pointer: the thread vector may grow)
  user_regs_struct saved_{};
  std::vector<u8> saved_fp_;  // the regset below, as read
  unsigned int fp_regset_ = 0;  // NT_X86_XSTATE or NT_PRFPREG
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
  std::function<std::string(u64)> describe_;
  bool keep_new_stopped_ = false;
  DoneFlag done_;  // set by default and in a moved-from object
  __ptrace_request resume_ = PTRACE_CONT;  // or PTRACE_SYSCALL, for the call under way
  u64 returned_at_ = 0;                   // rip at the trampoline's return stop (0: no trampoline)

 public:
  // Tests only: called once the call's registers are set, just before the
  // thread is resumed into the callee.
  static inline void (*test_kill_point)() = nullptr;
};

}  // namespace hs
