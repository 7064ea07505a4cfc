// What a target's seccomp filters would do with one system call, found out
// before hotsplice makes that call inside the process.
//
// A thread's filters are classic BPF programs over `struct seccomp_data`
// (number, architecture, instruction pointer, six arguments). The kernel runs
// every filter the thread carries and takes the most restrictive answer; a
// filter shaped like systemd's SystemCallFilter= answers "kill the process"
// for anything it does not list. hotsplice reads the programs of a stopped
// tracee with PTRACE_SECCOMP_GET_FILTER and runs them here on the exact call
// it is about to make, so that a call that would kill the target is never
// made. The programs come from the target and are treated as untrusted input:
// every jump, load and scratch slot is checked, and a program that could not
// have passed the kernel's own check is answered as "unknown", which callers
// must treat as fatal. SeccompGuard (seccomp_guard.h) is how the remote
// calls use it.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/types.h>

#include <array>
#include <span>
#include <string>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

using SeccompProgram = std::vector<sock_filter>;

// One system call as the filters see it.
struct SyscallProbe {
  int nr = 0;
  u64 ip = 0;  // the address after the `syscall` instruction
  std::array<u64, 6> args{};
};

enum class SeccompAction : u8 {
  Allow,        // SECCOMP_RET_ALLOW
  Log,          // allowed, and logged
  Trace,        // a tracer is asked; ours does not ask for it, so ENOSYS
  UserNotif,    // a supervisor process decides (may block)
  Errno,        // fails with the errno in `data`
  Trap,         // SIGSYS
  KillThread,   // the thread dies
  KillProcess,  // the process dies
  Unknown,      // the program cannot be evaluated (see `problem`)
};

struct SeccompVerdict {
  SeccompAction action = SeccompAction::Allow;
  u16 data = 0;       // SECCOMP_RET_DATA: the errno for Errno
  size_t filter = 0;  // index of the program that decided (0: the oldest)
  std::string problem;  // for Unknown: what is wrong with the program

  // True when making the call could leave the target dead, signalled,
  // blocked on a supervisor, or in a state we cannot predict.
  bool harmful() const;
  // True when the call is not executed but simply fails (Errno, Trace).
  bool fails_quietly() const {
    return action == SeccompAction::Errno || action == SeccompAction::Trace;
  }
};

// Runs one program on `data`, as the kernel would.
SeccompVerdict run_seccomp_program(std::span<const sock_filter> prog, const seccomp_data& data);

// Runs every program (oldest first, as read_seccomp_filters returns them);
// the most restrictive answer wins (the kernel's order: kill process, kill
// thread, trap, errno, user notification, trace, log, allow), and between
// equal actions the newest program's (its errno, say). An empty list allows
// everything.
SeccompVerdict evaluate_seccomp(std::span<const SeccompProgram> progs, const SyscallProbe& call);

// "kill the process", "fail with errno EPERM", "allow", ...
std::string describe(const SeccompVerdict& v);

// The filters of thread `tid`, oldest first (PTRACE_SECCOMP_GET_FILTER's
// index 0 is the first filter installed). The thread must be in a ptrace
// stop of ours. Needs CAP_SYS_ADMIN; a kernel without
// PTRACE_SECCOMP_GET_FILTER gives Permission / BadTarget errors that name it.
Result<std::vector<SeccompProgram>> read_seccomp_filters(pid_t tid);

// Seccomp mode of a thread from /proc/PID/task/TID/status: 0 none,
// 1 strict, 2 filter.
Result<int> seccomp_mode(pid_t pid, pid_t tid);

}  // namespace hs
