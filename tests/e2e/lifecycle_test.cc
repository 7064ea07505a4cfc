// End-to-end: real targets, real payloads from `hotsplice build`, real ptrace.
// Every step checks the target's behaviour, not just an exit code.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

}  // namespace

TEST(Lifecycle, HelloWorldChangesLiveAndReverts) {
  std::string bin = target_bin("hello");
  std::string lp = build("hello_v2.c", bin, "hello_v2.lp");
  Target t(bin);
  const pid_t pid = t.pid();
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");

  ok({"upload", P(t), "fix", lp});
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");
  EXPECT_EQ(t.ask("call"), "hello=1 count=2") << "an uploaded payload must not change behaviour yet";
  EXPECT_NE(t.maps().find("/memfd:hotsplice-registry"), std::string::npos);

  ok({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=3");
  EXPECT_EQ(state_of(t, "fix"), "APPLIED");

  ok({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=4");
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");

  ok({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=5");
  ok({"revert", P(t), "fix"});
  ok({"unload", P(t), "fix"});
  EXPECT_EQ(state_of(t, "fix"), "absent");
  EXPECT_EQ(t.ask("call"), "hello=1 count=6");
  EXPECT_EQ(t.pid(), pid);
  EXPECT_TRUE(t.alive());
}

TEST(Lifecycle, ListFromAnotherInvocationShowsStateAndMetadata) {
  std::string bin = target_bin("hello");
  std::string lp = build("hello_v2.c", bin, "hello_v2_list.lp");
  Target t(bin);
  ok({"load", P(t), lp});  // named after the file: "hello_v2_list"
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
  ok({"upload", P(t), "a", a});
  ok({"upload", P(t), "b", b});

  HsRun r = hotsplice({"apply", P(t), "b"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'b' depends on build-id"), std::string::npos) << r.err;
  EXPECT_NE(r.err_line().find("the object itself"), std::string::npos) << r.err;
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");

  ok({"apply", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=2");
  ok({"apply", P(t), "b"});
  EXPECT_EQ(t.ask("call"), "hello=3 count=3");

  r = hotsplice({"revert", P(t), "a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'a' is not the top of the applied stack"), std::string::npos) << r.err;
  EXPECT_NE(r.err_line().find("revert 'b' first"), std::string::npos) << r.err;
  EXPECT_EQ(t.ask("call"), "hello=3 count=4");

  ok({"revert", P(t), "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=5");
  ok({"revert", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=6");
}

TEST(Lifecycle, ReplaceSwapsTheWholeStackInOneStep) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "rep_a.lp");
  std::string b = build("world_v2.c", bin, "rep_b.lp", a);
  std::string c = build("cumulative.c", bin, "rep_c.lp");
  Target t(bin);
  ok({"load", P(t), a, "--name", "a"});
  ok({"load", P(t), b, "--name", "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
  EXPECT_EQ(t.ask("world"), "world=20");

  ok({"upload", P(t), "cumulative", c});
  ok({"replace", P(t), "cumulative"});
  EXPECT_EQ(t.ask("call"), "hello=4 count=2");
  EXPECT_EQ(t.ask("world"), "world=40");
  EXPECT_EQ(state_of(t, "a"), "CHECKED");
  EXPECT_EQ(state_of(t, "b"), "CHECKED");
  EXPECT_EQ(state_of(t, "cumulative"), "APPLIED");

  // The reverted ones can go; reverting the cumulative one restores the original.
  ok({"unload", P(t), "b"});
  ok({"unload", P(t), "a"});
  ok({"revert", P(t), "cumulative"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=3");
  EXPECT_EQ(t.ask("world"), "world=10");
}

TEST(Lifecycle, NopOutStopsASideEffect) {
  std::string bin = target_bin("hello");
  std::string lp = build("nop.c", bin, "nop.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("side"), "side=1");
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("side"), "side=1");
  EXPECT_EQ(t.ask("side"), "side=1");
  ok({"revert", P(t), "nop"});
  EXPECT_EQ(t.ask("side"), "side=2");
}

TEST(Lifecycle, ExpectationMatchApplies) {
  std::string bin = target_bin("hello");
  std::string lp = build("expect_ok.c", bin, "expect_ok.lp");
  Target t(bin);
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("call"), "hello=5 count=1");
}

TEST(Lifecycle, ExpectationMismatchIsRefusedAndNothingChanges) {
  std::string bin = target_bin("hello");
  std::string lp = build("expect_bad.c", bin, "expect_bad.lp");
  Target t(bin);
  std::string maps_before = t.maps();
  ok({"upload", P(t), "bad", lp});
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

TEST(Lifecycle, EndbrFunctionsArePatchedAfterTheEndbr) {
  std::string bin = target_bin("cet");
  std::string lp = build("cet_v2.c", bin, "cet_v2.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("call"), "value=1");
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("call"), "value=2");
  json l = list_json(t);
  ok({"revert", P(t), "cet_v2"});
  EXPECT_EQ(t.ask("call"), "value=1");
}

TEST(Symbols, StaticByFileName) {
  std::string bin = target_bin("dup");
  std::string lp = build("static_file.c", bin, "static_file.lp");
  Target t(bin);
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("a"), "a=101");
  EXPECT_EQ(t.ask("b"), "b=200");
}

TEST(Symbols, DuplicatedLocalByPosition) {
  std::string bin = target_bin("dup");
  std::string lp = build("sympos.c", bin, "sympos.lp");
  Target t(bin);
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("a"), "a=100");
  EXPECT_EQ(t.ask("b"), "b=201");
}

TEST(Symbols, PatchCallsTargetStaticAndLibc) {
  std::string bin = target_bin("calc");
  std::string lp = build("libc_call.c", bin, "libc_call.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("render 3"), "render=v3");
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("render 3"), "render=patched:21");
  EXPECT_EQ(t.ask("get"), "global=0 static=6") << "helper_static() bumps the target's static";
}

TEST(Symbols, PatchReadsAndWritesTargetGlobalsAndStatics) {
  std::string bin = target_bin("calc");
  std::string lp = build("globals.c", bin, "globals.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("bump"), "bump=1");
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("bump"), "bump=11");
  EXPECT_EQ(t.ask("get"), "global=11 static=6");
  ok({"revert", P(t), "globals"});
  EXPECT_EQ(t.ask("bump"), "bump=12");
}

TEST(SharedLibrary, FunctionInALibraryIsPatchedWhereverItIsMapped) {
  std::string lib = target_bin("libgreet.so");
  std::string lp = build("greet_v2.c", lib, "greet_v2.lp");
  Target t(target_bin("greeter"));
  std::string before = t.ask("greet");
  EXPECT_EQ(before.rfind("greet=", 0), 0u);
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("greet"), "greet=hello v2");
  json l = list_json(t);
  EXPECT_NE(l["payloads"][0]["object"].get<std::string>().find("libgreet.so"), std::string::npos);
  ok({"revert", P(t), "greet_v2"});
  EXPECT_EQ(t.ask("greet"), before);
}

TEST(Threads, EightThreadsCallingThePatchedFunctionSeeOldOrNewOnly) {
  std::string bin = target_bin("spin8");
  std::string lp = build("value_v2.c", bin, "value_v2.lp");
  Target t(bin);
  ok({"upload", P(t), "v2", lp});
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

TEST(Symbols, IndirectFunctionsFromLibcResolveToTheirImplementation) {
  std::string bin = target_bin("calc");
  std::string lp = build("ifunc_call.c", bin, "ifunc_call.lp");
  Target t(bin);
  ok({"load", P(t), lp});
  EXPECT_EQ(t.ask("render 3"), "render=copied");
  EXPECT_TRUE(t.alive());
}
