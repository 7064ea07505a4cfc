// Running system calls inside a stopped thread of the target.
//
// How one call goes:
//
//   trampoline data area := saved (normalised) registers (one write)
//   registers := saved (normalised), with
//     rip = the trampoline's `syscall` (or, without a trampoline, a
//           `syscall` instruction (0f 05) already in the target)
//     rax = number, rdi rsi rdx r10 r8 r9 = arguments, orig_rax = -1
//   PTRACE_SYSCALL -> syscall-entry-stop
//   PTRACE_SYSCALL -> syscall-exit-stop; rax is the result
//
// orig_rax = -1 tells the kernel that the thread is not inside a system call
// at the point we resume it, so its restart logic (which looks at orig_rax
// and rax) leaves our registers alone. After each call the thread's own
// (normalised) registers are put back straight away, so that whenever
// hotsplice is killed between calls, the kernel detaches a thread that
// carries on correctly; the thread waits at that syscall-exit-stop.
//
// Normalising. A thread interrupted in a blocking call (read on a pipe,
// nanosleep) stops with orig_rax = the call and rax = -ERESTART*; if it
// were simply resumed, the kernel would rewind it to redo the call. Once we
// have run our own calls that information would be lost, so it is turned
// into plain register state first: rip -= 2 (back onto its `syscall`), rax
// = the call's number (or restart_syscall, which continues e.g. a nanosleep
// with its original deadline from the kernel's restart block), orig_rax = -1.
// Resumed from those registers at any later stop, the thread re-executes its
// own call exactly once, as the kernel would have.
#include "process/remote_syscall.h"

#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cstring>

#include "arch/x86_64.h"
#include "process/trampoline.h"

