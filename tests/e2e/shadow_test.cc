// End-to-end: shadow variables (include/hotsplice/shadow.h) and data changed
// at apply / put back at revert, in a real multi-threaded target
// (targets/shadow_server.c) with payloads built from patches/shadow_*.c.
// Besides what the target answers, the tests read the table itself: the
// "hotsplice-shadow" mapping in /proc/PID/maps, its header through
// /proc/PID/mem.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <hotsplice/livepatch.h>

#include "harness.h"

using namespace hs::e2e;

namespace {

// The table's mapping in process `pid`: its start, or nullopt; how many
// there are.
std::optional<uint64_t> table_addr(const std::string& pid, int* count = nullptr) {
  std::ifstream maps("/proc/" + pid + "/maps");
  std::string line;
  std::optional<uint64_t> at;
  int n = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:hotsplice-shadow (deleted)") == std::string::npos) continue;
    n++;
    at = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    EXPECT_NE(line.find(" rw-p "), std::string::npos) << line;
  }
  if (count) *count = n;
  return at;
}
std::optional<uint64_t> table_addr(const Target& t, int* count = nullptr) { return table_addr(P(t), count); }

// The table's header as process `pid` holds it.
hotsplice_shadow_root read_root(const std::string& pid) {
  hotsplice_shadow_root r{};
  auto at = table_addr(pid);
  EXPECT_TRUE(at.has_value()) << "no hotsplice-shadow mapping in " << pid;
  if (!at) return r;
  int fd = open(("/proc/" + pid + "/mem").c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(pread(fd, &r, offsetof(hotsplice_shadow_root, buckets), static_cast<off_t>(*at)),
            static_cast<ssize_t>(offsetof(hotsplice_shadow_root, buckets)));
  close(fd);
  return r;
}
hotsplice_shadow_root read_root(const Target& t) { return read_root(P(t)); }

void write_lock_word(const Target& t, uint32_t v) {
  auto at = table_addr(t);
  ASSERT_TRUE(at.has_value());
  int fd = open(("/proc/" + P(t) + "/mem").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(pwrite(fd, &v, sizeof v, static_cast<off_t>(*at + offsetof(hotsplice_shadow_root, lock))),
            static_cast<ssize_t>(sizeof v));
  close(fd);
}

std::string stats(long made, long retired, int limit, const char* greeting = "hello") {
  return "made=" + std::to_string(made) + " retired=" + std::to_string(retired) + " limit=" + std::to_string(limit) +
         " greeting=" + greeting;
}

}  // namespace

// The per-connection counter lives on through a replace by the cumulative
// payload and the unload of the payload that made it, and is freed (the
// destructor run for each) when that cumulative payload is reverted.
TEST(Shadow, CounterSurvivesReplaceAndUnloadAndIsFreedOnRevert) {
  const std::string bin = target_bin("shadow_server");
  const std::string v1 = build("shadow_v1.c", bin, "shadow_v1.lp");
  const std::string v2 = build("shadow_v2.c", bin, "shadow_v2.lp");
  Target t(bin);
  expect_answers(t, {{"req 3", "conn 3 v0"}, {"stats", stats(0, 0, 16)}});
  EXPECT_FALSE(table_addr(t)) << "no table before a payload needs one";

  OK({"upload", P(t), "v1", v1});
  EXPECT_TRUE(table_addr(t)) << "made at the upload of the first payload that uses it";
  OK({"apply", P(t), "v1"});
  expect_answers(t, {{"req 3", "conn 3 n=1 v1"},
                     {"req 3", "conn 3 n=2 v1"},
                     {"req 3", "conn 3 n=3 v1"},
                     {"req 5", "conn 5 n=1 v1"},
                     {"stats", stats(2, 0, 64), "two shadows made; v1's apply hook set the limit"}});
  hotsplice_shadow_root r = read_root(t);
  EXPECT_EQ(r.magic, HOTSPLICE_SHADOW_MAGIC);
  EXPECT_EQ(r.live, 2u);
  EXPECT_EQ(r.lock, 0u);

  OK({"upload", P(t), "v2", v2});
  OK({"replace", P(t), "v2"});
  expect_answers(t, {{"req 3", "conn 3 n=4 v2", "the count goes on"},
                     {"req 5", "conn 5 n=2 v2"},
                     {"stats", stats(2, 0, 16), "v1's revert hook put the limit back and freed nothing"}});
  EXPECT_EQ(read_root(t).live, 2u);

  OK({"unload", P(t), "v1"});
  expect_answers(t, {{"req 3", "conn 3 n=5 v2", "the payload that made the shadows is gone, they are not"},
                     {"req 7", "conn 7 n=1 v2"}});
  int maps = 0;
  table_addr(t, &maps);
  EXPECT_EQ(maps, 1);

  OK({"revert", P(t), "v2"});
  expect_answers(t, {{"req 3", "conn 3 v0"},
                     {"stats", stats(3, 5 + 2 + 1, 16), "the destructor ran for each shadow, with its count"}});
  r = read_root(t);
  EXPECT_EQ(r.live, 0u);
  EXPECT_EQ(r.allocated, 3u);
  EXPECT_EQ(r.freed, 3u);

  OK({"apply", P(t), "v2"});
  expect_answers(t, {{"req 3", "conn 3 n=1 v2", "freed: a new shadow"}, {"stats", stats(4, 8, 16)}});
  OK({"revert", P(t), "v2"});
  OK({"unload", P(t), "v2"});
  EXPECT_EQ(read_root(t).live, 0u);
  EXPECT_TRUE(table_addr(t)) << "the table stays for the next payload";
}

// Eight worker threads handle every connection at once, from the first
// request on: get_or_alloc gives each connection exactly one shadow (one
// constructor run) and no request is lost.
TEST(Shadow, ConcurrentGetOrAllocMakesOneShadowPerObject) {
  const std::string bin = target_bin("shadow_server");
  const std::string v1 = build("shadow_v1.c", bin, "shadow_v1_storm.lp");
  Target t(bin);
  auto storm_ms = [&t] {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(t.ask("storm 200"), "storm done");
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const double plain_ms = storm_ms();
  OK({"load", P(t), v1});
  for (int round = 1; round <= 3; round++) {
    const double ms = storm_ms();
    if (round == 3)
      printf("storm of 25600 requests (8 threads): %.1f ms unpatched, %.1f ms with a shadow counter\n", plain_ms, ms);
    hotsplice_shadow_root r = read_root(t);
    EXPECT_EQ(r.live, 16u);
    EXPECT_EQ(r.allocated, 16u);
    EXPECT_EQ(r.lock, 0u);
  }
  EXPECT_EQ(t.ask("stats"), stats(16, 0, 64)) << "one constructor run per connection";
  for (int i = 0; i < 16; i++)
    EXPECT_EQ(t.ask("req " + std::to_string(i)), "conn " + std::to_string(i) + " n=4801 v1")
        << "3 storms x 8 threads x 200 rounds, then this request";
  EXPECT_FALSE(HasFailure()) << "(the counts above)";
  OK({"revert", P(t), "shadow_v1_storm"});
  EXPECT_EQ(t.ask("stats"), stats(16, 16 * 4801, 16));
  EXPECT_EQ(read_root(t).live, 0u);
}

// The revert hook runs with every thread stopped, so it never waits for the
// table's lock: held (here written into the target as a stopped holder
// would leave it), the hook returns EBUSY and the revert is rolled back,
// shadows and patch intact; once free, the revert goes through.
TEST(Shadow, RevertWhileTheTableIsLockedIsRolledBack) {
  const std::string bin = target_bin("shadow_server");
  const std::string v2 = build("shadow_v2.c", bin, "shadow_v2_locked.lp");
  Target t(bin);
  OK({"load", P(t), v2});
  EXPECT_EQ(t.ask("req 1"), "conn 1 n=1 v2");
  write_lock_word(t, 1);
  expect_error({"revert", P(t), "shadow_v2_locked"},
               "hotsplice: error: payload 'shadow_v2_locked': revert hook 'hotsplice_shadow_on_revert_' returned 16; revert "
               "rolled back");
  EXPECT_EQ(state_of(t, "shadow_v2_locked"), "APPLIED");
  EXPECT_EQ(read_root(t).live, 1u);
  write_lock_word(t, 0);
  EXPECT_EQ(t.ask("req 1"), "conn 1 n=2 v2");
  OK({"revert", P(t), "shadow_v2_locked"});
  EXPECT_EQ(t.ask("stats"), stats(1, 2, 16));
}

// HOTSPLICE_DATA_CHANGE + HOTSPLICE_DATA_HOOKS: the target's variables hold
// the new values while the payload is applied and the old ones after revert.
TEST(ShadowData, VariablesChangeAtApplyAndComeBackAtRevert) {
  const std::string bin = target_bin("shadow_server");
  const std::string lp = build("shadow_data.c", bin, "shadow_data.lp");
  Target t(bin);
  OK({"upload", P(t), "data", lp});
  EXPECT_EQ(t.ask("stats"), stats(0, 0, 16)) << "nothing changes at upload";
  OK({"apply", P(t), "data"});
  EXPECT_EQ(t.ask("stats"), stats(0, 0, 64, "welcome"));
  OK({"revert", P(t), "data"});
  EXPECT_EQ(t.ask("stats"), stats(0, 0, 16, "hello"));
  OK({"apply", P(t), "data"});
  EXPECT_EQ(t.ask("stats"), stats(0, 0, 64, "welcome"));
  OK({"revert", P(t), "data"});
  OK({"unload", P(t), "data"});
  EXPECT_EQ(t.ask("stats"), stats(0, 0, 16, "hello"));
  EXPECT_FALSE(table_addr(t)) << "a payload that uses no shadow makes no table";
}

// A payload built for another layout of the table is refused at upload,
// the target untouched (no table made).
TEST(Shadow, PayloadForAnotherTableLayoutIsRefused) {
  const std::string bin = target_bin("shadow_server");
  const std::string lp = build("shadow_oldabi.c", bin, "shadow_oldabi.lp");
  Target t(bin);
  expect_error({"upload", P(t), "old", lp},
               "hotsplice: error: " + lp +
                   ": section [index 6] '.rela.text.handle_request_other': symbol 'hotsplice_shadow_root_v2': "
                   "the payload was built for another layout of the "
                   "shadow-variable table; this hotsplice provides 'hotsplice_shadow_root_v1'");
  expect_absent(t, "old");
  EXPECT_FALSE(table_addr(t));
  EXPECT_EQ(t.ask("req 0"), "conn 0 v0");
}

// A mapping of the table's name that hotsplice did not make (here a page
// the target mapped itself) is not taken for the table: the upload is
// refused, naming it, and nothing is written there.
TEST(Shadow, AMappingNamedLikeTheTableButNotItIsRefused) {
  const std::string bin = target_bin("shadow_server");
  const std::string lp = build("shadow_v2.c", bin, "shadow_v2_squat.lp");
  Target t(bin);
  const std::string squat = t.ask("squat 1");
  ASSERT_EQ(squat.rfind("squat 0x", 0), 0u) << squat;
  const std::string at = squat.substr(6);
  expect_error({"upload", P(t), "v2", lp},
               "hotsplice: error: " + lp + ": section [index 10] '.rela.text.hotsplice_shadow_on_revert_': shadow-variable table of PID " + P(t) +
                   " at " + at + " is corrupt: a mapping of 0x1000 bytes, rw-, expected 0x3000 bytes, rw-");
  expect_absent(t, "v2");
  EXPECT_EQ(t.ask("req 2"), "conn 2 v0");
}

// A table mapping whose header is still zero is what a tool killed between
// the mmap and the header write leaves: the next upload that needs the
// table writes the header and uses it (no second mapping).
TEST(Shadow, ATableLeftWithoutItsHeaderIsFinished) {
  const std::string bin = target_bin("shadow_server");
  const std::string lp = build("shadow_v2.c", bin, "shadow_v2_unfinished.lp");
  Target t(bin);
  const std::string squat = t.ask("squat 3");
  ASSERT_EQ(squat.rfind("squat 0x", 0), 0u) << squat;
  const uint64_t at = std::stoull(squat.substr(6), nullptr, 16);
  EXPECT_EQ(read_root(t).magic, 0u);
  OK({"load", P(t), lp});
  int maps = 0;
  EXPECT_EQ(table_addr(t, &maps), at);
  EXPECT_EQ(maps, 1);
  EXPECT_EQ(read_root(t).magic, HOTSPLICE_SHADOW_MAGIC);
  EXPECT_EQ(t.ask("req 4"), "conn 4 n=1 v2");
  EXPECT_EQ(read_root(t).live, 1u);
}

// A fork copies the table with the heap: a worker forked from a patched
// pre-forking master goes on from the master's count, each process then
// counts alone, and a revert in the worker frees the worker's shadow only.
TEST(Shadow, ForkedWorkerHasItsOwnCopy) {
  const std::string lp = build("shadow_fork.c", target_bin("prefork"), "shadow_fork.lp");
  Target m(target_bin("prefork"));
  OK({"load", P(m), lp, "--name", "count"});
  EXPECT_EQ(m.ask("call"), "answer=1");
  EXPECT_EQ(m.ask("call"), "answer=2");
  const std::string forked = m.ask("fork");
  int idx = -1, wpid = 0;
  ASSERT_EQ(sscanf(forked.c_str(), "worker %d pid=%d", &idx, &wpid), 2) << forked;
  const std::string W = std::to_string(wpid), w = "worker 0 pid=" + W + " answer=";
  EXPECT_EQ(m.ask("ask 0"), w + "3") << "the worker's copy goes on from the master's count";
  EXPECT_EQ(m.ask("call"), "answer=3") << "the master counts alone";
  EXPECT_EQ(m.ask("ask 0"), w + "4");
  EXPECT_NE(table_addr(W), std::nullopt);
  EXPECT_EQ(read_root(W).live, 1u);
  OK({"revert", W, "count"});
  EXPECT_EQ(m.ask("ask 0"), w + "1") << "the original answer()";
  EXPECT_EQ(read_root(W).live, 0u);
  EXPECT_EQ(read_root(m).live, 1u);
  EXPECT_EQ(m.ask("call"), "answer=4");
}
