// Tests of the seccomp evaluator: programs shaped like the filters systemd
// installs (SystemCallFilter= kills, SystemCallErrorNumber= fails with an
// errno, MemoryDenyWriteExecute= refuses executable mappings), malformed
// programs, the precedence between several filters, and, against the kernel
// itself, real filters read back from a stopped child with
// PTRACE_SECCOMP_GET_FILTER whose verdict the child then meets for real.
#include "process/seccomp.h"

#include <linux/audit.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <gtest/gtest.h>

namespace hs {
namespace {

constexpr u32 kNr = offsetof(seccomp_data, nr);
constexpr u32 kArch = offsetof(seccomp_data, arch);
constexpr u32 kArg2Low = offsetof(seccomp_data, args) + 2 * sizeof(u64);

sock_filter stmt(u16 code, u32 k) { return sock_filter{code, 0, 0, k}; }
sock_filter jump(u16 code, u32 k, u8 jt, u8 jf) { return sock_filter{code, jt, jf, k}; }

// SystemCallFilter=: the architecture is checked, a list of calls is
// allowed, everything else gets `otherwise`.
SeccompProgram allow_list(std::initializer_list<int> allowed, u32 otherwise) {
  SeccompProgram p;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kArch));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, kNr));
  for (int nr : allowed) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<u32>(nr), 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  p.push_back(stmt(BPF_RET | BPF_K, otherwise));
  return p;
}

// One call gets `action`, everything else is allowed.
SeccompProgram deny_one(int nr, u32 action) {
  return {stmt(BPF_LD | BPF_W | BPF_ABS, kNr), jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<u32>(nr), 0, 1),
          stmt(BPF_RET | BPF_K, action), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
}

// MemoryDenyWriteExecute=: mmap / mprotect with PROT_EXEC in their third
// argument fail with EPERM.
SeccompProgram deny_exec_mappings() {
  return {stmt(BPF_LD | BPF_W | BPF_ABS, kNr),
          jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 1, 0),
          jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 0, 3),
          stmt(BPF_LD | BPF_W | BPF_ABS, kArg2Low),
          jump(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
          stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
          stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
}

SyscallProbe call(int nr, std::array<u64, 6> args = {}) { return SyscallProbe{nr, 0x1000, args}; }

SeccompVerdict eval(const SeccompProgram& p, const SyscallProbe& c) {
  return evaluate_seccomp(std::span<const SeccompProgram>(&p, 1), c);
}

TEST(Seccomp, NoFilterAllowsEverything) {
  const SeccompVerdict v = evaluate_seccomp({}, call(SYS_memfd_create));
  EXPECT_EQ(v.action, SeccompAction::Allow);
  EXPECT_FALSE(v.harmful());
}

TEST(Seccomp, SystemCallFilterKillsWhatItDoesNotList) {
  const SeccompProgram p = allow_list({SYS_read, SYS_write, SYS_mmap}, SECCOMP_RET_KILL_PROCESS);
  EXPECT_EQ(eval(p, call(SYS_read)).action, SeccompAction::Allow);
  EXPECT_EQ(eval(p, call(SYS_mmap)).action, SeccompAction::Allow);
  const SeccompVerdict v = eval(p, call(SYS_memfd_create));
  EXPECT_EQ(v.action, SeccompAction::KillProcess);
  EXPECT_TRUE(v.harmful());
  EXPECT_EQ(describe(v), "kill the process");
}

TEST(Seccomp, SystemCallErrorNumberFailsQuietly) {
  const SeccompProgram p = allow_list({SYS_read}, SECCOMP_RET_ERRNO | EACCES);
  const SeccompVerdict v = eval(p, call(SYS_memfd_create));
  EXPECT_EQ(v.action, SeccompAction::Errno);
  EXPECT_EQ(v.data, EACCES);
  EXPECT_FALSE(v.harmful());
  EXPECT_TRUE(v.fails_quietly());
  EXPECT_EQ(describe(v), "fail with errno EACCES (13)");
}

