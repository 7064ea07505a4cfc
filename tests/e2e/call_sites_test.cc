// Call-site redirection (engine/call_sites.h): direct calls and tail calls
// to a patched function are pointed at its replacement, everything else
// keeps going through the entry jump, and every byte comes back on revert.
// The target's text is read from /proc/PID/mem and compared byte by byte.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstring>
#include <optional>
#include <vector>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;

namespace {

struct Addrs {
  uint64_t scale = 0, decoy = 0, text_begin = 0, text_end = 0;
};

Addrs addrs(Target& t) {
  Addrs a;
  const std::string line = t.ask("addrs");
  EXPECT_EQ(sscanf(line.c_str(), "scale=%" SCNx64 " decoy=%" SCNx64 " text=%" SCNx64 "-%" SCNx64, &a.scale,
                   &a.decoy, &a.text_begin, &a.text_end),
            4)
      << line;
  return a;
}

std::vector<uint8_t> read_text(const Target& t, const Addrs& a) {
  return t.read_memory(a.text_begin, a.text_end - a.text_begin);
}

// A run of bytes that differ between two copies of the text.
struct Change {
  uint64_t addr;
  std::vector<uint8_t> before, after;
};

std::vector<Change> changes(const Addrs& a, const std::vector<uint8_t>& before, const std::vector<uint8_t>& after) {
  std::vector<Change> out;
  for (size_t i = 0; i < before.size();) {
    if (before[i] == after[i]) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < before.size() && before[j] != after[j]) j++;
    out.push_back({a.text_begin + i, {before.begin() + i, before.begin() + j}, {after.begin() + i, after.begin() + j}});
    i = j;
  }
  return out;
}

// Where the E8/E9 rel32 instruction at `at` (an address in the text) goes.
uint64_t destination(const Addrs& a, const std::vector<uint8_t>& text, uint64_t at) {
  int32_t rel;
  std::memcpy(&rel, text.data() + (at - a.text_begin) + 1, sizeof rel);
  return at + 5 + static_cast<uint64_t>(static_cast<int64_t>(rel));
}

// The call sites an operation redirected: each change outside the entry
// lies in the rel32 of an E8 / E9 that called `entry` before.
std::vector<uint64_t> redirected_sites(const std::vector<Change>& cs, const std::vector<uint8_t>& before,
                                       const Addrs& a, uint64_t entry) {
  std::vector<uint64_t> sites;
  for (const Change& c : cs) {
    if (c.addr >= entry && c.addr < entry + 5) continue;  // the entry jump (one run or more)
    std::optional<uint64_t> site;
    for (uint64_t k = 1; k <= 4 && !site; k++) {
      const uint64_t s = c.addr - k;
      const uint8_t op = before[s - a.text_begin];
      if ((op == 0xE8 || op == 0xE9) && destination(a, before, s) == entry && c.addr + c.after.size() <= s + 5)
        site = s;
    }
    EXPECT_TRUE(site) << std::hex << "change at " << c.addr << " is not in a call to " << entry;
    if (site && (sites.empty() || sites.back() != *site)) sites.push_back(*site);
  }
  return sites;
}

std::string behaviour(Target& t) {
  const std::string tail = t.ask("tail"), short_tail = t.ask("short");
  EXPECT_EQ(tail.substr(5), short_tail.substr(6)) << "the rel8 tail call must reach the same code";
  const std::string pointer = t.ask("pointer"), odd = t.ask("odd");
  EXPECT_EQ(pointer.substr(8), odd.substr(4)) << "odd() calls scale(5) as the pointer does";
  return t.ask("direct") + " " + tail + " " + pointer + " " + t.ask("decoy");
}

}  // namespace