namespace hs {

namespace {

// Kernel-internal restart codes (include/linux/errno.h), seen by tracers.
constexpr long kERESTARTSYS = 512;
constexpr long kERESTARTNOINTR = 513;
constexpr long kERESTARTNOHAND = 514;
constexpr long kERESTART_RESTARTBLOCK = 516;

void normalise(user_regs_struct& r) {
  const long orig = static_cast<long>(r.orig_rax);
  const long rax = static_cast<long>(r.rax);
  if (orig >= 0) {
    if (rax == -kERESTARTSYS || rax == -kERESTARTNOINTR || rax == -kERESTARTNOHAND) {
      r.rax = r.orig_rax;
      r.rip -= sizeof x86_64::kSyscall;
    } else if (rax == -kERESTART_RESTARTBLOCK) {
      r.rax = SYS_restart_syscall;
      r.rip -= sizeof x86_64::kSyscall;
    }
  }
  r.orig_rax = static_cast<unsigned long long>(-1);
}

// A raw system call result in [-4095, -1] is an errno (MAX_ERRNO,
// include/linux/err.h); anything else is a value, an address included.
constexpr long kMaxErrno = 4095;

bool is_error_result(long r) { return r < 0 && r >= -kMaxErrno; }

}  // namespace

void normalise_syscall_restart(user_regs_struct& r) { normalise(r); }

Result<RemoteSyscalls> RemoteSyscalls::create(ThreadGroup& group, TracedThread& t, const Process& proc) {
  if (!t.stopped)
    return fail(ErrorKind::Internal, "thread {} of PID {} must be stopped to run system calls", t.tid, group.pid());
  HS_CHECK(group.refresh_regs(t));
  RecoveryTrampoline& trampoline = group.trampoline();

  RemoteSyscalls rs;
  rs.group_ = &group;
  rs.proc_ = &proc;
  rs.tid_ = t.tid;
  rs.syscall_insn_ = HS_TRY(trampoline.fallback_syscall(proc));
  rs.saved_ = t.regs;
  normalise(rs.saved_);
  rs.done_ = false;
  // It may have installed a filter since it was last borrowed.
  group.seccomp().borrowed(t.tid);

  HS_CHECK(trampoline.look_for(group, proc, t.tid));
  // A thread stopped inside the trampoline is one a killed hotsplice left
  // there, on its way back to its own registers: they are in the data area
  // (not yet overwritten: every call writes it first).
  if (trampoline.in_code(rs.saved_.rip)) HS_CHECK(trampoline.take_back(group, proc, t, rs.saved_));
  HS_CHECK(trampoline.ensure(rs, t, proc));
  rs.trampoline_ = trampoline.base();
  return rs;
}

RemoteSyscalls::~RemoteSyscalls() {
  if (!done_) (void)finish();
}

Result<long> RemoteSyscalls::syscall_raw(long nr, const unsigned long (&args)[6]) {
  if (done_) return fail(ErrorKind::Internal, "remote system calls on thread {} are finished", tid_);
  TracedThread* t = group_->find(tid_);
  if (!t || !t->stopped)
    return fail(ErrorKind::TargetGone, "process {} exited during the operation", group_->pid());

  // What the thread's seccomp filters will see: this call, made from the
  // `syscall` at `rip` (the kernel reports the address after it). A filter
  // may test that address: if it would refuse the call from the trampoline
  // but not from the target's own `syscall`, that one is used (without the
  // trampoline's recovery for this call).
  SyscallProbe probe{.nr = static_cast<int>(nr), .ip = 0, .args = {}};
  for (size_t i = 0; i < 6; i++) probe.args[i] = args[i];
  auto verdict_at = [&](u64 at) {
    probe.ip = at + sizeof x86_64::kSyscall;
    return group_->seccomp().check(group_->pid(), tid_, probe);
  };
  bool use_trampoline = !trampoline_.is_null();
  u64 rip = use_trampoline ? trampoline_.value() + RecoveryTrampoline::kSyscall : syscall_insn_.value();
  auto refused = verdict_at(rip);
  if (use_trampoline && (!refused || *refused != 0)) {
    auto own = verdict_at(syscall_insn_.value());
    if (own && *own == 0) {
      use_trampoline = false;
      rip = syscall_insn_.value();
      refused = std::move(own);
    }
  }
  refused_ = false;
  if (!refused) return std::unexpected(std::move(refused.error()));
  if (*refused != 0) {
    refused_ = true;
    return -static_cast<long>(*refused);
  }

  user_regs_struct r = saved_;
  r.rip = rip;
  if (use_trampoline) {
    // The thread's own registers first, for the recovery tail; then the
    // `syscall` that the tail follows.
    HS_CHECK(group_->trampoline().write_state(*group_, *proc_, tid_, saved_));
  }
  r.rax = static_cast<unsigned long long>(nr);
  r.orig_rax = static_cast<unsigned long long>(-1);
  r.rdi = args[0];
  r.rsi = args[1];
  r.rdx = args[2];
  r.r10 = args[3];
  r.r8 = args[4];
  r.r9 = args[5];
  HS_CHECK(group_->set_regs(*t, r));
  if (test_kill_point) test_kill_point(nr, 0);

  HS_CHECK(group_->syscall_step(*t));  // entry
  t = group_->find(tid_);
  if (!t) return fail(ErrorKind::TargetGone, "process {} exited during the operation", group_->pid());
  __ptrace_syscall_info info{};
  long n = ::ptrace(PTRACE_GET_SYSCALL_INFO, tid_, reinterpret_cast<void*>(sizeof info), &info);
  if (n > 0 && (info.op != PTRACE_SYSCALL_INFO_ENTRY || info.entry.nr != static_cast<u64>(nr)))
    return fail(ErrorKind::Internal, "thread {} of PID {}: expected entry to system call {} at {}, got stop kind {}",
                tid_, group_->pid(), nr, RemoteAddr(r.rip), static_cast<int>(info.op));
  if (test_kill_point) test_kill_point(nr, 1);

  HS_CHECK(group_->syscall_step(*t));  // exit
  t = group_->find(tid_);
  if (!t) return fail(ErrorKind::TargetGone, "process {} exited during the operation", group_->pid());
  const long result = static_cast<long>(t->regs.rax);
  // The thread's own registers go back at once, not only in finish(): if
  // hotsplice dies between two calls, the kernel detaches the thread, and it
  // must then carry on with its own state (redoing its interrupted call),
  // not with ours.
  HS_CHECK(group_->set_regs(*t, saved_));
  return result;
}

Error RemoteSyscalls::failure(long result, std::string_view what) const {
  const int err = static_cast<int>(-result);
  std::string by;
  if (refused_) {
    const char* name = strerrorname_np(err);
    by = fmt::format(" ({} from PID {}'s seccomp filter; the call was not made)", name ? name : "errno",
                     group_->pid());
  }
  return Error(kind_for_errno(err, ErrorKind::BadTarget), fmt::format("{}: {}{}", what, errno_text(err), by), err);
}

Result<RemoteAddr> RemoteSyscalls::mmap(RemoteAddr hint, u64 len, int prot, int flags, int fd, u64 off) {
  long r = HS_TRY(syscall(SYS_mmap, hint.value(), len, prot, flags, fd, off));
  if (is_error_result(r))
    return std::unexpected(failure(r, fmt::format("mmap of {:#x} bytes at {} in PID {} failed", len, hint, group_->pid())));
  return RemoteAddr(static_cast<u64>(r));
}

Status RemoteSyscalls::munmap(RemoteAddr addr, u64 len) {
  long r = HS_TRY(syscall(SYS_munmap, addr.value(), len));
  if (is_error_result(r))
    return std::unexpected(
        failure(r, fmt::format("munmap of {:#x} bytes at {} in PID {} failed", len, addr, group_->pid())));
  return {};
}

Status RemoteSyscalls::mprotect(RemoteAddr addr, u64 len, int prot) {
  long r = HS_TRY(syscall(SYS_mprotect, addr.value(), len, prot));
  if (is_error_result(r))
    return std::unexpected(failure(
        r, fmt::format("mprotect of {:#x} bytes at {} to {:#x} in PID {} failed", len, addr, prot, group_->pid())));
  return {};
}

Status RemoteSyscalls::finish() {
  if (done_) return {};
  done_ = true;
  TracedThread* t = group_->find(tid_);
  // Not stopped any more: it was killed while we held it.
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "process {} exited during the operation", group_->pid());
  return group_->set_regs(*t, saved_);
}

}  // namespace hs
