// Crash safety: the tool is SIGKILLed at every fault point of every
// operation (HOTSPLICE_FAULT_STEP=N). After each kill the target must still
// run, each patched function must be wholly old or wholly new, and the next
// invocation must repair the registry so that `list` matches what the target
// does; then the payloads must still be usable.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// hello() and world() as the target reports them.
std::pair<int, int> values(Target& t) {
  int h = -1, w = -1, c = 0;
  sscanf(t.ask("call").c_str(), "hello=%d count=%d", &h, &c);
  sscanf(t.ask("world").c_str(), "world=%d", &w);
  return {h, w};
}

// The target's behaviour must be exactly one of the states the payloads allow.
void expect_consistent(Target& t, const json& l) {
  auto [h, w] = values(t);
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

}  // namespace

TEST(CrashSafety, KilledAtEveryStepOfEveryOperationLeavesNoHalfPatchedProcess) {
  HS_REQUIRE_FAULT_INJECTION();
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "crash_a.lp");
  std::string cum = build("cumulative.c", bin, "crash_cum.lp");
  std::vector<FaultOp> ops = {
      {"upload", bin, [](Target&) {}, {"upload", "a", a}},
      {"apply", bin, [&](Target& t) { OK({"upload", P(t), "a", a}); }, {"apply", "a"}},
      {"revert", bin, [&](Target& t) { OK({"load", P(t), a, "--name", "a"}); }, {"revert", "a"}},
      {"unload", bin, [&](Target& t) { OK({"upload", P(t), "a", a}); }, {"unload", "a"}},
      {"apply-two-functions", bin, [&](Target& t) { OK({"upload", P(t), "cum", cum}); }, {"apply", "cum"}},
      {"replace", bin,
       [&](Target& t) {
         OK({"load", P(t), a, "--name", "a"});
         OK({"upload", P(t), "cum", cum});
       },
       {"replace", "cum"}},
  };

  int kills = 0;
  auto check = [&](Target& t, const HsRun& r, const std::string&) {
    ASSERT_EQ(r.code, 128 + 9) << "the tool was not killed: " << r.err;
    kills++;
    ASSERT_TRUE(t.alive());
    // Before any repair: each function is wholly old or wholly new.
    auto [h, w] = values(t);
    EXPECT_TRUE(h == 1 || h == 2 || h == 4) << h;
    EXPECT_TRUE(w == 10 || w == 40) << w;
    // The next invocation repairs; list then matches the behaviour.
    std::string notes;
    json l = list_json(t, &notes);
    expect_consistent(t, l);
    // Nothing is left behind that the registry does not know about.
    for (const char* n : {"a", "cum"})
      EXPECT_EQ(mapped(t, n), state_of(l, n) != "absent") << n << "\n" << t.maps() << notes;
    // And the payloads still work from here: everything can be undone.
    for (const char* n : {"cum", "a"}) {
      if (state_of(l, n) == "APPLIED") OK({"revert", P(t), n});
      if (state_of(l, n) != "absent") OK({"unload", P(t), n});
    }
    EXPECT_EQ(values(t), std::make_pair(1, 10));
    EXPECT_FALSE(mapped(t, "a"));
  };
  for (const auto& op : ops) {
    SCOPED_TRACE(op.name);
    std::vector<std::string> points;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(op, &points));
    ASSERT_NO_FATAL_FAILURE(at_each_fault_point(op, points, "HOTSPLICE_FAULT_STEP", check));
  }
  RecordProperty("kills", kills);
  EXPECT_GT(kills, 20);
}
