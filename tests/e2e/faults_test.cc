// Faults and awkward targets, through the real CLI: a target that dies in the
// middle of an operation, threads that come and go while hotsplice attaches,
// threads blocked in accept()/read(), signals sent while threads are stopped,
// processes that forbid executable memory, and two hotsplice instances on
// one PID. Each case has one clear outcome, asserted exactly.
//
// A stopped (SIGSTOP) or debugger-traced target is in bad_input_test.cc
// (BadProcess.*); the borrowed thread's red zone in process_test.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Payloads built once for the whole file.
class Faults : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    hello_a_ = build("hello_v2.c", target_bin("hello"), "faults_hello_a.lp");
    hello_cum_ = build("cumulative.c", target_bin("hello"), "faults_hello_cum.lp");
    spin_ = build("value_v2.c", target_bin("spin8"), "faults_spin.lp");
    awk_ = build("awkward_v2.c", target_bin("awkward"), "faults_awkward.lp");
  }
  static std::string hello_a_, hello_cum_, spin_, awk_;
};
std::string Faults::hello_a_, Faults::hello_cum_, Faults::spin_, Faults::awk_;

}  // namespace

// HOTSPLICE_FAULT_KILL_TARGET=N: the tool SIGKILLs the target at its N-th
// fault point (and waits until it is dead). Whatever step comes next meets a
// dead process: the tool must say so in one line, exit 1, and not hang.
TEST_F(Faults, TargetKilledInTheMiddleOfEveryOperationIsReportedAndTheToolExits) {
  HS_REQUIRE_FAULT_INJECTION();
  const std::string hello = target_bin("hello"), spin8 = target_bin("spin8");
  std::vector<FaultOp> cases = {
      {"upload", hello, [](Target&) {}, {"upload", "a", hello_a_}},
      {"apply", hello, [&](Target& t) { OK({"upload", P(t), "a", hello_a_}); }, {"apply", "a"}},
      {"revert", hello, [&](Target& t) { OK({"load", P(t), hello_a_, "--name", "a"}); }, {"revert", "a"}},
      {"unload", hello, [&](Target& t) { OK({"upload", P(t), "a", hello_a_}); }, {"unload", "a"}},
      {"replace", hello,
       [&](Target& t) {
         OK({"load", P(t), hello_a_, "--name", "a"});
         OK({"upload", P(t), "cum", hello_cum_});
       },
       {"replace", "cum"}},
      {"load", hello, [](Target&) {}, {"load", hello_a_, "--name", "a"}},
      // Nine threads, eight of them running: threads that die while stopped,
      // while being stopped and while running.
      {"apply-spin8", spin8, [&](Target& t) { OK({"upload", P(t), "v2", spin_}); }, {"apply", "v2"}},
      {"revert-spin8", spin8, [&](Target& t) { OK({"load", P(t), spin_, "--name", "v2"}); }, {"revert", "v2"}},
      {"upload-spin8", spin8, [](Target&) {}, {"upload", "v2", spin_}},
  };
  int runs = 0;
  long long slowest = 0;
  auto check = [&](Target& t, const HsRun& r, const std::string& at) {
    slowest = std::max(slowest, r.ms);
    // apply, revert, replace and unload commit and let the process go in
    // their stop window; a target that dies after that point died after
    // the operation, which succeeded.
    bool finished = at == "apply:committed" || at == "revert:committed" || at == "replace:committed" ||
                    at == "unload:committed";
    if (finished) {
      EXPECT_EQ(r.code, 0) << at << ": " << r.err;
      EXPECT_EQ(r.err, "");
    } else {
      EXPECT_EQ(r.code, 1) << at;
      EXPECT_EQ(r.err, fmt::format("hotsplice: error: process {} exited during the operation\n", t.pid())) << at;
    }
    EXPECT_LT(r.ms, 5000) << "the tool took " << r.ms << " ms to notice";
    // Its threads are let go when the tool exits, just after the tool's own
    // exit is reported: the process is reaped a moment later.
    EXPECT_TRUE(eventually([&] { return !t.alive(); }, std::chrono::seconds(5)));
    runs++;
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<std::string> points;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(c, &points));
    ASSERT_NO_FATAL_FAILURE(at_each_fault_point(c, points, "HOTSPLICE_FAULT_KILL_TARGET", check));
  }
  RecordProperty("runs", runs);
  RecordProperty("slowest_ms", static_cast<int>(slowest));
  fmt::print("target killed at {} fault points; slowest tool exit {} ms\n", runs, slowest);
  EXPECT_GE(runs, 30);
}