TEST(CallSites, DirectAndTailCallsGoStraightToTheReplacementAndRevertRestoresEveryByte) {
  const std::string bin = target_bin("callers");
  const std::string lp = build("scale_v2.c", bin, "cs_scale_v2.lp");
  Target t(bin);
  const Addrs a = addrs(t);
  const std::string decoy = t.ask("decoy");
  ASSERT_EQ(behaviour(t), "direct=11 tail=12 pointer=10 " + decoy);
  const auto before = read_text(t, a);

  OK({"load", P(t), lp, "--name", "fix"});
  EXPECT_EQ(behaviour(t), "direct=16 tail=18 pointer=15 " + decoy) << "the decoy's bytes must not change";
  const auto applied = read_text(t, a);
  const auto cs = changes(a, before, applied);
  // The entry jump, the `call scale` in via_call, the `jmp scale` in
  // via_jmp; not the rel8 one in via_tail, the call in odd, the decoy.
  EXPECT_EQ(applied[a.scale - a.text_begin], 0xE9);
  const uint64_t replacement = destination(a, applied, a.scale);
  EXPECT_FALSE(replacement >= a.text_begin && replacement < a.text_end);
  const auto sites = redirected_sites(cs, before, a, a.scale);
  ASSERT_EQ(sites.size(), 2u);
  std::vector<uint8_t> ops;
  for (uint64_t s : sites) {
    EXPECT_EQ(destination(a, before, s), a.scale);
    EXPECT_EQ(destination(a, applied, s), replacement) << std::hex << s;
    ops.push_back(before[s - a.text_begin]);
  }
  std::ranges::sort(ops);
  EXPECT_EQ(ops, (std::vector<uint8_t>{0xE8, 0xE9}));
  for (const Change& c : cs) EXPECT_FALSE(c.addr >= a.decoy && c.addr < a.decoy + 11) << "decoy changed";

  OK({"revert", P(t), "fix"});
  EXPECT_EQ(behaviour(t), "direct=11 tail=12 pointer=10 " + decoy);
  EXPECT_TRUE(read_text(t, a) == before) << "revert must restore every byte of the text";

  // --entry-only: the jump alone, the calls go through it.
  OK({"apply", P(t), "fix", "--entry-only"});
  EXPECT_EQ(behaviour(t), "direct=16 tail=18 pointer=15 " + decoy);
  EXPECT_TRUE(redirected_sites(changes(a, before, read_text(t, a)), before, a, a.scale).empty());
  OK({"revert", P(t), "fix"});
  EXPECT_TRUE(read_text(t, a) == before);
  OK({"unload", P(t), "fix"});
  EXPECT_EQ(behaviour(t), "direct=11 tail=12 pointer=10 " + decoy);
}

TEST(CallSites, SitesFollowTheTopOfTheStackThroughApplyRevertAndReplace) {
  const std::string bin = target_bin("callers");
  const std::string v2 = build("scale_v2.c", bin, "cs_stack_v2.lp");
  const std::string v3 = build("scale_v3.c", bin, "cs_stack_v3.lp", v2);
  const std::string r = build("scale_r.c", bin, "cs_stack_r.lp");
  const std::string nop = build("scale_nop.c", bin, "cs_stack_nop.lp", v2);
  Target t(bin);
  const Addrs a = addrs(t);
  const auto before = read_text(t, a);
  const std::string decoy = t.ask("decoy");
  // Every redirected site goes where scale's entry jump goes, or all of
  // them still call scale itself.
  auto sites_go_to = [&](uint64_t want) {
    const auto now = read_text(t, a);
    size_t n = 0;
    for (uint64_t s : redirected_sites(changes(a, before, now), before, a, a.scale)) {
      EXPECT_EQ(destination(a, now, s), want) << std::hex << s;
      n++;
    }
    return n;
  };
  auto entry_target = [&] { return destination(a, read_text(t, a), a.scale); };

  OK({"load", P(t), v2, "--name", "v2"});
  const uint64_t t2 = entry_target();
  EXPECT_EQ(sites_go_to(t2), 2u);
  OK({"load", P(t), v3, "--name", "v3"});
  EXPECT_EQ(behaviour(t), "direct=21 tail=24 pointer=20 " + decoy);
  const uint64_t t3 = entry_target();
  EXPECT_NE(t3, t2);
  EXPECT_EQ(sites_go_to(t3), 2u);
  OK({"revert", P(t), "v3"});
  EXPECT_EQ(behaviour(t), "direct=16 tail=18 pointer=15 " + decoy);
  EXPECT_EQ(sites_go_to(t2), 2u);

  // Applied with --entry-only on top of a redirected v2: the sites are put
  // back on scale (whose jump now leads to v3), not left on v2.
  OK({"apply", P(t), "v3", "--entry-only"});
  EXPECT_EQ(behaviour(t), "direct=21 tail=24 pointer=20 " + decoy);
  EXPECT_EQ(sites_go_to(t3), 0u);
  OK({"revert", P(t), "v3"});
  EXPECT_EQ(sites_go_to(t2), 2u);

  // replace: a payload built against the object replaces the whole stack.
  OK({"upload", P(t), "r", r});
  OK({"replace", P(t), "r"});
  const uint64_t tr = entry_target();
  EXPECT_NE(tr, t2);
  EXPECT_EQ(sites_go_to(tr), 2u);
  EXPECT_EQ(behaviour(t), "direct=26 tail=30 pointer=25 " + decoy);
  EXPECT_EQ(state_of(t, "v2"), "CHECKED");
  OK({"revert", P(t), "r"});
  EXPECT_TRUE(read_text(t, a) == before);

  // A NOP patch stacked on v2: scale's entry no longer jumps anywhere, so
  // the sites v2 redirected must call scale itself again.
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(sites_go_to(t2), 2u);
  OK({"load", P(t), nop, "--name", "nop"});
  EXPECT_EQ(behaviour(t), "direct=11 tail=12 pointer=10 " + decoy);
  EXPECT_EQ(sites_go_to(0), 0u);
  OK({"revert", P(t), "nop"});
  EXPECT_EQ(behaviour(t), "direct=16 tail=18 pointer=15 " + decoy);
  EXPECT_EQ(sites_go_to(t2), 2u);
  OK({"revert", P(t), "v2"});
  EXPECT_TRUE(read_text(t, a) == before);
  for (const char* n : {"v2", "v3", "r", "nop"}) OK({"unload", P(t), n});
  EXPECT_EQ(behaviour(t), "direct=11 tail=12 pointer=10 " + decoy);
}

