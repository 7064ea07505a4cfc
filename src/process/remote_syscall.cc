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

#include <sys/mman.h>
#include <sys/ptrace.h>
#include <elf.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "arch/x86_64.h"
#include "support/file.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace hs {

namespace {

// Kernel-internal restart codes (include/linux/errno.h), seen by tracers.
constexpr long kERESTARTSYS = 512;
constexpr long kERESTARTNOINTR = 513;
constexpr long kERESTARTNOHAND = 514;
constexpr long kERESTART_RESTARTBLOCK = 516;

constexpr u8 kSyscallInsn[] = {
    0x0f, 0x05,  // syscall
};

void normalise(user_regs_struct& r) {
  const long orig = static_cast<long>(r.orig_rax);
  const long rax = static_cast<long>(r.rax);
  if (orig >= 0) {
    if (rax == -kERESTARTSYS || rax == -kERESTARTNOINTR || rax == -kERESTARTNOHAND) {
      r.rax = r.orig_rax;
      r.rip -= sizeof kSyscallInsn;
    } else if (rax == -kERESTART_RESTARTBLOCK) {
      r.rax = SYS_restart_syscall;
      r.rip -= sizeof kSyscallInsn;
    }
  }
  r.orig_rax = static_cast<unsigned long long>(-1);
}

bool is_error_result(long r) { return r < 0 && r > -4096; }

bool is_libc(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string_view base = std::string_view(path).substr(slash == std::string::npos ? 0 : slash + 1);
  return base.starts_with("libc.so") || base.starts_with("libc-");
}

// The first `0f 05` in a mapping, read in chunks (a pair may straddle two).
Result<std::optional<RemoteAddr>> scan_for_syscall(const Process& proc, const MapEntry& m) {
  constexpr size_t kChunk = 64 * 1024;
  u8 prev = 0;
  for (u64 off = 0; off < m.range.size(); off += kChunk) {
    size_t len = static_cast<size_t>(std::min<u64>(kChunk, m.range.size() - off));
    auto bytes = proc.read(m.range.begin + static_cast<i64>(off), len);
    if (!bytes) {
      if (bytes.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(bytes.error()));
      return std::optional<RemoteAddr>();  // unreadable: try another mapping
    }
    if (off > 0 && prev == kSyscallInsn[0] && !bytes->empty() && (*bytes)[0] == kSyscallInsn[1])
      return std::optional<RemoteAddr>(m.range.begin + static_cast<i64>(off - 1));
    auto it = std::search(bytes->begin(), bytes->end(), std::begin(kSyscallInsn), std::end(kSyscallInsn));
    if (it != bytes->end()) return std::optional<RemoteAddr>(m.range.begin + static_cast<i64>(off + (it - bytes->begin())));
    if (!bytes->empty()) prev = bytes->back();
  }
  return std::optional<RemoteAddr>();
}

// A `syscall` instruction in an executable mapping: the vDSO's first (two
// pages to read), then libc's, then any other file-backed one.
Result<RemoteAddr> find_syscall_insn(const Process& proc) {
  auto maps = HS_TRY(proc.maps());
  auto exec = [](const MapEntry& m) { return (m.prot & PROT_EXEC) && (m.prot & PROT_READ); };
  std::vector<const MapEntry*> order;
  for (const auto& m : maps)
    if (exec(m) && m.path == "[vdso]") order.push_back(&m);
  for (const auto& m : maps)
    if (exec(m) && is_libc(m.path)) order.push_back(&m);
  for (const auto& m : maps)
    if (exec(m) && m.path != "[vdso]" && m.path != "[vsyscall]" && !is_libc(m.path)) order.push_back(&m);
  for (const MapEntry* m : order) {
    auto at = HS_TRY(scan_for_syscall(proc, *m));
    if (at) return *at;
  }
  return fail(ErrorKind::BadTarget, "no syscall instruction found in the executable mappings of PID {}", proc.pid());
}

// ---- the recovery trampoline ----------------------------------------------

bool is_trampoline_path(std::string_view path) {
  if (!path.starts_with("/memfd:")) return false;
  path.remove_prefix(7);
  if (path.ends_with(" (deleted)")) path.remove_suffix(10);
  return path == RemoteSyscalls::kTrampolineName;
}

// The code of a trampoline mapped at `base`: the `syscall` every remote
// system call runs, then the tail that runs only if hotsplice died
// meanwhile; RemoteCall's two return paths (xrstor, fxrstor), which end in
// that tail too. Gaps are int3.
Bytes trampoline_code(RemoteAddr base) {
  using RS = RemoteSyscalls;
  const RemoteAddr tail = base + sizeof kSyscallInsn;
  const RemoteAddr vector = base + static_cast<i64>(RS::kTrampolineVector);
  Bytes code(std::begin(kSyscallInsn), std::end(kSyscallInsn));  // syscall
  Bytes part = x86_64::make_recovery_tail(tail, base + static_cast<i64>(RS::kTrampolineContext));
  code.insert(code.end(), part.begin(), part.end());
  for (u64 at : {RS::kTrampolineReturnXsave, RS::kTrampolineReturnFxsave}) {
    code.resize(at, 0xcc);
    part = x86_64::make_call_return(base + static_cast<i64>(at), vector, at == RS::kTrampolineReturnXsave, tail);
    code.insert(code.end(), part.begin(), part.end());
  }
  return code;
}

x86_64::RecoveryContext to_context(const user_regs_struct& r, pid_t tid, u64 vector_bytes) {
  return {.rax = r.rax, .rbx = r.rbx, .rcx = r.rcx, .rdx = r.rdx, .rsi = r.rsi, .rdi = r.rdi, .rbp = r.rbp,
          .r8 = r.r8, .r9 = r.r9, .r10 = r.r10, .r11 = r.r11, .r12 = r.r12, .r13 = r.r13, .r14 = r.r14,
          .r15 = r.r15, .rsp = r.rsp, .rip = r.rip, .rflags = r.eflags, .tid = static_cast<u64>(tid),
          .vector_bytes = vector_bytes};
}

void from_context(user_regs_struct& r, const x86_64::RecoveryContext& c) {
  r.rax = c.rax, r.rbx = c.rbx, r.rcx = c.rcx, r.rdx = c.rdx, r.rsi = c.rsi, r.rdi = c.rdi, r.rbp = c.rbp;
  r.r8 = c.r8, r.r9 = c.r9, r.r10 = c.r10, r.r11 = c.r11, r.r12 = c.r12, r.r13 = c.r13, r.r14 = c.r14;
  r.r15 = c.r15, r.rsp = c.rsp, r.rip = c.rip, r.eflags = c.rflags;
  r.orig_rax = static_cast<unsigned long long>(-1);
}

// Where RemoteCall put the return address for a call made on registers
// `r` (see remote_call.h): below the red zone, so that the callee's entry
// sees the psABI's alignment.
u64 call_return_slot(const x86_64::RecoveryContext& c) { return ((c.rsp - 128) & ~u64{15}) - 8; }

// A trampoline an earlier invocation created: the named mapping whose code
// is exactly ours (another version's is ignored; a new one is made).
Result<RemoteAddr> find_trampoline(const Process& proc) {
  auto maps = HS_TRY(proc.maps());
  for (const auto& m : maps) {
    if (!is_trampoline_path(m.path) || m.range.size() != RemoteSyscalls::kTrampolineSize || !(m.prot & PROT_EXEC))
      continue;
    Bytes want = trampoline_code(m.range.begin);
    auto have = proc.read(m.range.begin, want.size());
    if (!have) {
      if (have.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(have.error()));
      continue;
    }
    if (*have == want) return m.range.begin;
  }
  return RemoteAddr();
}

bool in_trampoline_code(RemoteAddr tr, u64 rip) {
  return !tr.is_null() && rip >= tr.value() && rip < tr.value() + RemoteSyscalls::kTrampolineContext;
}

// The stack pointer of a running thread that is blocked in the kernel
// (/proc/PID/task/TID/syscall ends with "sp pc"); nullopt while it runs in
// user space.
std::optional<u64> blocked_sp(pid_t pid, pid_t tid) {
  auto text = read_whole_file(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  if (!text) return std::nullopt;
  std::vector<std::string_view> words;
  std::string_view rest(reinterpret_cast<const char*>(text->data()), text->size());
  while (!rest.empty()) {
    size_t sp = rest.find_first_of(" \n");
    if (sp != 0) words.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  if (words.size() < 3 || words[0] == "running") return std::nullopt;
  std::string_view w = words[words.size() - 2];
  if (w.starts_with("0x")) w.remove_prefix(2);
  u64 v = 0;
  auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v, 16);
  if (ec != std::errc() || end != w.data() + w.size()) return std::nullopt;
  return v;
}

}  // namespace

void normalise_syscall_restart(user_regs_struct& r) { normalise(r); }

Result<RemoteSyscalls> RemoteSyscalls::create(ThreadGroup& group, TracedThread& t, const Process& proc) {
  if (!t.stopped)
    return fail(ErrorKind::Internal, "thread {} of PID {} must be stopped to run system calls", t.tid, group.pid());
  HS_CHECK(group.refresh_regs(t));
  if (group.syscall_insn_.is_null()) group.syscall_insn_ = HS_TRY(find_syscall_insn(proc));

  RemoteSyscalls rs;
  rs.group_ = &group;
  rs.proc_ = &proc;
  rs.tid_ = t.tid;
  rs.syscall_insn_ = group.syscall_insn_;
  rs.saved_ = t.regs;
  normalise(rs.saved_);
  rs.done_ = false;

  if (!group.trampoline_tried_) {
    group.trampoline_ = HS_TRY(find_trampoline(proc));
    if (!group.trampoline_.is_null()) HS_CHECK(settle_previous_invocation(group, proc, t.tid));
  }
  // A thread stopped inside the trampoline is one a killed hotsplice left
  // there, on its way back to its own registers: they are in the data area
  // (not yet overwritten: every call writes it first).
  const RemoteAddr tr = group.trampoline_;
  if (in_trampoline_code(tr, rs.saved_.rip)) HS_CHECK(take_back(group, proc, t, rs.saved_));
  if (!group.trampoline_tried_) {
    group.trampoline_tried_ = true;
    if (tr.is_null()) {
      Status st = rs.setup_trampoline(proc);
      if (!st && st.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(st.error()));
      // Any other failure: no trampoline, the libc `syscall` is used.
    }
  }
  rs.trampoline_ = group.trampoline_;
  return rs;
}


// The state a previous, killed invocation may have left, looked at once per
// group before anything writes the data area:
//  - the thread the data area belongs to is stopped inside the trampoline
//    (on its way back): it gets its registers (and vector state) back now,
//    or, if it is the thread being borrowed, in create();
//  - it is still running a function that invocation called in it (the
//    data area describes a call, the return address into the trampoline is
//    still in its slot, which the return path zeroes, and the thread's
//    stack pointer is at or below that slot): overwriting the data area
//    now would leave it, when it returns, with another call's registers,
//    and a repair could unmap the code it runs. Refused, worth a retry.
//    A thread running in user space (its stack pointer unknown) with the
//    slot intact counts as still in the call.
Status RemoteSyscalls::settle_previous_invocation(ThreadGroup& group, const Process& proc, pid_t borrowed) {
  const RemoteAddr tr = group.trampoline_;
  auto ctx = HS_TRY(proc.read_value<x86_64::RecoveryContext>(tr + static_cast<i64>(kTrampolineContext)));
  TracedThread* o = ctx.tid == 0 ? nullptr : group.find(static_cast<pid_t>(ctx.tid));
  if (!o) return {};
  std::optional<u64> sp;
  if (o->stopped) {
    HS_CHECK(group.refresh_regs(*o));
    if (in_trampoline_code(tr, o->regs.rip)) {
      if (o->tid == borrowed) return {};
      user_regs_struct regs = o->regs;
      HS_CHECK(take_back(group, proc, *o, regs));
      return group.set_regs(*o, regs);
    }
    sp = o->regs.rsp;
  } else {
    sp = blocked_sp(group.pid(), o->tid);
  }
  if (ctx.vector_bytes == 0) return {};
  const u64 slot = call_return_slot(ctx);
  if (sp && *sp > slot) return {};  // back above the call's frame
  auto ret = proc.read_value<u64>(RemoteAddr(slot));
  if (!ret) {
    if (ret.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(ret.error()));
    return {};  // its stack is gone: so is the call
  }
  if (*ret != tr.value() + kTrampolineReturnXsave && *ret != tr.value() + kTrampolineReturnFxsave) return {};
  return fail(ErrorKind::Busy,
              "thread {} of PID {} is still running a function an interrupted hotsplice called in it; try again "
              "when it returns",
              ctx.tid, group.pid());
}

// The thread `t`, stopped inside the trampoline, was left there by a killed
// hotsplice: its own registers (and, if it had not got past restoring them,
// its vector state) are in the data area. The vector state is put back at
// once; `regs` receives the registers.
Status RemoteSyscalls::take_back(ThreadGroup& group, const Process& proc, TracedThread& t, user_regs_struct& regs) {
  const RemoteAddr tr = group.trampoline_;
  auto ctx = HS_TRY(proc.read_value<x86_64::RecoveryContext>(tr + static_cast<i64>(kTrampolineContext)));
  if (ctx.tid != 0 && ctx.tid != static_cast<u64>(t.tid))
    return fail(ErrorKind::Internal,
                "thread {} of PID {} is inside hotsplice's recovery trampoline, but its data area holds the "
                "registers of thread {}",
                t.tid, group.pid(), ctx.tid);
  const u64 rip = t.regs.rip;
  from_context(regs, ctx);
  for (u64 entry : {kTrampolineReturnXsave, kTrampolineReturnFxsave}) {
    if (rip < tr.value() + entry || rip >= tr.value() + entry + x86_64::kCallReturnVectorDone) continue;
    if (ctx.vector_bytes == 0 || ctx.vector_bytes > kTrampolineVectorRoom) break;
    auto image = HS_TRY(proc.read(tr + static_cast<i64>(kTrampolineVector), ctx.vector_bytes));
    iovec iov{image.data(), image.size()};
    const unsigned int regset = entry == kTrampolineReturnXsave ? NT_X86_XSTATE : NT_PRFPREG;
    if (::ptrace(PTRACE_SETREGSET, t.tid, reinterpret_cast<void*>(static_cast<uintptr_t>(regset)), &iov) != 0) {
      if (errno == ESRCH) return group.lost(t);
      return fail_errno(ErrorKind::Internal, errno, "cannot restore the vector registers of thread {} of PID {}",
                        t.tid, group.pid());
    }
  }
  return {};
}

Status RemoteSyscalls::write_recovery_state(ThreadGroup& group, const Process& proc, pid_t tid,
                                            const user_regs_struct& regs, ByteView vector) {
  const RemoteAddr tr = group.trampoline_;
  if (!vector.empty()) HS_CHECK(proc.write(tr + static_cast<i64>(kTrampolineVector), vector));
  const x86_64::RecoveryContext ctx = to_context(regs, tid, vector.size());
  Status w = proc.write(tr + static_cast<i64>(kTrampolineContext), ByteView(reinterpret_cast<const u8*>(&ctx), sizeof ctx));
  if (!w) {
    // A killed process loses its memory (the write fails) only after
    // every thread has left its ptrace-stop, before /proc may say it is
    // dead: a borrowed thread that no longer answers ptrace tells.
    errno = 0;
    if (TracedThread* t = group.find(tid); t && ::ptrace(PTRACE_PEEKUSER, tid, nullptr, nullptr) == -1 && errno == ESRCH)
      return group.lost(*t);
    return w;
  }
  return {};
}

// Creates the trampoline with plain remote calls (the one-time window).
Status RemoteSyscalls::setup_trampoline(const Process& proc) {
  // The name goes on the thread's stack well below its red zone, as for
  // map_named_memfd (engine/remote_memfd.h).
  const RemoteAddr name_at((saved_.rsp - 1024) & ~u64{15});
  const std::string name = kTrampolineName;
  HS_CHECK(proc.write(name_at, ByteView(reinterpret_cast<const u8*>(name.c_str()), name.size() + 1)));
  long fd = HS_TRY(syscall(SYS_memfd_create, name_at.value(), MFD_CLOEXEC | MFD_EXEC));
  if (fd == -EINVAL) fd = HS_TRY(syscall(SYS_memfd_create, name_at.value(), MFD_CLOEXEC));
  if (fd < 0)
    return fail_errno(ErrorKind::BadTarget, static_cast<int>(-fd), "memfd_create in PID {} failed", group_->pid());
  long r = HS_TRY(syscall(SYS_ftruncate, fd, kTrampolineSize));
  long addr = r < 0 ? r : HS_TRY(syscall(SYS_mmap, 0, kTrampolineSize, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0));
  HS_CHECK(syscall(SYS_close, fd));
  if (is_error_result(addr))
    return fail_errno(ErrorKind::BadTarget, static_cast<int>(-addr), "cannot map the trampoline in PID {}",
                      group_->pid());
  const RemoteAddr base(static_cast<u64>(addr));
  Status written = proc.write(base, trampoline_code(base));
  if (!written) {
    (void)syscall(SYS_munmap, base.value(), kTrampolineSize);
    return written;
  }
  group_->trampoline_ = base;
  return {};
}

RemoteSyscalls::RemoteSyscalls(RemoteSyscalls&& o) noexcept
    : group_(o.group_),
      proc_(o.proc_),
      tid_(o.tid_),
      syscall_insn_(o.syscall_insn_),
      trampoline_(o.trampoline_),
      saved_(o.saved_),
      done_(o.done_) {
  o.done_ = true;
}

RemoteSyscalls::~RemoteSyscalls() {
  if (!done_) (void)finish();
}

Result<long> RemoteSyscalls::syscall_raw(long nr, const unsigned long (&args)[6]) {
  if (done_) return fail(ErrorKind::Internal, "remote system calls on thread {} are finished", tid_);
  TracedThread* t = group_->find(tid_);
  if (!t || !t->stopped)
    return fail(ErrorKind::TargetGone, "process {} exited during the operation", group_->pid());

  user_regs_struct r = saved_;
  r.rip = syscall_insn_.value();
  if (!trampoline_.is_null()) {
    // The thread's own registers first, for the recovery tail; then the
    // `syscall` that the tail follows.
    HS_CHECK(write_recovery_state(*group_, *proc_, tid_, saved_));
    r.rip = trampoline_.value() + kTrampolineSyscall;
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


Result<RemoteAddr> RemoteSyscalls::mmap(RemoteAddr hint, u64 len, int prot, int flags, int fd, u64 off) {
  long r = HS_TRY(syscall(SYS_mmap, hint.value(), len, prot, flags, fd, off));
  if (is_error_result(r))
    return fail_errno(kind_for_errno(static_cast<int>(-r), ErrorKind::BadTarget), static_cast<int>(-r),
                      "mmap of {:#x} bytes at {} in PID {} failed", len, hint, group_->pid());
  return RemoteAddr(static_cast<u64>(r));
}

Status RemoteSyscalls::munmap(RemoteAddr addr, u64 len) {
  long r = HS_TRY(syscall(SYS_munmap, addr.value(), len));
  if (is_error_result(r))
    return fail_errno(kind_for_errno(static_cast<int>(-r), ErrorKind::BadTarget), static_cast<int>(-r),
                      "munmap of {:#x} bytes at {} in PID {} failed", len, addr, group_->pid());
  return {};
}

Status RemoteSyscalls::mprotect(RemoteAddr addr, u64 len, int prot) {
  long r = HS_TRY(syscall(SYS_mprotect, addr.value(), len, prot));
  if (is_error_result(r))
    return fail_errno(kind_for_errno(static_cast<int>(-r), ErrorKind::BadTarget), static_cast<int>(-r),
                      "mprotect of {:#x} bytes at {} to {:#x} in PID {} failed", len, addr, prot, group_->pid());
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
