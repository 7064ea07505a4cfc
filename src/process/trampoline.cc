// The recovery trampoline (see trampoline.h): its code, finding the one an
// earlier invocation made or creating it, settling what a killed invocation
// left in it, and the data area every remote call writes first. Also the
// fallback: a `syscall` instruction of the target's own code, for the calls
// that create the trampoline and for processes that refuse it.
#include "process/trampoline.h"

#include <elf.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "arch/x86_64.h"
#include "process/named_memfd.h"
#include "process/ptrace_util.h"
#include "process/remote_call.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"
#include "support/file.h"

namespace hs {

namespace {

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
    if (off > 0 && prev == x86_64::kSyscall[0] && !bytes->empty() && (*bytes)[0] == x86_64::kSyscall[1])
      return std::optional<RemoteAddr>(m.range.begin + static_cast<i64>(off - 1));
    auto it = std::search(bytes->begin(), bytes->end(), std::begin(x86_64::kSyscall), std::end(x86_64::kSyscall));
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

// The code of a trampoline mapped at `base`: the `syscall` every remote
// system call runs, then the tail that runs only if hotsplice died
// meanwhile; RemoteCall's two return paths (xrstor, fxrstor), which end in
// that tail too. Gaps are int3.
Bytes trampoline_code(RemoteAddr base) {
  using RT = RecoveryTrampoline;
  const RemoteAddr tail = base + sizeof x86_64::kSyscall;
  const RemoteAddr vector = base + static_cast<i64>(RT::kVector);
  Bytes code(std::begin(x86_64::kSyscall), std::end(x86_64::kSyscall));  // syscall
  Bytes part = x86_64::make_recovery_tail(tail, base + static_cast<i64>(RT::kContext));
  code.insert(code.end(), part.begin(), part.end());
  for (u64 at : {RT::kReturnXsave, RT::kReturnFxsave}) {
    code.resize(at, x86_64::kInt3);
    part = x86_64::make_call_return(base + static_cast<i64>(at), vector, at == RT::kReturnXsave, tail);
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

// A trampoline an earlier invocation created: the named mapping whose code
// is exactly ours (another version's is ignored; a new one is made).
Result<RemoteAddr> find_trampoline(const Process& proc) {
  auto maps = HS_TRY(proc.maps());
  for (const auto& m : maps) {
    if (!is_memfd_named(m.path, RecoveryTrampoline::kName) || m.range.size() != RecoveryTrampoline::kSize || !(m.prot & PROT_EXEC))
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

Result<RemoteAddr> RecoveryTrampoline::fallback_syscall(const Process& proc) {
  if (fallback_syscall_.is_null()) fallback_syscall_ = HS_TRY(find_syscall_insn(proc));
  return fallback_syscall_;
}

bool RecoveryTrampoline::in_code(u64 rip) const {
  return !base_.is_null() && rip >= base_.value() && rip < base_.value() + kContext;
}

Status RecoveryTrampoline::look_for(ThreadGroup& group, const Process& proc, pid_t borrowed) {
  if (settled_) return {};
  base_ = HS_TRY(find_trampoline(proc));
  if (!base_.is_null()) HS_CHECK(settle_previous_invocation(group, proc, borrowed));
  return {};
}

Status RecoveryTrampoline::ensure(RemoteSyscalls& rs, const TracedThread& t, const Process& proc) {
  if (settled_) return {};
  settled_ = true;
  if (!base_.is_null()) return {};
  Status st = create(rs, t, proc);
  if (!st && st.error().kind() == ErrorKind::TargetGone) return st;
  // Any other failure: no trampoline, the fallback `syscall` is used.
  return {};
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
Status RecoveryTrampoline::settle_previous_invocation(ThreadGroup& group, const Process& proc, pid_t borrowed) const {
  const RemoteAddr tr = base_;
  auto ctx = HS_TRY(proc.read_value<x86_64::RecoveryContext>(tr + static_cast<i64>(kContext)));
  TracedThread* o = ctx.tid == 0 ? nullptr : group.find(static_cast<pid_t>(ctx.tid));
  if (!o) return {};
  std::optional<u64> sp;
  if (o->stopped) {
    HS_CHECK(group.refresh_regs(*o));
    if (in_code(o->regs.rip)) {
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
  const u64 slot = RemoteCall::return_slot(ctx.rsp);
  if (sp && *sp > slot) return {};  // back above the call's frame
  auto ret = proc.read_value<u64>(RemoteAddr(slot));
  if (!ret) {
    if (ret.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(ret.error()));
    return {};  // its stack is gone: so is the call
  }
  if (*ret != tr.value() + kReturnXsave && *ret != tr.value() + kReturnFxsave) return {};
  return fail(ErrorKind::Busy,
              "thread {} of PID {} is still running a function an interrupted hotsplice called in it; try again "
              "when it returns",
              ctx.tid, group.pid());
}

Status RecoveryTrampoline::take_back(ThreadGroup& group, const Process& proc, TracedThread& t,
                                     user_regs_struct& regs) const {
  const RemoteAddr tr = base_;
  auto ctx = HS_TRY(proc.read_value<x86_64::RecoveryContext>(tr + static_cast<i64>(kContext)));
  if (ctx.tid != 0 && ctx.tid != static_cast<u64>(t.tid))
    return fail(ErrorKind::Internal,
                "thread {} of PID {} is inside hotsplice's recovery trampoline, but its data area holds the "
                "registers of thread {}",
                t.tid, group.pid(), ctx.tid);
  const u64 rip = t.regs.rip;
  from_context(regs, ctx);
  for (u64 entry : {kReturnXsave, kReturnFxsave}) {
    if (rip < tr.value() + entry || rip >= tr.value() + entry + x86_64::kCallReturnVectorDone) continue;
    if (ctx.vector_bytes == 0 || ctx.vector_bytes > kVectorRoom) break;
    auto image = HS_TRY(proc.read(tr + static_cast<i64>(kVector), ctx.vector_bytes));
    iovec iov{image.data(), image.size()};
    const unsigned int regset = entry == kReturnXsave ? NT_X86_XSTATE : NT_PRFPREG;
    if (pt(PTRACE_SETREGSET, t.tid, regset, &iov) != 0) {
      if (errno == ESRCH) return group.lost(t);
      return fail_errno(ErrorKind::Internal, errno, "cannot restore the vector registers of thread {} of PID {}",
                        t.tid, group.pid());
    }
  }
  return {};
}

Status RecoveryTrampoline::write_state(ThreadGroup& group, const Process& proc, pid_t tid,
                                       const user_regs_struct& regs, ByteView vector) const {
  const RemoteAddr tr = base_;
  if (!vector.empty()) HS_CHECK(proc.write(tr + static_cast<i64>(kVector), vector));
  const x86_64::RecoveryContext ctx = to_context(regs, tid, vector.size());
  Status w = proc.write(tr + static_cast<i64>(kContext), ByteView(reinterpret_cast<const u8*>(&ctx), sizeof ctx));
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
Status RecoveryTrampoline::create(RemoteSyscalls& rs, const TracedThread& t, const Process& proc) {
  const RemoteAddr base =
      HS_TRY(map_named_memfd(proc, rs, t, kName, RemoteAddr(), kSize, PROT_READ | PROT_EXEC, MAP_PRIVATE));
  Status written = proc.write(base, trampoline_code(base));
  if (!written) {
    (void)rs.syscall(SYS_munmap, base.value(), kSize);
    return written;
  }
  base_ = base;
  return {};
}

}  // namespace hs
