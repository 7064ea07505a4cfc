// End-to-end: targets running under seccomp filters shaped like systemd's
// SystemCallFilter= (kill by default), SystemCallErrorNumber= (an errno),
// MemoryDenyWriteExecute=, one that tests the instruction pointer, and strict
// mode (issue 9, defect 7). Before each system call hotsplice makes in a
// target it evaluates the thread's filters on that exact call: a call they
// would kill for is never made (one line naming the PID, the call and the
// verdict; the target lives on untouched), a call they fail with an errno
// fails with it (the message says the filter refused it), and where the
// filters allow what hotsplice needs, everything works.
//
// The target is `filtered MODE` (targets/filtered.c), which installs its
// filter before it serves; the payload patches/filtered_v2.c (value() 1 -> 2,
// a load hook adding 1 to hook_count and an unload hook adding 10).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "harness.h"

using namespace hs::e2e;

namespace {

class Seccomp : public testing::Test {
 protected:
  static void SetUpTestSuite() { lp_ = build("filtered_v2.c", target_bin("filtered"), "seccomp_filtered.lp"); }
  static std::string lp_;
};
std::string Seccomp::lp_;

// The target's mappings without the stack's line (its start moves when the
// kernel grows it, which reading the name below rsp may do).
std::string maps_without_stack(const Target& t) {
  std::string out;
  std::istringstream in(t.maps());
  for (std::string line; std::getline(in, line);)
    if (line.find("[stack]") == std::string::npos) out += line + "\n";
  return out;
}

// `hotsplice ARGS` fails with exit 1 and exactly one line matching `want`.
void expect_refused(const std::vector<std::string>& args, const std::string& want) {
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(std::regex_match(r.err, std::regex("hotsplice: error: " + want + "\n"))) << r.err;
}

// The target still answers as the unpatched program, with nothing of
// hotsplice's mapped.
void expect_untouched(Target& t, const std::string& maps_before) {
  EXPECT_TRUE(t.alive());
  EXPECT_EQ(t.ask("ping"), "pong");
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_EQ(t.ask("hooks"), "hooks=0");
  EXPECT_EQ(maps_without_stack(t), maps_before);
  EXPECT_EQ(t.maps().find("hotsplice"), std::string::npos) << t.maps();
}

// load, apply, revert, unload: each works and the behaviour follows.
void expect_full_cycle(Target& t, const std::string& lp) {
  OK({"load", P(t), lp, "--name", "fix"});
  EXPECT_EQ(t.ask("call"), "value=2");
  EXPECT_EQ(t.ask("hooks"), "hooks=1") << "the load hook ran";
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "value=1");
  OK({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "value=2");
  OK({"revert", P(t), "fix"});
  OK({"unload", P(t), "fix"});
  EXPECT_EQ(t.ask("hooks"), "hooks=11") << "the unload hook ran";
  expect_absent(t, "fix");
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_TRUE(t.alive());
}

const std::string kHex = "0x[0-9a-f]+";

}  // namespace

// systemd's SystemCallFilter= shape: an allowlist (what serving needs) whose
// default kills the process; memfd_create and mmap are not on it. upload and
// load are refused before anything is made, naming the call and the verdict;
// the target answers as before and has no new mapping.
TEST_F(Seccomp, AllowlistThatKillsRefusesUploadAndLoadAndTheTargetLives) {
  Target t(target_bin("filtered"), {"kill"});
  ASSERT_EQ(t.ask("mode"), "mode=kill");
  const std::string before = maps_without_stack(t);
  const std::string want = fmt::format(
      "PID {}: its seccomp filter would kill the process on memfd_create\\({}, (\\d|{})\\); the call was not made",
      t.pid(), kHex, kHex);
  expect_refused({"upload", P(t), "fix", lp_}, want);
  expect_untouched(t, before);
  expect_refused({"load", P(t), lp_}, want);
  expect_untouched(t, before);
  HsRun l = hotsplice({"list", P(t)});
  EXPECT_EQ(l.code, 0) << l.err;
}

// SystemCallErrorNumber=EPERM shape: memfd_create fails with EPERM. The call
// is not made; the error says EPERM came from the seccomp filter.
TEST_F(Seccomp, ErrnoOnMemfdCreateIsReportedAsTheFiltersAndTheTargetIsFine) {
  Target t(target_bin("filtered"), {"errno"});
  ASSERT_EQ(t.ask("mode"), "mode=errno");
  const std::string before = maps_without_stack(t);
  const std::string want = fmt::format(
      "memfd_create in PID {0} failed: Operation not permitted \\(EPERM from PID {0}'s seccomp filter; the call was "
      "not made\\)",
      t.pid());
  expect_refused({"upload", P(t), "fix", lp_}, want);
  expect_untouched(t, before);
  expect_refused({"load", P(t), lp_}, want);
  expect_untouched(t, before);
}

