// The recovery trampoline: where a borrowed thread runs the system calls and
// function calls hotsplice makes in it, so that a tool killed in the middle
// leaves a thread that finds its own way back.
//
// Once per process a 16 KiB executable mapping of a memfd named
// "hotsplice-trampoline" is created (found again by later invocations in
// /proc/PID/maps; its code is written through /proc/PID/mem, so it is never
// writable). It holds `syscall` followed by a recovery tail, RemoteCall's two
// return paths, and a data area with the borrowed thread's saved (normalised)
// registers, written before every call (and, for a RemoteCall, its vector
// state image). Each remote system call runs the trampoline's `syscall`, not
// one of libc's: if hotsplice is killed while the thread carries our
// registers, the kernel detaches it, the syscall completes and the tail
// restores every general register, rflags and rsp from the data area and
// jumps to the saved rip, so the thread carries on (redoing its own
// interrupted call) as if never borrowed.
//
// The calls that create the trampoline itself (memfd_create, ftruncate, mmap,
// close: once per process) use a `syscall` instruction found in the target's
// code (the vDSO's, else libc's), with the old microsecond window. If the
// trampoline cannot be created (e.g. a seccomp filter refusing PROT_EXEC),
// every call uses that instruction; so does a call that the thread's seccomp
// filter would refuse from the trampoline's address but not from that one
// (remote_syscall.h).
//
// What an earlier, killed invocation may have left is settled before
// anything writes the data area (settle_previous_invocation in
// trampoline.cc): a thread stopped inside the trampoline gets its own state
// back; a thread still running a function that invocation called makes this
// one Busy.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <string_view>

#include "support/bytes.h"
#include "support/error.h"
#include "support/remote_ptr.h"

namespace hs {

class Process;
class RemoteSyscalls;
class ThreadGroup;
struct TracedThread;

class RecoveryTrampoline {
 public:
  // Layout of the mapping.
  static constexpr u64 kSize = 0x4000;
  static constexpr u64 kSyscall = 0;           // `syscall`, then the recovery tail
  static constexpr u64 kReturnXsave = 0x200;   // RemoteCall's return (x86_64::make_call_return)
  static constexpr u64 kReturnFxsave = 0x280;  // the same, with fxrstor
  static constexpr u64 kContext = 0x800;       // x86_64::RecoveryContext
  static constexpr u64 kVector = 0x1000;       // RemoteCall: the thread's XSAVE/FXSAVE image
  static constexpr u64 kVectorRoom = kSize - kVector;
  static constexpr std::string_view kName = "hotsplice-trampoline";

  // Where the trampoline is mapped (null: none, or not looked for yet).
  RemoteAddr base() const { return base_; }

  // A `syscall` instruction already in the target's code, found once: what
  // a remote system call runs without a trampoline.
  Result<RemoteAddr> fallback_syscall(const Process& proc);

  // Until the trampoline has been settled for this group: finds one an
  // earlier invocation made and settles what that invocation left (Busy if
  // one of its calls still runs). `borrowed` is the thread about to be used.
  Status look_for(ThreadGroup& group, const Process& proc, pid_t borrowed);

  // Until the trampoline has been settled for this group: creates it with
  // `rs` (on thread `t`) if none was found. A target that died is an error;
  // any other failure leaves the group without a trampoline.
  Status ensure(RemoteSyscalls& rs, const TracedThread& t, const Process& proc);

  // True if `rip` is in the trampoline's code (a thread a killed hotsplice
  // left on its way back).
  bool in_code(u64 rip) const;

  // Thread `t`, stopped inside the trampoline, was left there by a killed
  // hotsplice: its own registers (and, if it had not got past restoring
  // them, its vector state) are in the data area. The vector state is put
  // back at once; `regs` receives the registers.
  Status take_back(ThreadGroup& group, const Process& proc, TracedThread& t, user_regs_struct& regs) const;

  // Writes the registers the recovery tail puts back for thread `tid` (and,
  // for a RemoteCall, its vector state image) into the data area. A target
  // killed meanwhile is reported as TargetGone.
  Status write_state(ThreadGroup& group, const Process& proc, pid_t tid, const user_regs_struct& regs,
                     ByteView vector = {}) const;

 private:
  Status create(RemoteSyscalls& rs, const TracedThread& t, const Process& proc);
  Status settle_previous_invocation(ThreadGroup& group, const Process& proc, pid_t borrowed) const;

  RemoteAddr base_;
  RemoteAddr fallback_syscall_;
  bool settled_ = false;  // found or created (or given up on), once per group
};

}  // namespace hs
