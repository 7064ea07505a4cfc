// Stress, bounded in time: many thousands of operations on a target whose 8
// threads call the patched function in a tight loop. Spawning the CLI for
// each would measure fork/exec, so these tests link the engine and drive
// hs::Session in-process: real ptrace, real payload, the same code the CLI
// runs after parsing its arguments.
//
// A Session is opened for every block of kCyclesPerSession cycles and closed
// after it: each open seizes all 9 threads (the lock) and reads the registry
// back from the target, each close detaches, so the hot path (operations on
// a held process) and the attach/detach path are both exercised thousands
// of times, while the stop windows, not the attaching, dominate the run.
//
// Figures (cycles, calls, failures, RSS and mappings before/after, time) are
// recorded with RecordProperty and printed.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "engine/session.h"
#include "harness.h"
#include "support/assert_ok.h"

using namespace hs;
using namespace hs::e2e;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kCyclesPerSession = 100;

struct Stats {
  unsigned long long calls = 0, bad = 0;
  int last = 0;
};

Stats stats(Target& t) {
  Stats s;
  std::string line = t.ask("stats");
  EXPECT_EQ(sscanf(line.c_str(), "calls=%llu bad=%llu last=%d", &s.calls, &s.bad, &s.last), 3) << line;
  return s;
}

// Thread 0 reports its latest value(): wait until it is `want`.
bool last_becomes(Target& t, int want) {
  for (int i = 0; i < 20000; i++) {
    if (stats(t).last == want) return true;
    usleep(500);
  }
  return false;
}

long vm_rss_kib(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int map_count(const Target& t) {
  std::istringstream in(t.maps());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n++;
  return n;
}

int env_int(const char* name, int dflt) {
  const char* s = std::getenv(name);
  return s ? std::atoi(s) : dflt;
}

}  // namespace

// 10,000 apply/revert cycles while 8 threads call value() without pause:
// every operation succeeds (within the default 1 s activeness timeout), no
// call ever returns anything but 1 or 2, the process survives, and after the
// run value() is the original again.
TEST(Stress, TenThousandApplyRevertCyclesUnderEightSpinningThreads) {
  const int cycles = env_int("HS_STRESS_CYCLES", 10000);
  // A hard bound for CI: about 0.5 ms per operation is expected, 15 ms would
  // be far too slow (the budget is checked after each session's block).
  const long long budget_ms = 1000LL * env_int("HS_STRESS_BUDGET_S", 300);
  std::string lp = build("value_v2.c", target_bin("spin8"), "stress_v2.lp");
  Target t(target_bin("spin8"));
  {
    auto s = Session::open(t.pid());
    ASSERT_OK(s);
    ASSERT_OK((*s)->upload("v2", lp));
  }
  Stats before = stats(t);
  auto t0 = Clock::now();
  int failures = 0, done = 0;
  std::string first_failure;
  for (int block = 0; done < cycles && failures == 0; block++) {
    auto s = Session::open(t.pid());
    ASSERT_OK(s);
    for (int i = 0; i < kCyclesPerSession && done < cycles; i++, done++) {
      for (bool apply : {true, false}) {
        auto st = apply ? (*s)->apply("v2") : (*s)->revert("v2");
        if (!st && failures++ == 0)
          first_failure = fmt::format("cycle {} {}: {}", done, apply ? "apply" : "revert", st.error().message());
      }
    }
    ASSERT_OK((*s)->close());
    if (ms_since(t0) > budget_ms) {
      ADD_FAILURE() << fmt::format("only {} of {} cycles in {} s ({:.2f} ms per operation): the stop window is slow",
                                   done, cycles, budget_ms / 1000, ms_since(t0) / (2.0 * done));
      break;
    }
    // Now and then, check that the switch really happens (thread 0's view).
    if (block % 20 == 0 && failures == 0) {
      auto s2 = Session::open(t.pid());
      ASSERT_OK(s2);
      ASSERT_OK((*s2)->apply("v2"));
      ASSERT_OK((*s2)->close());
      EXPECT_TRUE(last_becomes(t, 2));
      auto s3 = Session::open(t.pid());
      ASSERT_OK(s3);
      ASSERT_OK((*s3)->revert("v2"));
      ASSERT_OK((*s3)->close());
      EXPECT_TRUE(last_becomes(t, 1));
    }
  }
  long long took = ms_since(t0);
  Stats after = stats(t);
  EXPECT_EQ(failures, 0) << first_failure;
  EXPECT_EQ(done, cycles);
  EXPECT_EQ(after.bad, 0u) << "calls returned something other than 1 or 2";
  EXPECT_GT(after.calls, before.calls);
  EXPECT_TRUE(last_becomes(t, 1));
  EXPECT_TRUE(t.alive());

  RecordProperty("cycles", done);
  RecordProperty("operations", 2 * done);
  RecordProperty("failures", failures);
  RecordProperty("calls", std::to_string(after.calls - before.calls));
  RecordProperty("bad_results", std::to_string(after.bad));
  RecordProperty("duration_ms", std::to_string(took));
  fmt::print(
      "stress: {} apply/revert cycles ({} sessions) in {} ms ({:.2f} ms per operation), {} failures; "
      "{} calls of value() meanwhile, {} bad\n",
      done, (done + kCyclesPerSession - 1) / kCyclesPerSession, took, took / (2.0 * std::max(done, 1)), failures,
      after.calls - before.calls, after.bad);
}