// Threads are created and exit all the time while hotsplice seizes, stops and
// resumes the process: every operation succeeds, the behaviour follows, no
// short-lived thread sees a wrong value, and the process lives on.
TEST_F(Faults, ThreadChurnDuringFiftyApplyRevertCycles) {
  Target t(target_bin("awkward"));
  ASSERT_EQ(t.ask("churn"), "churning");
  OK({"upload", P(t), "fix", awk_});
  auto t0 = Clock::now();
  const int cycles = 50;
  for (int i = 0; i < cycles; i++) {
    SCOPED_TRACE("cycle " + std::to_string(i));
    OK({"apply", P(t), "fix"});
    ASSERT_EQ(t.ask("call"), "value=2");
    OK({"revert", P(t), "fix"});
    ASSERT_EQ(t.ask("call"), "value=1");
  }
  long long took = ms_since(t0);
  OK({"unload", P(t), "fix"});
  std::string res = t.ask("churn-stop");
  unsigned long long threads = 0, bad = 1, errors = 1;
  ASSERT_EQ(sscanf(res.c_str(), "churned threads=%llu bad=%llu create-errors=%llu", &threads, &bad, &errors), 3)
      << res;
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(errors, 0u);
  EXPECT_GT(threads, 64u);
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_TRUE(t.alive());
  RecordProperty("cycles", cycles);
  RecordProperty("threads_churned", static_cast<int>(threads));
  RecordProperty("cycles_ms", static_cast<int>(took));
  fmt::print("thread churn: {} apply/revert cycles in {} ms while {} short-lived threads came and went\n", cycles,
             took, threads);
}

// A thread blocked in accept() and one in read() (and the main thread in
// read() on stdin) are stopped, borrowed for remote system calls, and resumed
// again and again: afterwards a connection is accepted and the data read,
// each by the one call the thread made: no EINTR, no lost wake-up.
TEST_F(Faults, ThreadsBlockedInAcceptAndReadCompleteNormallyAfterwards) {
  Target t(target_bin("awkward"));
  int port = 0, pipe_fd = -1;
  std::string blocked = t.ask("block");
  ASSERT_EQ(sscanf(blocked.c_str(), "blocked port=%d pipe=%d", &port, &pipe_fd), 2) << blocked;
  // upload (remote syscalls in the leader), apply, revert, unload (remote
  // syscalls in the newest thread: the one blocked in read()).
  const int cycles = 10;
  for (int i = 0; i < cycles; i++) {
    SCOPED_TRACE("cycle " + std::to_string(i));
    OK({"upload", P(t), "fix", awk_});
    OK({"apply", P(t), "fix"});
    ASSERT_EQ(t.ask("call"), "value=2");
    OK({"revert", P(t), "fix"});
    OK({"unload", P(t), "fix"});
    ASSERT_EQ(t.ask("call"), "value=1");
  }
  // Both are still waiting in their system calls.
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
  const std::string sock_data = "over-tcp", pipe_data = "over-pipe";
  ASSERT_EQ(write(s, sock_data.data(), sock_data.size()), static_cast<ssize_t>(sock_data.size()));
  shutdown(s, SHUT_WR);  // the target reads until EOF (MSG_WAITALL)
  int w = open(fmt::format("/proc/{}/fd/{}", t.pid(), pipe_fd).c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(w, 0) << strerror(errno);
  ASSERT_EQ(write(w, pipe_data.data(), pipe_data.size()), static_cast<ssize_t>(pipe_data.size()));
  close(w);
  EXPECT_EQ(t.ask("results"), "accept=ok got=over-tcp read=ok got=over-pipe");
  close(s);
  EXPECT_TRUE(t.alive());
}

// SIGUSR1 sent to the target while apply/revert run over and over in
// parallel: each one is delivered exactly once. A standard signal sent while
// the same one is still pending merges with it (the kernel's rule, tracer or
// not), so each is sent only once the previous one has been counted.
TEST_F(Faults, SignalsSentWhileApplyRevertRunAreNeitherLostNorDuplicated) {
  Target t(target_bin("awkward"));
  ASSERT_EQ(t.ask("signals"), "counting");
  OK({"upload", P(t), "fix", awk_});
  std::atomic<bool> stop{false};
  std::atomic<int> cycles{0}, failures{0};
  std::string first_failure;
  std::thread loop([&] {
    while (!stop) {
      for (const char* op : {"apply", "revert"}) {
        HsRun r = hotsplice({op, P(t), "fix"});
        if (r.code != 0 && failures++ == 0) first_failure = std::string(op) + ": " + r.err;
      }
      cycles++;
    }
  });
  auto sigs = [&] {
    unsigned long long got = 0, bad = 0;
    sscanf(t.ask("sigs").c_str(), "sigs=%llu bad=%llu", &got, &bad);
    EXPECT_EQ(bad, 0u);
    return got;
  };
  // At least 200 signals, and for at least 30 apply/revert cycles.
  auto t0 = Clock::now();
  unsigned long long n = 0, delivered = 0;
  while ((n < 200 || cycles < 30) && n < 100000) {
    if (kill(t.pid(), SIGUSR1) != 0) {
      ADD_FAILURE() << "kill: " << strerror(errno);
      break;
    }
    n++;
    bool counted = eventually([&] {
      delivered = sigs();
      return delivered >= n;
    });
    if (!counted || delivered != n) {
      ADD_FAILURE() << "signal " << n << ": the target counted " << delivered;
      break;
    }
  }
  stop = true;
  loop.join();
  long long took = ms_since(t0);
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_EQ(sigs(), n);
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_TRUE(t.alive());
  RecordProperty("signals", static_cast<int>(n));
  RecordProperty("apply_revert_cycles", cycles.load());
  fmt::print("{} signals delivered exactly once during {} apply/revert cycles ({} ms)\n", n, cycles.load(), took);
}

// A seccomp filter that fails mmap/mprotect with PROT_EXEC: the payload
// cannot be mapped. One clear line naming the cause (the filter's EPERM: the
// mmap is not even made); nothing is left behind.
TEST_F(Faults, SeccompFilterForbiddingExecutableMemoryIsReported) {
  Target t(target_bin("awkward"));
  ASSERT_EQ(t.ask("seccomp"), "seccomp on");
  ASSERT_EQ(t.ask("probe"), "mmap-rx=Operation not permitted mprotect-x=Operation not permitted");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"upload", P(t), "fix", awk_}, std::vector<std::string>{"load", P(t), awk_}}) {
    SCOPED_TRACE(args[0]);
    HsRun r = hotsplice(args);
    EXPECT_EQ(r.code, 1);
    std::regex want(fmt::format(
        "hotsplice: error: PID {0} refuses executable memory \\(seccomp or MDWE\\): mmap of 0x[0-9a-f]+ bytes at "
        "0x[0-9a-f]+ in PID {0} failed: Operation not permitted \\(EPERM from PID {0}'s seccomp filter; the call "
        "was not made\\)\n",
        t.pid()));
    EXPECT_TRUE(std::regex_match(r.err, want)) << r.err;
    EXPECT_EQ(t.maps().find("hotsplice:fix"), std::string::npos) << t.maps();
    EXPECT_EQ(t.maps().find("hotsplice:faults_awkward"), std::string::npos) << t.maps();
    EXPECT_EQ(t.maps().find("hotsplice-registry"), std::string::npos) << t.maps();
    EXPECT_EQ(list_json(t)["payloads"].size(), 0u);
    EXPECT_EQ(t.ask("call"), "value=1");
  }
  EXPECT_TRUE(t.alive());
}

