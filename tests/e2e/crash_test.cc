// Crash safety: the tool is SIGKILLed at every fault point of every
// operation (HOTSPLICE_FAULT_STEP=N). After each kill, with no other
// hotsplice run, the tool's guardian (src/cli/guardian.h) repairs the
// target: the bytes at every patch site are then all as before the
// operation or all as after it, the behaviour follows, and `list` has
// nothing left to repair and matches what the target does; then the
// payloads must still be usable. The longest time from a kill to the end of
// its repair is printed (issue 9, defect 5).
#include <gtest/gtest.h>

#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// The target's behaviour must be exactly one of the states the payloads allow.
void expect_consistent(Target& t, const json& l) {
  auto [h, w] = hello_world(t);
  std::string a = state_of(l, "a"), c = state_of(l, "cum");
  if (c == "APPLIED") {
    EXPECT_EQ(h, 4);
    EXPECT_EQ(w, 40);
  } else if (a == "APPLIED") {
    EXPECT_EQ(h, 2);
    EXPECT_EQ(w, 10);
  } else {
    EXPECT_EQ(h, 1);
    EXPECT_EQ(w, 10);
  }
  for (const auto& p : l["payloads"]) {
    bool applied = p["state"] == "APPLIED";
    for (const auto& f : p["funcs"]) EXPECT_EQ(f["applied"], applied) << p["name"] << " " << f["name"];
  }
}

uint64_t addr_of(const json& v) { return std::stoull(v.get<std::string>(), nullptr, 16); }

// Function name -> its patch site (after an endbr64), for every function a
// payload in `l` replaces.
std::map<std::string, uint64_t> patch_sites(const Target& t, const json& l) {
  std::map<std::string, uint64_t> sites;
  for (const auto& p : l["payloads"])
    for (const auto& f : p["funcs"]) {
      const uint64_t fn = addr_of(f["old_addr"]);
      const hs::Bytes head = t.read_memory(fn, 4);
      sites[f["name"]] = fn + (head == hs::Bytes{0xf3, 0x0f, 0x1e, 0xfa} ? 4 : 0);
    }
  return sites;
}

using Code = std::map<std::string, hs::Bytes>;  // function -> the 5 bytes at its patch site

Code code_at(const Target& t, const std::map<std::string, uint64_t>& sites) {
  Code c;
  for (const auto& [f, at] : sites) c[f] = t.read_memory(at, 5);
  return c;
}

hs::Bytes jump(uint64_t from, uint64_t to) {
  const auto rel = static_cast<uint32_t>(to - (from + 5));
  return {0xe9, static_cast<uint8_t>(rel), static_cast<uint8_t>(rel >> 8), static_cast<uint8_t>(rel >> 16),
          static_cast<uint8_t>(rel >> 24)};
}

// The code once operation `args` (verb, payload) has completed, from the
// code before it and the state `l` it started from; `original` is each
// function's unpatched bytes.
Code code_after(const std::vector<std::string>& args, const json& l, const std::map<std::string, uint64_t>& sites,
                Code before, const Code& original) {
  const std::string& verb = args[0];
  const json* p = args.size() > 1 ? find_payload(l, args[1]) : nullptr;
  if (verb == "replace")
    for (const auto& q : l["payloads"])
      if (q["state"] == "APPLIED")
        for (const auto& f : q["funcs"]) before[f["name"]] = original.at(f["name"]);
  if (p && (verb == "apply" || verb == "replace"))
    for (const auto& f : (*p)["funcs"]) before[f["name"]] = jump(sites.at(f["name"]), addr_of(f["new_addr"]));
  if (p && verb == "revert")
    for (const auto& f : (*p)["funcs"]) before[f["name"]] = original.at(f["name"]);
  return before;
}

std::string show(const Code& c) {
  std::string s;
  for (const auto& [f, b] : c) s += fmt::format(" {}={:02x}", f, fmt::join(b, ""));
  return s;
}

}  // namespace

