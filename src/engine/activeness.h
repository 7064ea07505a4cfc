// Activeness safety: may the code change now?
//
// With every thread stopped, each thread's stack is unwound with libdw (DWARF
// CFI from .eh_frame, or .debug_frame for an object without it, of every
// mapped object), and its PC and every return address are compared with the
// ranges an operation is about to change or switch away from. A thread found
// in one makes the operation resume the process, wait and retry
// (stop_window.h).
//
// An unwind that cannot be trusted counts as unsafe, never as safe: libdw
// fails, the stack is deeper than kMaxFrames, or a frame lies in code that no
// CFI describes. libdw silently falls back to following frame pointers when
// CFI is missing or leads nowhere (a corrupt stack), which -O2 code turns into
// plausible garbage; so each step is checked here: the caller that frame k's
// CFI rules give (PC and stack pointer, computed from frame k's registers and
// the stack) must be the frame k + 1 libdw reports.
//
// Two moments of thread creation have no CFI on purpose (glibc ends the FDE of
// clone/clone3 before the system call) and are recognised exactly: the new
// thread before its first instruction (nothing on its stack; only its PC
// counts), and the creating thread right after the system call (ThreadGroup
// stops it there), unwound from the caller that the FDE's last row gives.
//
// Payload code is mapped from a memfd that holds no ELF headers, so libdw
// cannot find its unwind tables by itself. Each payload carries .eh_frame
// (gcc emits it; the loader relocates it for the payload's address, and the
// registry records where it is), and the checker hands libdw a small
// synthesised ELF file for it (unwind_elf.h), around the .eh_frame bytes
// read from the target. libdw
// then steps through payload frames like through any library's. Frames there
// are named after the payload ("payload 'fix'", "the replacement for 'hello'
// in payload 'fix'").
//
// Thread state comes from ThreadGroup (the registers read at the stop) and
// memory from /proc/PID/mem; libdw does no ptrace of its own. prepare() does
// all that can be done with the process running (reading the module list,
// opening every object and its CFI, building the payload files); check() runs
// in the stop window and reads no files (only when naming a place for an
// error message, symbol tables).
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/registry.h"
#include "process/thread_group.h"
#include "support/remote_ptr.h"

namespace hs {

struct GuardedRange {
  RemoteRange range;
  std::string what;  // "function 'hello'", "payload 'fix'"
};

struct UnsafeThread {
  pid_t tid = 0;
  RemoteAddr addr;    // the PC or return address concerned (null: unknown)
  bool is_pc = true;  // false: a return address (frame depth > 0)
  // Where addr lies: the guarded range's description, or for a payload
  // "payload 'fix'" / "the replacement for 'hello' in payload 'fix'"; for an
  // unreliable unwind, the function and object if known.
  std::string what;
  int depth = 0;
  // Non-empty when the stack cannot be unwound reliably: why, in full ("no
  // unwind information for frame #0 (pc 0x... in function 'f' of /bin/x)",
  // "it is more than 512 frames deep", ...).
  std::string unreliable;
};

class ActivenessChecker {
 public:
  static constexpr int kMaxFrames = 512;

  explicit ActivenessChecker(const Process& proc);
  ~ActivenessChecker();
  ActivenessChecker(const ActivenessChecker&) = delete;
  ActivenessChecker& operator=(const ActivenessChecker&) = delete;

  // A payload mapped in the process (any state): its frames are unwound with
  // its .eh_frame and named after it. Call before prepare().
  void add_payload(const PayloadRecord& p);

  // Reads the modules and their unwind tables and builds the payloads' ELF
  // files (no thread needs to be stopped): call before the stop window.
  // check() calls it if needed.
  Status prepare();

  // Threads of `group` must be stopped (registers read). The libdw session is
  // kept for later retries. With `checked`, the threads listed there are
  // skipped and the ones checked now are added (a stop in waves checks each
  // wave as it stops).
  Result<std::optional<UnsafeThread>> check(ThreadGroup& group, std::span<const GuardedRange> ranges,
                                            std::vector<pid_t>* checked = nullptr);

  struct PayloadCode {
    std::string name;
    RemoteRange range;                // its whole mapping
    u64 eh_frame_offset = 0, eh_frame_size = 0;
    std::vector<std::pair<RemoteRange, std::string>> replacements;  // new code, function replaced
    Bytes unwind_elf;                 // the ELF file handed to libdw (built by prepare)
  };

 private:
  const Process& proc_;
  std::vector<std::unique_ptr<PayloadCode>> payloads_;
  struct Dw;
  std::unique_ptr<Dw> dw_;
};

// "thread 12 is executing in function 'hello' (pc 0x..., frame #0)",
// "thread 12 will return into payload 'fix' (return address 0x..., frame #2)",
// "the stack of thread 12 cannot be unwound reliably: no unwind information
// for frame #0 (pc 0x... in function 'f' of /usr/bin/x)".
std::string describe_unsafe(const UnsafeThread& u);

}  // namespace hs