// A process that refuses every mprotect: the image is mapped and written,
// then narrowing its rodata fails (the filter's EPERM: the mprotect is not
// made). The mapping is removed again and the journal dropped at once (and
// the registry this upload made): no mapping, no payload, nothing to repair.
TEST_F(Faults, MprotectRefusedAfterMappingLeavesNothingBehind) {
  Target t(target_bin("awkward"));
  ASSERT_EQ(t.ask("no-mprotect"), "no-mprotect on");
  ASSERT_EQ(t.ask("probe"), "mmap-rx=ok mprotect-x=Operation not permitted");
  HsRun r = hotsplice({"upload", P(t), "fix", awk_});
  EXPECT_EQ(r.code, 1);
  std::regex want(fmt::format(
      "hotsplice: error: mprotect of 0x[0-9a-f]+ bytes at 0x[0-9a-f]+ to 0x1 in PID {0} failed: Operation not "
      "permitted \\(EPERM from PID {0}'s seccomp filter; the call was not made\\)\n",
      t.pid()));
  EXPECT_TRUE(std::regex_match(r.err, want)) << r.err;
  EXPECT_EQ(t.maps().find("hotsplice:fix"), std::string::npos) << t.maps();
  EXPECT_EQ(t.maps().find("hotsplice-registry"), std::string::npos) << t.maps();
  HsRun l = hotsplice({"list", P(t), "--json"});
  EXPECT_EQ(l.code, 0);
  EXPECT_EQ(l.err, "") << "nothing should be left to repair";
  EXPECT_EQ(json::parse(l.out)["payloads"].size(), 0u);
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_TRUE(t.alive());
}

// PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN): memory may not become executable
// later, but new memory may be mapped executable. hotsplice maps the image RX
// from the start and narrows the other regions, so the patch works.
TEST_F(Faults, MdweTargetIsPatchedWithTextMappedExecutableFromTheStart) {
  Target t(target_bin("awkward"));
  ASSERT_EQ(t.ask("mdwe"), "mdwe on");
  ASSERT_EQ(t.ask("probe"), "mmap-rx=ok mprotect-x=Permission denied");
  OK({"load", P(t), awk_, "--name", "fix"});
  EXPECT_EQ(t.ask("call"), "value=2");
  // Text RX, rodata R, data RW (the unwind block, payload/eh_frame.h);
  // nothing writable and executable.
  std::vector<std::string> perms;
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);)
    if (line.find("/memfd:hotsplice:fix") != std::string::npos) perms.push_back(line.substr(line.find(' ') + 1, 4));
  EXPECT_EQ(perms, (std::vector<std::string>{"r-xp", "r--p", "rw-p"})) << t.maps();
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "value=1");
  OK({"unload", P(t), "fix"});
  EXPECT_EQ(t.maps().find("hotsplice:fix"), std::string::npos);
  EXPECT_TRUE(t.alive());
}

// Two hotsplice instances on one PID: the first holds it (its apply retries
// while a thread is parked inside value()), the second gets "busy", exit 2,
// and changes nothing. Once the thread leaves, the first one proceeds.
TEST_F(Faults, SecondInstanceOnTheSamePidIsBusy) {
  Target t(target_bin("awkward"));
  OK({"upload", P(t), "fix", awk_});
  std::string parked = t.ask("park");
  ASSERT_EQ(parked.rfind("parked tid=", 0), 0u) << parked;
  HsRun first;
  std::thread first_run([&] { first = hotsplice({"apply", P(t), "fix", "--timeout", "20s"}); });
  // The first instance holds the process once it traces it.
  std::string tracer;
  EXPECT_TRUE(eventually([&] {
    tracer = hs::test::status_field(t.pid(), "TracerPid");
    return !tracer.empty() && tracer != "0";
  }));  // (no ASSERT while first_run runs: it must be joined)
  HsRun second = hotsplice({"apply", P(t), "fix"});
  EXPECT_EQ(second.code, 2);
  EXPECT_EQ(second.err,
            fmt::format("hotsplice: error: PID {} is busy: another hotsplice (PID {}) is working on it\n", t.pid(),
                        tracer));
  HsRun other = hotsplice({"revert", P(t), "fix"});
  EXPECT_EQ(other.code, 2);
  EXPECT_EQ(other.err, second.err);
  // `list` does not take the lock: it shows the operation in progress (once
  // the first one has journaled its apply).
  EXPECT_TRUE(eventually([&] { return list_json(t)["in_progress"] == true; }));
  // Still unpatched: the first one is waiting for the parked thread.
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_EQ(t.ask("release"), "released value=1");
  first_run.join();
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(t.ask("call"), "value=2");
  EXPECT_EQ(list_json(t)["payloads"][0]["state"], "APPLIED");
  EXPECT_TRUE(t.alive());
}

// Two tools racing on one PID again and again (issue 9, "busy is busy"): the
// loser must always be told busy (exit 2) when the other tracer is, or was a
// moment ago, a hotsplice, never "already traced" or "not permitted" (exit
// 1), which a retrying script would take as final. An apply and a revert of
// one payload race; a State answer ("not APPLIED", "already APPLIED") is
// the legitimate outcome of losing cleanly and then running second.
TEST_F(Faults, TwoToolsRacingOnOnePidAreBusyNeverRefused) {
  Target t(target_bin("hello"));
  OK({"upload", P(t), "a", hello_a_});
  int busy = 0;
  for (int i = 0; i < 300; i++) {
    HsRun on, off;
    std::thread racer([&] { off = hotsplice({"revert", P(t), "a"}); });
    on = hotsplice({"apply", P(t), "a"});
    racer.join();
    for (const HsRun* r : {&on, &off}) {
      if (r->code == 0) continue;
      const std::string line = r->err_line();
      if (r->code == 2) {
        busy++;
        EXPECT_NE(line.find(" is busy: "), std::string::npos) << line;
      } else {
        EXPECT_EQ(r->code, 1) << line;
        EXPECT_TRUE(line.ends_with("is not APPLIED") || line.ends_with("is already APPLIED"))
            << "round " << i << ": " << line;
      }
    }
    if (list_json(t)["payloads"][0]["state"] == "APPLIED") OK({"revert", P(t), "a"});
  }
  EXPECT_TRUE(t.alive());
  RecordProperty("busy_answers", busy);
}
