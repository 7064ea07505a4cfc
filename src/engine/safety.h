// Activeness safety: may the code change now?
//
// With every thread stopped, each thread's stack is unwound with libdw (DWARF
// CFI from .eh_frame / .debug_frame of every mapped object, read through
// ptrace), and its PC and every return address are compared with the ranges
// an operation is about to change or switch away from. A thread found in one
// makes the operation resume the process, wait and retry (Session::execute).
// An unwind that cannot be trusted (libdw fails, the stack is deeper than
// kMaxFrames, or a frame lies in code libdw knows no module for, such as
// payload code) counts as unsafe, never as safe.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "process/thread_group.h"
#include "support/remote_ptr.h"

namespace hs {

struct GuardedRange {
  RemoteRange range;
  std::string what;  // "function 'hello'", "payload 'fix'"
};

struct UnsafeThread {
  pid_t tid = 0;
  RemoteAddr addr;   // the PC or return address found in a guarded range
  bool is_pc = true; // false: a return address (frame depth > 0)
  std::string what;  // the guarded range's description, or why the unwind is unreliable
  int depth = 0;
};

class ActivenessChecker {
 public:
  static constexpr int kMaxFrames = 512;

  explicit ActivenessChecker(const Process& proc);
  ~ActivenessChecker();
  ActivenessChecker(const ActivenessChecker&) = delete;
  ActivenessChecker& operator=(const ActivenessChecker&) = delete;

  // Reads the modules and their unwind tables (no thread needs to be
  // stopped): call before the stop window. check() calls it if needed.
  Status prepare();

  // Threads of `group` must be stopped (registers read). The libdw session is
  // kept for later retries.
  Result<std::optional<UnsafeThread>> check(ThreadGroup& group, std::span<const GuardedRange> ranges);

 private:
  const Process& proc_;
  struct Dw;
  std::unique_ptr<Dw> dw_;
};

std::string describe_unsafe(const UnsafeThread& u);

}  // namespace hs