// A filter that kills on executable memory (mmap or mprotect with
// PROT_EXEC): the payload's mmap is refused, naming it and "kill the
// process". The registry this upload had made goes again: the target has
// exactly the mappings it had, and runs unpatched.
TEST_F(Seccomp, KillOnExecutableMemoryRefusesTheMappingAndTheTargetLives) {
  Target t(target_bin("filtered"), {"noexec"});
  ASSERT_EQ(t.ask("mode"), "mode=noexec");
  const std::string before = maps_without_stack(t);
  const std::string want = fmt::format(
      "PID {}: its seccomp filter would kill the process on mmap\\({}, {}, 5, {}, (\\d|{}), 0\\); the call was not made",
      t.pid(), kHex, kHex, kHex, kHex);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"upload", P(t), "fix", lp_},
                                               std::vector<std::string>{"load", P(t), lp_, "--name", "fix"}}) {
    SCOPED_TRACE(args[0]);
    expect_refused(args, want);
    expect_untouched(t, before);
    EXPECT_EQ(list_json(t)["payloads"].size(), 0u);
  }
}

// systemd's MemoryDenyWriteExecute= shape (mmap asking for write and execute,
// mprotect asking for execute: EPERM): hotsplice maps the image executable
// from the start and only narrows it, so everything works.
TEST_F(Seccomp, SystemdMemoryDenyWriteExecuteStillPatches) {
  Target t(target_bin("filtered"), {"mdwe"});
  ASSERT_EQ(t.ask("mode"), "mode=mdwe");
  expect_full_cycle(t, lp_);
}

// A filter that kills only on ptrace and execve allows everything hotsplice
// makes: load (with its hook), apply, revert, unload work as without it.
TEST_F(Seccomp, FilterKillingOnlyPtraceAndExecveAllowsTheWholeCycle) {
  Target t(target_bin("filtered"), {"lenient"});
  ASSERT_EQ(t.ask("mode"), "mode=lenient");
  expect_full_cycle(t, lp_);
}

// A filter that tests the instruction pointer: calls from outside libc's
// code and the vDSO kill the process. The recovery trampoline's `syscall` is
// outside both, so each call is made from the target's own `syscall` (the
// vDSO's), and the hooks return without the trampoline's getpid.
TEST_F(Seccomp, FilterTestingTheInstructionPointerIsEvaluatedOnTheSyscallActuallyUsed) {
  Target t(target_bin("filtered"), {"pinned"});
  ASSERT_EQ(t.ask("mode"), "mode=pinned");
  expect_full_cycle(t, lp_);
  // The trampoline was made (its calls came from the vDSO) and was there
  // all along: each call was evaluated at the address it would be made from.
  EXPECT_NE(t.maps().find("/memfd:hotsplice-trampoline"), std::string::npos) << t.maps();
}

// Strict mode (SECCOMP_MODE_STRICT) kills on anything but read, write, exit
// and rt_sigreturn: nothing is made, and the message says why.
TEST_F(Seccomp, StrictModeRefusesEveryCall) {
  Target t(target_bin("filtered"), {"strict"});
  ASSERT_EQ(t.ask("mode"), "mode=strict");
  const std::string before = maps_without_stack(t);
  expect_refused({"upload", P(t), "fix", lp_},
                 fmt::format("PID {}: it is in seccomp strict mode, which would kill the thread on memfd_create\\({}, "
                             "(\\d|{})\\); the call was not made",
                             t.pid(), kHex, kHex));
  expect_untouched(t, before);
}

// Filters that cannot be read (PTRACE_SECCOMP_GET_FILTER needs
// CAP_SYS_ADMIN): hotsplice, run as an unprivileged user on a target of the
// same user, refuses rather than guess, naming why; the target is untouched.
TEST_F(Seccomp, FiltersThatCannotBeReadRefuseRatherThanRiskTheProcess) {
  if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "needs root and setpriv";
  const std::string as_nobody =
      "/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all";
  std::vector<std::string> argv;
  std::istringstream words(as_nobody);
  for (std::string w; words >> w;) argv.push_back(w);
  argv.push_back(target_bin("filtered"));
  argv.push_back("lenient");
  Target t(argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()));
  ASSERT_EQ(t.ask("mode"), "mode=lenient");
  const std::string before = maps_without_stack(t);
  const std::string cmd = fmt::format("{} {} upload {} fix {} 2>&1", as_nobody, HS_BIN, t.pid(), lp_);
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  const int status = pclose(f);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_TRUE(std::regex_match(
      out, std::regex(fmt::format("hotsplice: error: PID {0} has seccomp filters that hotsplice cannot read \\(cannot "
                                  "read seccomp filter 0 of thread {0} \\(PTRACE_SECCOMP_GET_FILTER\\): Permission "
                                  "denied\\); memfd_create\\({1}, (\\d|{1})\\) was not made rather than risk the "
                                  "process\n",
                                  t.pid(), kHex))))
      << out;
  expect_untouched(t, before);
}
