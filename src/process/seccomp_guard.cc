// The seccomp check before each remote system call (see seccomp_guard.h):
// the per-session cache of each thread's filters and the refusal messages.
#include "process/seccomp_guard.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace hs {

namespace {

struct CallName {
  long nr;
  const char* name;
  int args;
};

// The calls hotsplice makes in a target, and a few it could.
constexpr CallName kCalls[] = {
    {SYS_read, "read", 3},         {SYS_write, "write", 3},
    {SYS_close, "close", 1},       {SYS_mmap, "mmap", 6},
    {SYS_mprotect, "mprotect", 3}, {SYS_munmap, "munmap", 2},
    {SYS_getpid, "getpid", 0},     {SYS_ftruncate, "ftruncate", 2},
    {SYS_prctl, "prctl", 5},       {SYS_memfd_create, "memfd_create", 2},
    {SYS_madvise, "madvise", 3},   {SYS_rt_sigreturn, "rt_sigreturn", 0},
    {SYS_exit, "exit", 1},
};

std::string thread_part(pid_t pid, pid_t tid) {
  return tid == pid ? fmt::format("PID {}", pid) : fmt::format("PID {} (thread {})", pid, tid);
}

std::string arg_text(u64 v) { return v < 10 ? fmt::format("{}", v) : fmt::format("{:#x}", v); }

}  // namespace

std::string describe_call(const SyscallProbe& call) {
  const CallName* known = nullptr;
  for (const auto& c : kCalls)
    if (c.nr == call.nr) known = &c;
  std::string out = known ? known->name : fmt::format("system call {}", call.nr);
  const int n = known ? known->args : 6;
  out += '(';
  for (int i = 0; i < n; i++) {
    if (i) out += ", ";
    out += arg_text(call.args[static_cast<size_t>(i)]);
  }
  out += ')';
  return out;
}

void SeccompGuard::borrowed(pid_t tid) {
  auto it = threads_.find(tid);
  if (it != threads_.end()) it->second.fresh = false;
}

Status SeccompGuard::refresh(pid_t pid, pid_t tid, Thread& th) {
  if (th.mode == 2 && !th.unreadable) {
    // Filter mode is for life, and filters are only ever added, as the
    // newest: index `size` answers ENOENT while there is none newer than
    // what we have (no /proc read needed).
    errno = 0;
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(th.programs.size()), nullptr);
    if (n < 0 && errno == ENOENT) {
      th.fresh = true;
      return {};
    }
  }
  const int mode = HS_TRY(seccomp_mode(pid, tid));
  th.mode = mode;
  th.programs.clear();
  th.unreadable.reset();
  if (mode == 2) {
    auto progs = read_seccomp_filters(tid);
    if (progs)
      th.programs = std::move(*progs);
    else
      th.unreadable = std::move(progs.error());
  }
  th.fresh = true;
  return {};
}

Result<SeccompVerdict> SeccompGuard::verdict(pid_t pid, pid_t tid, const SyscallProbe& call) {
  Thread& th = threads_[tid];
  if (!th.fresh) HS_CHECK(refresh(pid, tid, th));
  SeccompVerdict v;
  switch (th.mode) {
    case 0: return v;
    case 1:
      // SECCOMP_MODE_STRICT: the thread dies (SIGKILL) on anything else.
      if (call.nr != SYS_read && call.nr != SYS_write && call.nr != SYS_exit && call.nr != SYS_rt_sigreturn)
        v.action = SeccompAction::KillThread;
      return v;
    case 2:
      if (th.unreadable) {
        Error e = *th.unreadable;
        return std::unexpected(std::move(e));
      }
      return evaluate_seccomp(th.programs, call);
    default: return fail(ErrorKind::BadTarget, "{} is in an unknown seccomp mode {}", thread_part(pid, tid), th.mode);
  }
}

Result<int> SeccompGuard::check(pid_t pid, pid_t tid, const SyscallProbe& call) {
  auto v = verdict(pid, tid, call);
  if (!v) {
    Error e = std::move(v.error());
    if (e.kind() == ErrorKind::TargetGone) return std::unexpected(std::move(e));
    return fail(ErrorKind::Permission,
                "{} has seccomp filters that hotsplice cannot read ({}); {} was not made rather than risk the "
                "process",
                thread_part(pid, tid), e.message(), describe_call(call));
  }
  const std::string who = thread_part(pid, tid);
  const std::string what = describe_call(call);
  if (v->action == SeccompAction::Trace) return ENOSYS;  // no PTRACE_O_TRACESECCOMP: the kernel fails it so
  // The kernel caps the errno at MAX_ERRNO; 0 would make the call "succeed"
  // with 0 without being made, which no caller could take for what it asked.
  if (v->action == SeccompAction::Errno && v->data != 0) return std::min<int>(v->data, 4095);
  if (v->action == SeccompAction::Errno)
    return fail(ErrorKind::BadTarget, "{}: its seccomp filter would skip {} and return 0; the call was not made", who,
                what);
  if (!v->harmful()) return 0;
  if (v->action == SeccompAction::Unknown)
    return fail(ErrorKind::BadTarget, "{}: its seccomp filter {} cannot be evaluated on {} ({}); the call was not made",
                who, v->filter, what, v->problem);
  auto th = threads_.find(tid);
  if (th != threads_.end() && th->second.mode == 1)
    return fail(ErrorKind::BadTarget,
                "{}: it is in seccomp strict mode, which would kill the thread on {}; the call was not made", who,
                what);
  return fail(ErrorKind::BadTarget, "{}: its seccomp filter would {} on {}; the call was not made", who, describe(*v),
              what);
}

}  // namespace hs