TEST(CrashSafety, KilledAtEveryStepOfEveryOperationTheGuardianLeavesNoHalfPatchedProcess) {
  HS_REQUIRE_FAULT_INJECTION();
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "crash_a.lp");
  std::string cum = build("cumulative.c", bin, "crash_cum.lp");
  std::vector<FaultOp> ops = {
      {"upload", bin, [](Target&) {}, {"upload", "a", a}},
      {"apply", bin, [&](Target& t) { OK({"upload", P(t), "a", a}); }, {"apply", "a"}},
      {"revert", bin, [&](Target& t) { OK({"load", P(t), a, "--name", "a"}); }, {"revert", "a"}},
      {"unload", bin, [&](Target& t) { OK({"upload", P(t), "a", a}); }, {"unload", "a"}},
      // Two functions: a kill between the two entry jumps (and between the
      // call sites) leaves hello() new and world() old until repaired.
      {"apply-two-functions", bin, [&](Target& t) { OK({"upload", P(t), "cum", cum}); }, {"apply", "cum"}},
      {"replace", bin,
       [&](Target& t) {
         OK({"load", P(t), a, "--name", "a"});
         OK({"upload", P(t), "cum", cum});
       },
       {"replace", "cum"}},
  };

  // Each function's own bytes, from a process that was never patched
  // (uploading does not touch the code).
  Code original;
  {
    Target ref(bin);
    OK({"upload", P(ref), "cum", cum});
    json l = list_json(ref);
    original = code_at(ref, patch_sites(ref, l));
    ASSERT_EQ(original.size(), 2u) << l.dump();
  }

  int kills = 0, half_patched = 0;
  long long longest_us = 0;
  std::string longest_at;
  for (const auto& op : ops) {
    SCOPED_TRACE(op.name);
    std::vector<std::string> points;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(op, &points));
    std::string times;  // ms from each kill to its guardian's exit
    for (size_t k = 1; k <= points.size(); k++) {
      SCOPED_TRACE(fmt::format("HOTSPLICE_FAULT_STEP={} (fault point {})", k, points[k - 1]));
      Target t(op.binary);
      ASSERT_NO_FATAL_FAILURE(op.setup(t));
      const json before_list = list_json(t);
      const auto sites = patch_sites(t, before_list);
      const Code before = code_at(t, sites);
      const Code after = code_after(op.args, before_list, sites, before, original);

      HsRun r = hotsplice(with_pid(op.args, t), {fmt::format("HOTSPLICE_FAULT_STEP={}", k), "HOTSPLICE_FAULT_STAMP=1"});
      ASSERT_EQ(r.code, 128 + 9) << "the tool was not killed: " << r.err;
      kills++;
      ASSERT_TRUE(t.alive());
      // The guardian has repaired and exited, without another hotsplice run.
      ASSERT_GE(r.guardian_us, 0) << "the guardian did not exit within 30 s: " << r.err;
      const std::string line = guardian_line(r);
      EXPECT_TRUE(line.starts_with(fmt::format("hotsplice: guardian: PID {}: the tool (PID {}) died; ", t.pid(), r.pid)))
          << r.err;
      const long long us = kill_to_guardian_exit_us(r);
      EXPECT_GE(us, 0) << r.err;
      times += fmt::format(" {}={:.2f}", points[k - 1], static_cast<double>(us) / 1000.0);
      if (us > longest_us) {
        longest_us = us;
        longest_at = fmt::format("{} at {}", op.name, points[k - 1]);
      }
      // Every patch site as before the operation, or every one as after it.
      Code now;
      EXPECT_TRUE(eventually(
          [&] {
            now = code_at(t, sites);
            return now == before || now == after;
          },
          std::chrono::seconds(2)))
          << "half-patched:" << show(now) << "\nbefore:" << show(before) << "\nafter: " << show(after) << "\n"
          << line;
      if (line.find("repaired: ") != std::string::npos) half_patched++;
      // Nothing left for the next invocation to repair, and list matches
      // the behaviour and the code.
      std::string notes;
      json l = list_json(t, &notes);
      EXPECT_EQ(notes, "") << "the guardian left a repair to the next invocation";
      expect_consistent(t, l);
      if (before != after) {
        const bool done = now == after;
        const std::string& x = op.args[1];
        const std::string want = op.args[0] == "revert" ? (done ? "CHECKED" : "APPLIED") : (done ? "APPLIED" : "CHECKED");
        EXPECT_EQ(state_of(l, x), want) << line;
      }
      // Nothing is left behind that the registry does not know about.
      for (const char* n : {"a", "cum"})
        EXPECT_EQ(mapped(t, n), state_of(l, n) != "absent") << n << "\n" << t.maps() << line;
      // And the payloads still work from here: everything can be undone.
      for (const char* n : {"cum", "a"}) {
        if (state_of(l, n) == "APPLIED") OK({"revert", P(t), n});
        if (state_of(l, n) != "absent") OK({"unload", P(t), n});
      }
      EXPECT_EQ(hello_world(t), std::make_pair(1, 10));
      EXPECT_FALSE(mapped(t, "a"));
    }
    fmt::print("guardian: {}: kill to repaired (ms):{}\n", op.name, times);
  }
  RecordProperty("kills", kills);
  RecordProperty("longest_repair_us", static_cast<int>(longest_us));
  fmt::print("guardian: {} kills ({} with a journal to repair); longest time from a kill to the guardian's exit "
             "(repair done): {:.2f} ms ({})\n",
             kills, half_patched, static_cast<double>(longest_us) / 1000.0, longest_at);
  EXPECT_GT(kills, 20);
  EXPECT_GT(half_patched, 10);
  // Milliseconds, not "until someone runs hotsplice again"; generous for a
  // loaded machine.
  EXPECT_LT(longest_us, 2'000'000);
}