// 1,000 upload/unload cycles: the target's mappings and resident memory come
// back to where they were (no leaked mapping, memfd or registry growth).
// Measured after a warm-up (the registry's pages are touched by the first
// commits), then every 100 cycles.
TEST(Stress, ThousandUploadUnloadCyclesLeaveNoMappingsOrMemoryBehind) {
  const int cycles = env_int("HS_STRESS_UPLOADS", 1000);
  const int warmup = 20;
  std::string lp = build("value_v2.c", target_bin("spin8"), "stress_upload.lp");
  Target t(target_bin("spin8"));
  int maps_start = map_count(t);
  long rss_start = vm_rss_kib(t.pid());
  int maps_base = 0;
  long rss_base = 0;
  std::vector<long> rss_samples;
  std::vector<int> map_samples;
  auto t0 = Clock::now();
  int failures = 0;
  std::string first_failure;
  for (int done = 0; done < cycles && failures == 0;) {
    auto s = Session::open(t.pid());
    ASSERT_OK(s);
    for (int i = 0; i < kCyclesPerSession && done < cycles; i++, done++) {
      auto st = (*s)->upload("v2", lp);
      if (st) st = (*s)->unload("v2");
      if (!st && failures++ == 0) first_failure = fmt::format("cycle {}: {}", done, st.error().message());
      if (done + 1 == warmup) {
        maps_base = map_count(t);
        rss_base = vm_rss_kib(t.pid());
      }
    }
    ASSERT_OK((*s)->close());
    rss_samples.push_back(vm_rss_kib(t.pid()));
    map_samples.push_back(map_count(t));
  }
  long long took = ms_since(t0);
  EXPECT_EQ(failures, 0) << first_failure;
  ASSERT_FALSE(rss_samples.empty());
  int maps_end = map_samples.back();
  long rss_end = rss_samples.back();
  // Every payload mapping is gone: only the registry was added for good.
  EXPECT_EQ(maps_end, maps_base) << t.maps();
  EXPECT_EQ(t.maps().find("hotsplice:v2"), std::string::npos);
  for (int m : map_samples) EXPECT_EQ(m, maps_base);
  // Resident memory: no trend. A leak of even one page per cycle would add
  // 4 MiB; allow 256 KiB of noise (stacks, allocator, page cache).
  EXPECT_LE(rss_end, rss_base + 256) << "VmRSS grew from " << rss_base << " to " << rss_end << " KiB";
  long rss_max = *std::max_element(rss_samples.begin(), rss_samples.end());
  EXPECT_LE(rss_max, rss_base + 256);
  EXPECT_EQ(stats(t).bad, 0u);
  EXPECT_TRUE(t.alive());

  std::string trend;
  for (long r : rss_samples) trend += fmt::format("{}{}", trend.empty() ? "" : ",", r);
  RecordProperty("cycles", cycles);
  RecordProperty("failures", failures);
  RecordProperty("maps_start", maps_start);
  RecordProperty("maps_after_warmup", maps_base);
  RecordProperty("maps_end", maps_end);
  RecordProperty("rss_kib_start", std::to_string(rss_start));
  RecordProperty("rss_kib_after_warmup", std::to_string(rss_base));
  RecordProperty("rss_kib_end", std::to_string(rss_end));
  RecordProperty("rss_kib_every_100", trend);
  RecordProperty("duration_ms", std::to_string(took));
  fmt::print(
      "stress: {} upload/unload cycles in {} ms, {} failures; mappings {} at start, {} after {} cycles, {} at end; "
      "VmRSS {} KiB at start, {} KiB after {} cycles, {} KiB at end (every 100: {})\n",
      cycles, took, failures, maps_start, maps_base, warmup, maps_end, rss_start, rss_base, warmup, rss_end, trend);
}