// The call sites are journalled writes like the entry jump: a tool killed
// at any fault point of an apply or a revert leaves, once the next
// invocation has repaired, a text that is wholly the old or wholly the new.
TEST(CallSites, KilledAtEveryPointTheTextIsWholeOldOrWholeNew) {
  HS_REQUIRE_FAULT_INJECTION();
  const std::string bin = target_bin("callers");
  const std::string lp = build("scale_v2.c", bin, "cs_crash.lp");
  Target t(bin);
  const Addrs a = addrs(t);
  const auto before = read_text(t, a);
  OK({"upload", P(t), "fix", lp});
  HsRun counted = hotsplice({"apply", P(t), "fix"}, {"HOTSPLICE_FAULT_LIST=1"});
  ASSERT_EQ(counted.code, 0) << counted.err;
  const auto applied = read_text(t, a);
  ASSERT_EQ(redirected_sites(changes(a, before, applied), before, a, a.scale).size(), 2u);
  const int apply_points = count_points(counted);
  counted = hotsplice({"revert", P(t), "fix"}, {"HOTSPLICE_FAULT_LIST=1"});
  ASSERT_EQ(counted.code, 0) << counted.err;
  const int revert_points = count_points(counted);
  ASSERT_GE(apply_points, 5) << "the entry and two sites are written one fault point apart";

  int kills = 0;
  for (const char* op : {"apply", "revert"}) {
    const int points = std::string(op) == "apply" ? apply_points : revert_points;
    for (int n = 1; n <= points; n++) {
      SCOPED_TRACE(std::string(op) + " killed at point " + std::to_string(n));
      if (std::string(op) == "revert") OK({"apply", P(t), "fix"});
      HsRun r = hotsplice({op, P(t), "fix"}, {"HOTSPLICE_FAULT_STEP=" + std::to_string(n)});
      if (r.code != 0) kills++;
      const std::string state = state_of(t, "fix");  // repairs
      const auto now = read_text(t, a);
      if (state == "APPLIED") {
        EXPECT_TRUE(now == applied);
        EXPECT_EQ(t.ask("direct"), "direct=16");
        OK({"revert", P(t), "fix"});
      } else {
        EXPECT_EQ(state, "CHECKED");
        EXPECT_TRUE(now == before);
        EXPECT_EQ(t.ask("direct"), "direct=11");
      }
      EXPECT_TRUE(read_text(t, a) == before);
    }
  }
  EXPECT_GE(kills, apply_points + revert_points - 2);
}