TEST(Seccomp, MemoryDenyWriteExecuteLooksAtTheProtection) {
  const SeccompProgram p = deny_exec_mappings();
  EXPECT_EQ(eval(p, call(SYS_mmap, {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0, 0})).action,
            SeccompAction::Allow);
  const SeccompVerdict v = eval(p, call(SYS_mmap, {0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, 0, 0}));
  EXPECT_EQ(v.action, SeccompAction::Errno);
  EXPECT_EQ(v.data, EPERM);
  EXPECT_EQ(eval(p, call(SYS_mprotect, {0x1000, 4096, PROT_EXEC, 0, 0, 0})).action, SeccompAction::Errno);
  EXPECT_EQ(eval(p, call(SYS_munmap, {0x1000, 4096, PROT_EXEC, 0, 0, 0})).action, SeccompAction::Allow);
}

TEST(Seccomp, TheMostRestrictiveFilterWins) {
  const SeccompProgram errno_getpid = deny_one(SYS_getpid, SECCOMP_RET_ERRNO | EPERM);
  const SeccompProgram kill_getpid = deny_one(SYS_getpid, SECCOMP_RET_KILL_THREAD);
  const SeccompProgram trace_getpid = deny_one(SYS_getpid, SECCOMP_RET_TRACE);
  const SeccompProgram allow_all = {stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  {
    const std::vector<SeccompProgram> progs{allow_all, errno_getpid};
    const SeccompVerdict v = evaluate_seccomp(progs, call(SYS_getpid));
    EXPECT_EQ(v.action, SeccompAction::Errno);
    EXPECT_EQ(v.filter, 1u);
  }
  {
    const std::vector<SeccompProgram> progs{errno_getpid, kill_getpid, trace_getpid};
    const SeccompVerdict v = evaluate_seccomp(progs, call(SYS_getpid));
    EXPECT_EQ(v.action, SeccompAction::KillThread);
    EXPECT_EQ(v.filter, 1u);
  }
  {
    // Equal actions: the newest program's errno.
    const std::vector<SeccompProgram> progs{errno_getpid, deny_one(SYS_getpid, SECCOMP_RET_ERRNO | EACCES)};
    const SeccompVerdict v = evaluate_seccomp(progs, call(SYS_getpid));
    EXPECT_EQ(v.data, EACCES);
    EXPECT_EQ(v.filter, 1u);
  }
  {
    const std::vector<SeccompProgram> progs{trace_getpid, errno_getpid};
    EXPECT_EQ(evaluate_seccomp(progs, call(SYS_getpid)).action, SeccompAction::Errno);
    EXPECT_EQ(evaluate_seccomp(progs, call(SYS_getppid)).action, SeccompAction::Allow);
  }
}

TEST(Seccomp, UnknownActionValuesKillTheProcess) {
  const SeccompProgram p = {stmt(BPF_RET | BPF_K, 0x12340000)};
  EXPECT_EQ(eval(p, call(SYS_getpid)).action, SeccompAction::KillProcess);
}

TEST(Seccomp, ArithmeticScratchAndRegisterMoves) {
  // A = nr; M[3] = A; X = 10; A = A * X + 7; X = A; A = M[3]; return
  // ERRNO | (X & 0xfff): the result carries nr * 10 + 7.
  const SeccompProgram p = {
      stmt(BPF_LD | BPF_W | BPF_ABS, kNr),    stmt(BPF_ST, 3),
      stmt(BPF_LDX | BPF_IMM, 10),            stmt(BPF_ALU | BPF_MUL | BPF_X, 0),
      stmt(BPF_ALU | BPF_ADD | BPF_K, 7),     stmt(BPF_MISC | BPF_TAX, 0),
      stmt(BPF_LD | BPF_MEM, 3),              stmt(BPF_MISC | BPF_TXA, 0),
      stmt(BPF_ALU | BPF_AND | BPF_K, 0xfff), stmt(BPF_ALU | BPF_OR | BPF_K, SECCOMP_RET_ERRNO),
      stmt(BPF_RET | BPF_A, 0)};
  const SeccompVerdict v = eval(p, call(39));
  EXPECT_EQ(v.action, SeccompAction::Errno);
  EXPECT_EQ(v.data, 397);
}

TEST(Seccomp, DivisionByZeroEndsTheProgramWithZero) {
  const SeccompProgram p = {stmt(BPF_LDX | BPF_IMM, 0), stmt(BPF_LD | BPF_IMM, 5), stmt(BPF_ALU | BPF_DIV | BPF_X, 0),
                            stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  EXPECT_EQ(eval(p, call(SYS_getpid)).action, SeccompAction::KillThread);
}

TEST(Seccomp, MalformedProgramsAreUnknownNeverAllowed) {
  struct Case {
    const char* what;
    SeccompProgram prog;
    const char* problem;
  };
  const std::vector<Case> cases = {
      {"jump past the end", {jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
       "instruction 0: jump by 5 leaves the program"},
      {"unaligned load", {stmt(BPF_LD | BPF_W | BPF_ABS, 3), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
       "instruction 0: load at offset 3"},
      {"load past the data", {stmt(BPF_LD | BPF_W | BPF_ABS, 64), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
       "instruction 0: load at offset 64"},
      {"no return", {stmt(BPF_LD | BPF_IMM, 1)}, "instruction 1: the program ends without returning"},
      {"scratch read first", {stmt(BPF_LD | BPF_MEM, 2), stmt(BPF_RET | BPF_A, 0)},
       "instruction 0: scratch slot 2 read before written"},
      {"scratch out of range", {stmt(BPF_ST, 16), stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)},
       "instruction 0: scratch slot 16 out of range"},
      {"byte load (socket filters only)", {stmt(BPF_LD | BPF_B | BPF_ABS, 0), stmt(BPF_RET | BPF_A, 0)},
       "instruction 0: load with code 0x0030"},
      {"empty", {}, "instruction 0: empty program"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const SeccompVerdict v = eval(c.prog, call(SYS_getpid));
    EXPECT_EQ(v.action, SeccompAction::Unknown);
    EXPECT_TRUE(v.harmful());
    EXPECT_EQ(v.problem, c.problem);
  }
  // An unknown program outranks even a kill: nothing can be promised.
  const std::vector<SeccompProgram> progs{deny_one(SYS_getpid, SECCOMP_RET_KILL_PROCESS), {}};
  EXPECT_EQ(evaluate_seccomp(progs, call(SYS_getpid)).action, SeccompAction::Unknown);
}

// ---- against the kernel ------------------------------------------------------

// A child that installs `progs` (oldest first), says so through a pipe, and
// then, once told, makes system call `nr` with arguments 0 and reports the
// result.
struct FilteredChild {
  pid_t pid = -1;
  int go = -1;      // write a byte: make the call
  int result = -1;  // a byte once the filters are in; then the call's result, or -errno
};

FilteredChild start_filtered(const std::vector<SeccompProgram>& progs, int nr) {
  int go[2], res[2];
  EXPECT_EQ(pipe(go), 0);
  EXPECT_EQ(pipe(res), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(go[1]);
    close(res[0]);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(90);
    for (const SeccompProgram& p : progs) {
      sock_fprog f{static_cast<unsigned short>(p.size()), const_cast<sock_filter*>(p.data())};
      if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &f) != 0) _exit(91);
    }
    if (write(res[1], "r", 1) != 1) _exit(94);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(92);
    long r = syscall(nr, 0, 0, 0, 0, 0, 0);
    int out = r < 0 ? -errno : static_cast<int>(r);
    if (write(res[1], &out, sizeof out) != sizeof out) _exit(93);
    _exit(0);
  }
  close(go[0]);
  close(res[1]);
  return FilteredChild{pid, go[1], res[0]};
}

// Seizes the child, reads its filters while it is stopped, and evaluates
// `nr` (args 0) with them; then lets the child make the call for real and
// checks that the kernel did what the evaluation said.
void expect_kernel_agrees(const std::vector<SeccompProgram>& progs, int nr, SeccompAction expected) {
  FilteredChild c = start_filtered(progs, nr);
  ASSERT_GT(c.pid, 0);
  char ready;
  ASSERT_EQ(read(c.result, &ready, 1), 1);
  auto mode = seccomp_mode(c.pid, c.pid);
  ASSERT_TRUE(mode) << mode.error().message();
  EXPECT_EQ(*mode, 2);
  ASSERT_EQ(ptrace(PTRACE_SEIZE, c.pid, nullptr, nullptr), 0);
  ASSERT_EQ(ptrace(PTRACE_INTERRUPT, c.pid, nullptr, nullptr), 0);
  int st;
  ASSERT_EQ(waitpid(c.pid, &st, 0), c.pid);
  auto read_back = read_seccomp_filters(c.pid);
  ASSERT_TRUE(read_back) << read_back.error().message();
  ASSERT_EQ(read_back->size(), progs.size());
  for (size_t i = 0; i < progs.size(); i++) {  // oldest first
    const SeccompProgram& want = progs[i];
    ASSERT_EQ((*read_back)[i].size(), want.size());
    EXPECT_EQ(std::memcmp((*read_back)[i].data(), want.data(), want.size() * sizeof(sock_filter)), 0);
  }
  const SeccompVerdict v = evaluate_seccomp(*read_back, SyscallProbe{nr, 0, {}});
  EXPECT_EQ(v.action, expected) << describe(v);
  ASSERT_EQ(ptrace(PTRACE_DETACH, c.pid, nullptr, nullptr), 0);

  ASSERT_EQ(write(c.go, "x", 1), 1);
  int result = 0;
  const ssize_t n = read(c.result, &result, sizeof result);
  ASSERT_EQ(waitpid(c.pid, &st, 0), c.pid);
  close(c.go);
  close(c.result);
  switch (expected) {
    case SeccompAction::KillProcess:
      EXPECT_EQ(n, 0);
      ASSERT_TRUE(WIFSIGNALED(st));
      EXPECT_EQ(WTERMSIG(st), SIGSYS);
      break;
    case SeccompAction::Errno:
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof result));
      EXPECT_EQ(result, -static_cast<int>(v.data));
      break;
    case SeccompAction::Allow:
      ASSERT_EQ(n, static_cast<ssize_t>(sizeof result));
      EXPECT_GE(result, 0);
      break;
    default: FAIL() << "no kernel check for this action";
  }
}

TEST(SeccompKernel, KillFilterReadBackAndObeyed) {
  expect_kernel_agrees({deny_one(SYS_getppid, SECCOMP_RET_KILL_PROCESS)}, SYS_getppid, SeccompAction::KillProcess);
}

TEST(SeccompKernel, ErrnoFilterReadBackAndObeyed) {
  expect_kernel_agrees({deny_one(SYS_getppid, SECCOMP_RET_ERRNO | ENOTSUP)}, SYS_getppid, SeccompAction::Errno);
}

TEST(SeccompKernel, StackedFiltersReadOldestFirstMostRestrictiveWins) {
  expect_kernel_agrees({deny_one(SYS_getppid, SECCOMP_RET_ERRNO | EPERM), deny_one(SYS_getpid, SECCOMP_RET_KILL_PROCESS),
                        deny_exec_mappings()},
                       SYS_getppid, SeccompAction::Errno);
  expect_kernel_agrees({deny_one(SYS_getpid, SECCOMP_RET_ERRNO | EPERM), deny_exec_mappings()}, SYS_getppid,
                       SeccompAction::Allow);
  // Two errnos for one call: the kernel gives the newest filter's, and so
  // must the evaluation (the result is compared with v.data).
  expect_kernel_agrees({deny_one(SYS_getppid, SECCOMP_RET_ERRNO | EPERM), deny_one(SYS_getppid, SECCOMP_RET_ERRNO | ENOTSUP)},
                       SYS_getppid, SeccompAction::Errno);
  expect_kernel_agrees({deny_one(SYS_getppid, SECCOMP_RET_ERRNO | ENOTSUP), deny_one(SYS_getppid, SECCOMP_RET_ERRNO | EPERM)},
                       SYS_getppid, SeccompAction::Errno);
}

TEST(SeccompKernel, AThreadWithoutFiltersHasNone) {
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  ASSERT_EQ(ptrace(PTRACE_SEIZE, pid, nullptr, nullptr), 0);
  ASSERT_EQ(ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr), 0);
  int st;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  auto got = read_seccomp_filters(pid);
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_TRUE(got->empty());
  auto mode = seccomp_mode(pid, pid);
  ASSERT_TRUE(mode);
  EXPECT_EQ(*mode, 0);
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

}  // namespace
}  // namespace hs
