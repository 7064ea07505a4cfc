// End-to-end: real targets, real payloads from `hotsplice build`, real ptrace.
// Every step checks the target's behaviour, not just an exit code.
#include <gtest/gtest.h>

#include <cinttypes>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "support/bytes.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

using hs::i32;
using hs::i64;
using hs::u64;

// Whether addr lies in an executable mapping of `name` (a path or memfd
// name, as /proc/PID/maps shows it) in the target.
bool executable_in(const Target& t, const std::string& name, u64 addr) {
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);) {
    u64 lo = 0, hi = 0;
    char perms[5] = {};
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %4s", &lo, &hi, perms) != 3) continue;
    if (line.ends_with(name) || line.find(name + " ") != std::string::npos)
      if (perms[2] == 'x' && addr >= lo && addr < hi) return true;
  }
  return false;
}

}  // namespace

TEST(Lifecycle, HelloWorldChangesLiveAndReverts) {
  std::string bin = target_bin("hello");
  std::string lp = build("hello_v2.c", bin, "hello_v2.lp");
  Target t(bin);
  const pid_t pid = t.pid();
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");

  OK({"upload", P(t), "fix", lp});
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");
  EXPECT_EQ(t.ask("call"), "hello=1 count=2") << "an uploaded payload must not change behaviour yet";
  EXPECT_NE(t.maps().find("/memfd:hotsplice-registry"), std::string::npos);

  OK({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=3");
  EXPECT_EQ(state_of(t, "fix"), "APPLIED");

  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=4");
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");

  OK({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=5");
  OK({"revert", P(t), "fix"});
  OK({"unload", P(t), "fix"});
  EXPECT_EQ(state_of(t, "fix"), "absent");
  EXPECT_EQ(t.ask("call"), "hello=1 count=6");
  EXPECT_EQ(t.pid(), pid);
  EXPECT_TRUE(t.alive());
}

TEST(Lifecycle, ListFromAnotherInvocationShowsStateAndMetadata) {
  std::string bin = target_bin("hello");
  std::string lp = build("hello_v2.c", bin, "hello_v2_list.lp");
  Target t(bin);
  OK({"load", P(t), lp});  // named after the file: "hello_v2_list"
  json l = list_json(t);
  ASSERT_EQ(l["payloads"].size(), 1u);
  const json& p = l["payloads"][0];
  EXPECT_EQ(p["name"], "hello_v2_list");
  EXPECT_EQ(p["state"], "APPLIED");
  EXPECT_EQ(p["modinfo"]["cve"], "CVE-0000-0002");
  ASSERT_EQ(p["funcs"].size(), 1u);
  EXPECT_EQ(p["funcs"][0]["name"], "hello");
  EXPECT_EQ(p["funcs"][0]["applied"], true);
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");

  HsRun text = hotsplice({"list", P(t)});
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("hello_v2_list  APPLIED"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("[x] hello"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("cve=CVE-0000-0002"), std::string::npos) << text.out;
}

TEST(Lifecycle, StackingFollowsBuildIds) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "stack_a.lp");
  std::string b = build("hello_v3.c", bin, "stack_b.lp", a);
  Target t(bin);
  OK({"upload", P(t), "a", a});
  OK({"upload", P(t), "b", b});

  HsRun r = hotsplice({"apply", P(t), "b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'b' depends on build-id"), std::string::npos) << r.err;
  EXPECT_NE(r.err_line().find("the object itself"), std::string::npos) << r.err;
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");

  OK({"apply", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=2");
  OK({"apply", P(t), "b"});
  EXPECT_EQ(t.ask("call"), "hello=3 count=3");

  r = hotsplice({"revert", P(t), "a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'a' is not the top of the applied stack"), std::string::npos) << r.err;
  EXPECT_NE(r.err_line().find("revert 'b' first"), std::string::npos) << r.err;
  EXPECT_EQ(t.ask("call"), "hello=3 count=4");

  OK({"revert", P(t), "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=5");
  OK({"revert", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=6");
}

TEST(Lifecycle, ReplaceSwapsTheWholeStackInOneStep) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "rep_a.lp");
  std::string b = build("world_v2.c", bin, "rep_b.lp", a);
  std::string c = build("cumulative.c", bin, "rep_c.lp");
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  OK({"load", P(t), b, "--name", "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
  EXPECT_EQ(t.ask("world"), "world=20");

  OK({"upload", P(t), "cumulative", c});
  OK({"replace", P(t), "cumulative"});
  EXPECT_EQ(t.ask("call"), "hello=4 count=2");
  EXPECT_EQ(t.ask("world"), "world=40");
  EXPECT_EQ(state_of(t, "a"), "CHECKED");
  EXPECT_EQ(state_of(t, "b"), "CHECKED");
  EXPECT_EQ(state_of(t, "cumulative"), "APPLIED");

  // The reverted ones can go; reverting the cumulative one restores the original.
  OK({"unload", P(t), "b"});
  OK({"unload", P(t), "a"});
  OK({"revert", P(t), "cumulative"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=3");
  EXPECT_EQ(t.ask("world"), "world=10");
}

TEST(Lifecycle, ExpectationMismatchIsRefusedAndNothingChanges) {
  std::string bin = target_bin("hello");
  std::string lp = build("expect_bad.c", bin, "expect_bad.lp");
  Target t(bin);
  std::string maps_before = t.maps();
  OK({"upload", P(t), "bad", lp});
  HsRun r = hotsplice({"apply", P(t), "bad"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'bad': function 'hello': expected bytes 0f0b at"), std::string::npos)
      << r.err;
  EXPECT_EQ(state_of(t, "bad"), "CHECKED");
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
  // load = upload + apply: a failed apply unloads again.
  r = hotsplice({"load", P(t), lp, "--name", "bad2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(state_of(t, "bad2"), "absent");
}

// cet_value() starts with endbr64 (the target is built with
// -fcf-protection=full): the jump goes right after it and lands on the
// replacement, and revert puts the original bytes back. Checked on the bytes
// in the target's memory as well as on its behaviour.
TEST(Lifecycle, EndbrFunctionsArePatchedAfterTheEndbr) {
  std::string bin = target_bin("cet");
  std::string lp = build("cet_v2.c", bin, "cet_v2.lp");
  Target t(bin);
  const std::string addr = t.ask("addr");
  const u64 fn = std::stoull(hs::test::key_values(addr)["cet_value"], nullptr, 16);
  ASSERT_NE(fn, 0u) << addr;
  const hs::Bytes endbr64 = {0xf3, 0x0f, 0x1e, 0xfa};
  const hs::Bytes original = t.read_memory(fn, 4 + 5);
  ASSERT_EQ(original.size(), 9u);
  ASSERT_EQ(hs::Bytes(original.begin(), original.begin() + 4), endbr64) << "cet_value must start with endbr64";
  EXPECT_EQ(t.ask("call"), "value=1");

  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("call"), "value=2");
  // Where the replacement is: the payload's record, and its mapping.
  json l = list_json(t);
  const json* p = find_payload(l, "cet_v2");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ((*p)["funcs"].size(), 1u);
  const json& f = (*p)["funcs"][0];
  EXPECT_EQ(f["old_addr"], fmt::format("{:#x}", fn));
  const u64 replacement = std::stoull(f["new_addr"].get<std::string>(), nullptr, 16);
  EXPECT_TRUE(executable_in(t, "/memfd:hotsplice:cet_v2", replacement))
      << fmt::format("replacement at {:#x}\n", replacement) << t.maps();

  const hs::Bytes patched = t.read_memory(fn, 4 + 5);
  ASSERT_EQ(patched.size(), 9u);
  EXPECT_EQ(hs::Bytes(patched.begin(), patched.begin() + 4), endbr64) << "the endbr64 stays";
  EXPECT_EQ(patched[4], 0xe9) << "a jmp rel32 right after the endbr64";
  const u64 jump_end = fn + 4 + 5;
  const u64 lands = jump_end + static_cast<u64>(static_cast<i64>(hs::load_le<i32>(patched.data() + 5)));
  EXPECT_EQ(lands, replacement) << fmt::format("the jmp lands on {:#x}", lands);

  OK({"revert", P(t), "cet_v2"});
  EXPECT_EQ(t.ask("call"), "value=1");
  EXPECT_EQ(t.read_memory(fn, 4 + 5), original) << "revert must put the original bytes back";
}

TEST(SharedLibrary, FunctionInALibraryIsPatchedWhereverItIsMapped) {
  std::string lib = target_bin("libgreet.so");
  std::string lp = build("greet_v2.c", lib, "greet_v2.lp");
  Target t(target_bin("greeter"));
  std::string before = t.ask("greet");
  EXPECT_EQ(before.rfind("greet=", 0), 0u);
  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("greet"), "greet=hello v2");
  json l = list_json(t);
  EXPECT_NE(l["payloads"][0]["object"].get<std::string>().find("libgreet.so"), std::string::npos);
  OK({"revert", P(t), "greet_v2"});
  EXPECT_EQ(t.ask("greet"), before);
}

TEST(Threads, EightThreadsCallingThePatchedFunctionSeeOldOrNewOnly) {
  std::string bin = target_bin("spin8");
  std::string lp = build("value_v2.c", bin, "value_v2.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  int cycles = 100;
  for (int i = 0; i < cycles; i++) {
    HsRun a = hotsplice({"apply", P(t), "v2", "--timeout", "20s"});
    ASSERT_EQ(a.code, 0) << "cycle " << i << ": " << a.err;
    HsRun r = hotsplice({"revert", P(t), "v2", "--timeout", "20s"});
    ASSERT_EQ(r.code, 0) << "cycle " << i << ": " << r.err;
  }
  std::string stats = t.ask("stats");
  EXPECT_NE(stats.find(" bad=0 "), std::string::npos) << stats;
  unsigned long long calls = 0;
  ASSERT_EQ(sscanf(stats.c_str(), "calls=%llu", &calls), 1) << stats;
  EXPECT_GT(calls, 0u);
  EXPECT_TRUE(t.alive());
}

// The payloads whose whole test is: load it, and the target answers as the
// patch says; some are then reverted, and the target answers as before.
struct LoadCase {
  std::string name;    // the test's name
  std::string target;  // under HS_TARGET_DIR
  std::string patch;   // under HS_PATCH_DIR; the payload is named for it
  std::vector<Ask> before, loaded;
  bool revert = false;
  std::vector<Ask> reverted;
};

void PrintTo(const LoadCase& c, std::ostream* os) { *os << c.name; }

class LoadAndAsk : public ::testing::TestWithParam<LoadCase> {};

TEST_P(LoadAndAsk, TheTargetAnswersAsThePatchSays) {
  const LoadCase& c = GetParam();
  const std::string payload = c.patch.substr(0, c.patch.rfind(".c"));
  std::string bin = target_bin(c.target);
  std::string lp = build(c.patch, bin, payload + ".lp");
  Target t(bin);
  expect_answers(t, c.before);
  OK({"load", P(t), lp});
  expect_answers(t, c.loaded);
  EXPECT_TRUE(t.alive());
  if (!c.revert) return;
  OK({"revert", P(t), payload});
  expect_answers(t, c.reverted);
}

INSTANTIATE_TEST_SUITE_P(
    Payloads, LoadAndAsk,
    ::testing::Values(
        LoadCase{"NopOutStopsASideEffect",
                 "hello",
                 "nop.c",
                 {{"side", "side=1"}},
                 {{"side", "side=1"}, {"side", "side=1"}},
                 true,
                 {{"side", "side=2"}}},
        LoadCase{"ExpectationMatchApplies", "hello", "expect_ok.c", {}, {{"call", "hello=5 count=1"}}},
        LoadCase{"StaticByFileName", "dup", "static_file.c", {}, {{"a", "a=101"}, {"b", "b=200"}}},
        LoadCase{"DuplicatedLocalByPosition", "dup", "sympos.c", {}, {{"a", "a=100"}, {"b", "b=201"}}},
        LoadCase{"PatchCallsTargetStaticAndLibc",
                 "calc",
                 "libc_call.c",
                 {{"render 3", "render=v3"}},
                 {{"render 3", "render=patched:21"},
                  {"get", "global=0 static=6", "helper_static() bumps the target's static"}}},
        LoadCase{"PatchReadsAndWritesTargetGlobalsAndStatics",
                 "calc",
                 "globals.c",
                 {{"bump", "bump=1"}},
                 {{"bump", "bump=11"}, {"get", "global=11 static=6"}},
                 true,
                 {{"bump", "bump=12"}}},
        LoadCase{"IndirectFunctionsFromLibcResolveToTheirImplementation",
                 "calc",
                 "ifunc_call.c",
                 {},
                 {{"render 3", "render=copied"}}}),
    [](const auto& p) { return p.param.name; });
