// The check made before every system call hotsplice makes inside a target:
// what would the borrowed thread's seccomp filters do with this exact call?
//
// A thread's seccomp mode is read from /proc once each time it is borrowed
// (it can only change while the thread runs) until it is found in filter
// mode, which is for life; then its programs are read with
// PTRACE_SECCOMP_GET_FILTER once per session and kept, and a later
// borrowing only asks whether a newer filter has appeared (one ptrace
// request). Each call is then evaluated on its number, its six arguments and
// the instruction pointer the kernel will see (the address after the
// `syscall` instruction actually used), so a filter that tests any of them
// is answered as the kernel would answer. A thread without filters costs one
// small /proc read per borrowing and nothing per call.
//
// check() turns the answer into what the caller does:
//  - allowed (allow, log): make the call;
//  - fails quietly (errno, trace without a seccomp tracer): do not make it,
//    the errno is the call's result (`refused_errno`);
//  - anything else (kill process or thread, SIGSYS, a user-space supervisor,
//    a program that cannot be evaluated), strict mode (everything but
//    read/write/exit/rt_sigreturn kills), or filters that cannot be read
//    (no CAP_SYS_ADMIN, a kernel without PTRACE_SECCOMP_GET_FILTER): an
//    error naming the PID, the call and the verdict; the call is not made.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "process/seccomp.h"
#include "support/error.h"

namespace hs {

// "memfd_create(0x7ffd1000, 0x11)": a call as error messages name it.
std::string describe_call(const SyscallProbe& call);

class SeccompGuard {
 public:
  // Thread `tid` is borrowed: its mode is read again at its next check (it
  // may have installed a filter while it ran).
  void borrowed(pid_t tid);

  // What to do with `call` on thread `tid` of process `pid` (stopped by us).
  // A value: 0 to make the call, or the positive errno it fails with
  // without being made. An error: the call must not be made.
  Result<int> check(pid_t pid, pid_t tid, const SyscallProbe& call);

  // The verdict alone (Allow for a thread without filters); an error when
  // the filters cannot be read.
  Result<SeccompVerdict> verdict(pid_t pid, pid_t tid, const SyscallProbe& call);

  // Drops what is known about thread `tid` (it exited).
  void forget(pid_t tid) { threads_.erase(tid); }

 private:
  struct Thread {
    bool fresh = false;  // mode read since the thread was last borrowed
    int mode = 0;        // 0 none, 1 strict, 2 filter
    std::vector<SeccompProgram> programs;  // mode 2, oldest first
    std::optional<Error> unreadable;       // mode 2 and the programs could not be read
  };
  Status refresh(pid_t pid, pid_t tid, Thread& th);

  std::map<pid_t, Thread> threads_;
};

}  // namespace hs
