// The guardian (src/cli/guardian.h; issue 9, defect 5): a tool killed in the
// middle of an operation leaves the target repaired within milliseconds by
// its guardian, with no other hotsplice run; after a normal run (or an
// error) the guardian is gone as soon as the tool is. The kill at every
// fault point of every operation is CrashSafety.* (crash_test.cc).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

uint64_t addr_of(const json& v) { return std::stoull(v.get<std::string>(), nullptr, 16); }

}  // namespace

// A payload replacing hello() and world(), the tool killed right after its
// first write (hello's entry jump): half-patched (hello new, world old)
// until the guardian rolls it back, with no other hotsplice run.
TEST(Guardian, TwoFunctionApplyKilledBetweenItsWritesIsRolledBackWithoutAnotherRun) {
  HS_REQUIRE_FAULT_INJECTION();
  const std::string bin = target_bin("hello");
  const std::string cum = build("cumulative.c", bin, "guardian_cum.lp");
  FaultOp op{"apply-two", bin, [&](Target& t) { OK({"upload", P(t), "cum", cum}); }, {"apply", "cum"}};
  std::vector<std::string> points;
  ASSERT_NO_FATAL_FAILURE(list_fault_points(op, &points));
  // apply, write (hello), write (world), write (call sites) ..., apply:committed
  const auto first_write = std::find(points.begin(), points.end(), "write");
  ASSERT_NE(first_write, points.end());
  ASSERT_GE(std::count(points.begin(), points.end(), "write"), 2) << "two functions, at least two writes";
  const long step = first_write - points.begin() + 1;

  Target t(bin);
  OK({"upload", P(t), "cum", cum});
  json l = list_json(t);
  const json* p = find_payload(l, "cum");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ((*p)["funcs"].size(), 2u);
  std::vector<std::pair<uint64_t, hs::Bytes>> sites;
  for (const auto& f : (*p)["funcs"]) sites.emplace_back(addr_of(f["old_addr"]), t.read_memory(addr_of(f["old_addr"]), 5));
  EXPECT_EQ(hello_world(t), std::make_pair(1, 10));

  HsRun r = hotsplice({"apply", P(t), "cum"}, {fmt::format("HOTSPLICE_FAULT_STEP={}", step), "HOTSPLICE_FAULT_STAMP=1"});
  ASSERT_EQ(r.code, 128 + 9) << r.err;
  ASSERT_GE(r.guardian_us, 0) << r.err;
  const long long us = kill_to_guardian_exit_us(r);
  EXPECT_GE(us, 0) << r.err;
  EXPECT_EQ(guardian_line(r), fmt::format("hotsplice: guardian: PID {0}: the tool (PID {1}) died; repaired: rolled "
                                          "back an interrupted apply of 'cum' (tool PID {1})",
                                          t.pid(), r.pid))
      << r.err;
  // Every byte back, both functions old, with no other invocation.
  for (const auto& [at, bytes] : sites) EXPECT_EQ(t.read_memory(at, 5), bytes) << std::hex << at;
  EXPECT_EQ(hello_world(t), std::make_pair(1, 10));
  fmt::print("guardian: two-function apply killed between its writes: rolled back {:.2f} ms after the kill\n",
             static_cast<double>(us) / 1000.0);
  EXPECT_LT(us, 2'000'000);
  // The registry agrees and has nothing left to repair; the payload works.
  std::string notes;
  l = list_json(t, &notes);
  EXPECT_EQ(notes, "");
  EXPECT_EQ(state_of(l, "cum"), "CHECKED");
  OK({"apply", P(t), "cum"});
  EXPECT_EQ(hello_world(t), std::make_pair(4, 40));
}

// A tool that finishes by itself, successfully or not, tells its guardian,
// which exits at once and says nothing: nothing stays behind holding the
// tool's stderr, and the caller does not wait for it.
TEST(Guardian, GoneAsSoonAsTheToolAfterSuccessOrError) {
  const std::string bin = target_bin("hello");
  const std::string a = build("hello_v2.c", bin, "guardian_a.lp");
  Target t(bin);
  long long most = 0, total = 0;
  int runs = 0;
  auto run = [&](const std::vector<std::string>& args, int code) {
    HsRun r = hotsplice(args);
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(guardian_line(r), "") << r.err;
    ASSERT_GE(r.guardian_us, 0) << "the guardian outlived the tool by 30 s";
    most = std::max(most, r.guardian_us);
    total += r.guardian_us;
    runs++;
  };
  ASSERT_NO_FATAL_FAILURE(run({"upload", P(t), "a", a}, 0));
  for (int i = 0; i < 10; i++) {
    ASSERT_NO_FATAL_FAILURE(run({"apply", P(t), "a"}, 0));
    ASSERT_NO_FATAL_FAILURE(run({"revert", P(t), "a"}, 0));
  }
  ASSERT_NO_FATAL_FAILURE(run({"apply", P(t), "nosuch"}, 1));
  ASSERT_NO_FATAL_FAILURE(run({"unload", P(t), "a"}, 0));
  EXPECT_EQ(hello_world(t), std::make_pair(1, 10));
  fmt::print("guardian: after {} normal runs, gone {:.3f} ms (mean) / {:.3f} ms (most) after the tool\n", runs,
             static_cast<double>(total) / runs / 1000.0, static_cast<double>(most) / 1000.0);
  EXPECT_LT(most, 500'000);
}

// Ctrl-C reaches the terminal's whole process group: it kills the tool,
// which holds the journal of an apply while it waits for a thread to leave
// the function, but not the guardian, which rolls the apply back.
TEST(Guardian, CtrlCToTheProcessGroupKillsTheToolAndTheGuardianRepairs) {
  const std::string bin = target_bin("park");
  const std::string lp = build("park_v2.c", bin, "guardian_park.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  const std::string parked = t.ask("park parked");
  ASSERT_TRUE(parked.starts_with("parked ")) << parked;

  int errp[2];
  ASSERT_EQ(::pipe2(errp, O_CLOEXEC), 0);
  const pid_t tool = ::fork();
  if (tool == 0) {
    ::setpgid(0, 0);  // its own group, as a shell's job
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(errp[1], 2);
    const std::string pid = P(t);
    ::execl(HS_BIN, HS_BIN, "apply", pid.c_str(), "v2", "--timeout", "60s", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(errp[1]);
  ::setpgid(tool, tool);
  // It holds the process and has journaled the apply when `list` says an
  // operation is in progress.
  ASSERT_TRUE(eventually([&] {
    HsRun r = hotsplice({"list", P(t), "--json"});
    return r.code == 0 && json::parse(r.out).value("in_progress", false);
  }));
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(-tool, SIGINT), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(tool, &st, 0), tool);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << st;
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(errp[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(errp[0]);
  const long long ms = ms_since(killed);
  EXPECT_EQ(err, fmt::format("hotsplice: guardian: PID {0}: the tool (PID {1}) died; repaired: rolled back an "
                             "interrupted apply of 'v2' (tool PID {1})\n",
                             t.pid(), tool));
  EXPECT_LT(ms, 2000);
  std::string notes;
  json l = list_json(t, &notes);
  EXPECT_EQ(notes, "");
  EXPECT_EQ(state_of(l, "v2"), "CHECKED");
  EXPECT_EQ(t.ask("release"), "released parked=1");
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}
