// Seccomp filter evaluation (see seccomp.h): a classic-BPF interpreter over
// `struct seccomp_data`, the kernel's precedence between filters, and reading
// a tracee's programs.
#include "process/seccomp.h"

#include <linux/audit.h>
#include <sys/ptrace.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "support/file.h"

namespace hs {

namespace {

constexpr size_t kMaxInsns = BPF_MAXINSNS;   // per program, as the kernel allows
constexpr size_t kMaxPrograms = 8192;        // the kernel's 32K-instruction path limit / 4
constexpr u32 kDataSize = sizeof(seccomp_data);

SeccompVerdict unknown(size_t pc, std::string_view what) {
  SeccompVerdict v;
  v.action = SeccompAction::Unknown;
  v.problem = fmt::format("instruction {}: {}", pc, what);
  return v;
}

// The 32-bit word at `off` of the data, as BPF_LD|BPF_W|BPF_ABS reads it.
u32 load_word(const seccomp_data& d, u32 off) {
  u8 raw[kDataSize];
  std::memcpy(raw, &d, sizeof raw);
  return load_le<u32>(raw + off);
}

// Maps a program's return value to an action, as the kernel does: unknown
// action values kill the process.
SeccompVerdict from_return(u32 ret) {
  SeccompVerdict v;
  v.data = static_cast<u16>(ret & SECCOMP_RET_DATA);
  switch (ret & SECCOMP_RET_ACTION_FULL) {
    case SECCOMP_RET_KILL_PROCESS: v.action = SeccompAction::KillProcess; break;
    case SECCOMP_RET_KILL_THREAD: v.action = SeccompAction::KillThread; break;
    case SECCOMP_RET_TRAP: v.action = SeccompAction::Trap; break;
    case SECCOMP_RET_ERRNO: v.action = SeccompAction::Errno; break;
    case SECCOMP_RET_USER_NOTIF: v.action = SeccompAction::UserNotif; break;
    case SECCOMP_RET_TRACE: v.action = SeccompAction::Trace; break;
    case SECCOMP_RET_LOG: v.action = SeccompAction::Log; break;
    case SECCOMP_RET_ALLOW: v.action = SeccompAction::Allow; break;
    default: v.action = SeccompAction::KillProcess; break;
  }
  return v;
}

// Lower ranks win when several programs answer.
int rank(SeccompAction a) {
  switch (a) {
    case SeccompAction::Unknown: return 0;
    case SeccompAction::KillProcess: return 1;
    case SeccompAction::KillThread: return 2;
    case SeccompAction::Trap: return 3;
    case SeccompAction::Errno: return 4;
    case SeccompAction::UserNotif: return 5;
    case SeccompAction::Trace: return 6;
    case SeccompAction::Log: return 7;
    case SeccompAction::Allow: return 8;
  }
  return 0;
}

// One ALU operation; false for an operation seccomp does not know.
bool alu(u16 op, u32& a, u32 operand, bool& div_by_zero) {
  switch (op) {
    case BPF_ADD: a += operand; return true;
    case BPF_SUB: a -= operand; return true;
    case BPF_MUL: a *= operand; return true;
    case BPF_DIV:
    case BPF_MOD:
      if (operand == 0) {
        div_by_zero = true;
        return true;
      }
      a = op == BPF_DIV ? a / operand : a % operand;
      return true;
    case BPF_OR: a |= operand; return true;
    case BPF_AND: a &= operand; return true;
    case BPF_XOR: a ^= operand; return true;
    // 32-bit shifts by 32 or more give 0 in the kernel's translation.
    case BPF_LSH: a = operand >= 32 ? 0 : a << operand; return true;
    case BPF_RSH: a = operand >= 32 ? 0 : a >> operand; return true;
    default: return false;
  }
}

}  // namespace

bool SeccompVerdict::harmful() const {
  switch (action) {
    case SeccompAction::Allow:
    case SeccompAction::Log:
    case SeccompAction::Errno:
    case SeccompAction::Trace: return false;
    default: return true;
  }
}

SeccompVerdict run_seccomp_program(std::span<const sock_filter> prog, const seccomp_data& data) {
  if (prog.empty()) return unknown(0, "empty program");
  if (prog.size() > kMaxInsns) return unknown(0, fmt::format("{} instructions (at most {})", prog.size(), kMaxInsns));
  u32 a = 0, x = 0;
  u32 mem[BPF_MEMWORDS] = {};
  bool mem_set[BPF_MEMWORDS] = {};
  // Jumps only go forward (offsets are unsigned), so this ends within
  // prog.size() steps.
  for (size_t pc = 0; pc < prog.size(); pc++) {
    const sock_filter& in = prog[pc];
    const u16 code = in.code;
    const u32 k = in.k;
    switch (BPF_CLASS(code)) {
      case BPF_LD:
      case BPF_LDX: {
        u32& reg = BPF_CLASS(code) == BPF_LD ? a : x;
        const u16 mode = BPF_MODE(code);
        if (mode == BPF_IMM) {
          reg = k;
        } else if (mode == BPF_MEM) {
          if (k >= BPF_MEMWORDS) return unknown(pc, fmt::format("scratch slot {} out of range", k));
          if (!mem_set[k]) return unknown(pc, fmt::format("scratch slot {} read before written", k));
          reg = mem[k];
        } else if (mode == BPF_LEN && BPF_SIZE(code) == BPF_W) {
          reg = kDataSize;
        } else if (mode == BPF_ABS && BPF_CLASS(code) == BPF_LD && BPF_SIZE(code) == BPF_W) {
          if (k % 4 != 0 || k > kDataSize - 4) return unknown(pc, fmt::format("load at offset {}", k));
          reg = load_word(data, k);
        } else {
          return unknown(pc, fmt::format("load with code {:#06x}", code));
        }
        break;
      }
      case BPF_ST:
      case BPF_STX:
        if (k >= BPF_MEMWORDS) return unknown(pc, fmt::format("scratch slot {} out of range", k));
        mem[k] = BPF_CLASS(code) == BPF_ST ? a : x;
        mem_set[k] = true;
        break;
      case BPF_ALU: {
        const u16 op = BPF_OP(code);
        if (op == BPF_NEG) {
          a = 0u - a;
          break;
        }
        bool div_by_zero = false;
        if (!alu(op, a, BPF_SRC(code) == BPF_X ? x : k, div_by_zero))
          return unknown(pc, fmt::format("ALU operation {:#06x}", code));
        // The kernel's translation ends the program with 0 here.
        if (div_by_zero) return from_return(0);
        break;
      }
      case BPF_JMP: {
        const u16 op = BPF_OP(code);
        size_t skip;
        if (op == BPF_JA) {
          skip = k;
        } else {
          const u32 b = BPF_SRC(code) == BPF_X ? x : k;
          bool taken;
          switch (op) {
            case BPF_JEQ: taken = a == b; break;
            case BPF_JGT: taken = a > b; break;
            case BPF_JGE: taken = a >= b; break;
            case BPF_JSET: taken = (a & b) != 0; break;
            default: return unknown(pc, fmt::format("jump with code {:#06x}", code));
          }
          skip = taken ? in.jt : in.jf;
        }
        if (skip >= prog.size() - pc - 1) return unknown(pc, fmt::format("jump by {} leaves the program", skip));
        pc += skip;
        break;
      }
      case BPF_RET:
        switch (BPF_RVAL(code)) {
          case BPF_K: return from_return(k);
          case BPF_A: return from_return(a);
          default: return unknown(pc, fmt::format("return with code {:#06x}", code));
        }
      case BPF_MISC:
        if (BPF_MISCOP(code) == BPF_TAX)
          x = a;
        else if (BPF_MISCOP(code) == BPF_TXA)
          a = x;
        else
          return unknown(pc, fmt::format("code {:#06x}", code));
        break;
      default: return unknown(pc, fmt::format("code {:#06x}", code));
    }
  }
  return unknown(prog.size(), "the program ends without returning");
}

SeccompVerdict evaluate_seccomp(std::span<const SeccompProgram> progs, const SyscallProbe& call) {
  seccomp_data d{};
  d.nr = call.nr;
  d.arch = AUDIT_ARCH_X86_64;
  d.instruction_pointer = call.ip;
  for (size_t i = 0; i < call.args.size(); i++) d.args[i] = call.args[i];
  SeccompVerdict best;  // no filter: allowed
  // Newest first, like the kernel, so that an equal action of an older
  // program does not displace the newer one's.
  for (size_t i = progs.size(); i-- > 0;) {
    SeccompVerdict v = run_seccomp_program(progs[i], d);
    v.filter = i;
    if (i == progs.size() - 1 || rank(v.action) < rank(best.action)) best = std::move(v);
  }
  return best;
}

std::string describe(const SeccompVerdict& v) {
  switch (v.action) {
    case SeccompAction::Allow: return "allow";
    case SeccompAction::Log: return "allow and log";
    case SeccompAction::Trace: return "fail with ENOSYS (SECCOMP_RET_TRACE without a seccomp tracer)";
    case SeccompAction::UserNotif: return "hand to a user-space supervisor (SECCOMP_RET_USER_NOTIF)";
    case SeccompAction::Errno: {
      const char* name = strerrorname_np(v.data);
      return fmt::format("fail with errno {} ({})", name ? name : "?", v.data);
    }
    case SeccompAction::Trap: return "send SIGSYS (SECCOMP_RET_TRAP)";
    case SeccompAction::KillThread: return "kill the thread";
    case SeccompAction::KillProcess: return "kill the process";
    case SeccompAction::Unknown: return fmt::format("unknown: filter {} cannot be evaluated: {}", v.filter, v.problem);
  }
  return "unknown";
}

Result<std::vector<SeccompProgram>> read_seccomp_filters(pid_t tid) {
  std::vector<SeccompProgram> out;
  for (size_t i = 0;; i++) {
    if (i == kMaxPrograms)
      return fail(ErrorKind::BadTarget, "thread {} has more than {} seccomp filters", tid, kMaxPrograms);
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(i), nullptr);
    if (n < 0 && errno == ENOENT) break;  // past the newest filter
    if (n < 0) {
      const int err = errno;
      if (err == EINVAL && i == 0) break;  // not in filter mode
      return fail_errno(kind_for_errno(err, ErrorKind::BadTarget), err,
                        "cannot read seccomp filter {} of thread {} (PTRACE_SECCOMP_GET_FILTER)", i, tid);
    }
    if (n == 0 || static_cast<size_t>(n) > kMaxInsns)
      return fail(ErrorKind::BadTarget, "seccomp filter {} of thread {} has {} instructions", i, tid, n);
    SeccompProgram prog(static_cast<size_t>(n));
    long got = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(i), prog.data());
    if (got < 0) {
      const int err = errno;
      return fail_errno(kind_for_errno(err, ErrorKind::BadTarget), err,
                        "cannot read seccomp filter {} of thread {} (PTRACE_SECCOMP_GET_FILTER)", i, tid);
    }
    // Another thread's SECCOMP_FILTER_FLAG_TSYNC may have added a filter
    // between the two calls, making index i name another program.
    if (got != n) return fail(ErrorKind::Busy, "the seccomp filters of thread {} changed while being read", tid);
    out.push_back(std::move(prog));
  }
  return out;
}

Result<int> seccomp_mode(pid_t pid, pid_t tid) {
  const std::string path = fmt::format("/proc/{}/task/{}/status", pid, tid);
  auto text = read_whole_file(path);
  if (!text) {
    const int err = text.error().err;
    return fail_errno(kind_for_errno(err, ErrorKind::TargetGone), err, "cannot read {}", path);
  }
  std::string_view rest(reinterpret_cast<const char*>(text->data()), text->size());
  constexpr std::string_view kKey = "\nSeccomp:";
  const size_t at = rest.find(kKey);
  if (at != std::string_view::npos) {
    const std::string_view v = rest.substr(at + kKey.size());
    const size_t digit = v.find_first_not_of(" \t");
    if (digit != std::string_view::npos && v[digit] >= '0' && v[digit] <= '9') return v[digit] - '0';
  }
  return fail(ErrorKind::BadTarget, "{} has no Seccomp: line", path);
}

}  // namespace hs
