// End-to-end: payload hooks (.livepatch.hooks.*) run inside the target at the
// right moments, with the documented failure semantics, and survive the tool
// being killed at every fault point. The target is `calc`, whose `get`
// prints global_counter, which the hooks of patches/hooks*.c change.
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// global_counter as calc reports it.
int global(Target& t) {
  int g = -1000000, s = 0;
  std::string a = t.ask("get");
  EXPECT_EQ(sscanf(a.c_str(), "global=%d static=%d", &g, &s), 2) << a;
  return g;
}

}  // namespace

TEST(Hooks, LoadApplyRevertUnloadHooksRunOnceEach) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks.c", bin, "hooks.lp");
  Target t(bin);
  EXPECT_EQ(global(t), 0);

  OK({"upload", P(t), "h", lp});
  EXPECT_EQ(global(t), 1000) << "load hook";
  json l = list_json(t);
  const json* p = find_payload(l, "h");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["state"], "CHECKED");
  EXPECT_EQ((*p)["hooks"]["load"], json::array({"on_load"}));
  EXPECT_EQ((*p)["hooks"]["unload"], json::array({"on_unload"}));
  EXPECT_EQ((*p)["hooks"]["postapply"], "on_postapply");
  EXPECT_EQ((*p)["hooks"]["postrevert"], "on_postrevert");
  EXPECT_EQ((*p)["unload_hooks_run"], false);

  OK({"apply", P(t), "h"});
  EXPECT_EQ(global(t), 1100) << "postapply hook";
  EXPECT_EQ(state_of(list_json(t), "h"), "APPLIED");
  OK({"revert", P(t), "h"});
  EXPECT_EQ(global(t), 1000) << "postrevert hook";
  OK({"apply", P(t), "h"});
  EXPECT_EQ(global(t), 1100);
  OK({"revert", P(t), "h"});
  EXPECT_EQ(global(t), 1000);
  OK({"unload", P(t), "h"});
  EXPECT_EQ(global(t), 0) << "unload hook";
  expect_absent(t, "h");
  EXPECT_EQ(t.ask("bump"), "bump=1");
}

TEST(Hooks, LoadIsUploadPlusApplyWithBothHooks) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks.c", bin, "hooks_load.lp");
  Target t(bin);
  OK({"load", P(t), lp});
  EXPECT_EQ(global(t), 1100);
}

TEST(Hooks, PreapplyHookThatRefusesChangesNothing) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_veto.c", bin, "hooks_veto.lp");
  Target t(bin);
  OK({"upload", P(t), "veto", lp});
  std::string maps_before = t.maps();
  expect_error({"apply", P(t), "veto"},
               "hotsplice: error: payload 'veto': preapply hook 'refuse' returned 7; apply refused");
  EXPECT_EQ(state_of(list_json(t), "veto"), "CHECKED");
  EXPECT_EQ(global(t), 0) << "the postapply hook must not run";
  EXPECT_EQ(t.ask("bump"), "bump=1") << "bump() must not be patched";
  EXPECT_EQ(t.maps(), maps_before);
  OK({"unload", P(t), "veto"});
  EXPECT_EQ(t.ask("bump"), "bump=2");
  // load = upload + apply: the refused apply unloads again.
  expect_error({"load", P(t), lp, "--name", "veto2"},
               "hotsplice: error: payload 'veto2': preapply hook 'refuse' returned 7; apply refused");
  expect_absent(t, "veto2");
  EXPECT_EQ(t.ask("bump"), "bump=3");
}

TEST(Hooks, CrashingLoadHookFailsTheUploadCleanly) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_crash.c", bin, "hooks_crash.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("bump"), "bump=1");
  expect_error({"upload", P(t), "crash", lp},
               "hotsplice: error: payload 'crash': load hook 'crash_on_load' crashed with SIGSEGV at crash_on_load+0x0 "
               "(fault address 0x10); upload rolled back");
  ASSERT_TRUE(t.alive());
  EXPECT_EQ(t.ask("bump"), "bump=2") << "the target goes on as before";
  EXPECT_FALSE(mapped(t, "crash")) << t.maps();
  std::string err;
  json l = list_json(t, &err);
  EXPECT_EQ(state_of(l, "crash"), "absent");
  EXPECT_EQ(l["in_progress"], false);
  EXPECT_EQ(err, "") << "nothing left to repair";
  // The name is free again, and a good payload still loads.
  OK({"upload", P(t), "crash", build("hooks.c", bin, "hooks_after_crash.lp")});
  EXPECT_EQ(global(t), 1002);
}

TEST(Hooks, CrashingPostapplyHookIsAWarningTheApplyStands) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_post_crash.c", bin, "hooks_post_crash.lp");
  Target t(bin);
  OK({"upload", P(t), "pc", lp});
  EXPECT_EQ(global(t), 1000);
  HsRun r = hotsplice({"apply", P(t), "pc"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err,
            "hotsplice: warning: payload 'pc': postapply hook 'crash_after_apply' crashed with SIGSEGV at "
            "crash_after_apply+0x0 (fault address 0x18); the payload stays APPLIED\n");
  ASSERT_TRUE(t.alive());
  EXPECT_EQ(state_of(list_json(t), "pc"), "APPLIED");
  EXPECT_EQ(global(t), 1000);
  OK({"revert", P(t), "pc"});
  OK({"unload", P(t), "pc"});
  EXPECT_FALSE(mapped(t, "pc"));
}

TEST(Hooks, CrashingUnloadHookKeepsThePayloadAndNeverRunsAgain) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_unload_crash.c", bin, "hooks_unload_crash.lp");
  Target t(bin);
  OK({"upload", P(t), "uc", lp});
  EXPECT_EQ(global(t), 1000);
  expect_error({"unload", P(t), "uc"},
               "hotsplice: error: payload 'uc': unload hook 'crash_on_unload' crashed with SIGSEGV at "
               "crash_on_unload+0x0 (fault address 0x20); the payload stays loaded (its unload hooks will not run "
               "again)");
  ASSERT_TRUE(t.alive());
  json l = list_json(t);
  ASSERT_NE(find_payload(l, "uc"), nullptr);
  EXPECT_EQ((*find_payload(l, "uc"))["unload_hooks_run"], true);
  EXPECT_TRUE(mapped(t, "uc"));
  expect_error({"apply", P(t), "uc"},
               "hotsplice: error: payload 'uc' cannot be applied: its unload hooks have run; unload it");
  OK({"unload", P(t), "uc"});
  expect_absent(t, "uc");
  EXPECT_EQ(global(t), 1000);
}

TEST(Hooks, ApplyAndRevertHooksRunInTheStopWindow) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_action.c", bin, "hooks_action.lp");
  Target t(bin);
  OK({"upload", P(t), "act", lp});
  EXPECT_EQ(global(t), 0);
  OK({"apply", P(t), "act"});
  EXPECT_EQ(global(t), 10);
  EXPECT_EQ(t.ask("bump"), "bump=12");
  OK({"revert", P(t), "act"});
  EXPECT_EQ(global(t), 2);
  EXPECT_EQ(t.ask("bump"), "bump=3");
  OK({"unload", P(t), "act"});
}

TEST(Hooks, FailingApplyHookRollsTheWritesBack) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_action_fail.c", bin, "hooks_action_fail.lp");
  Target t(bin);
  OK({"upload", P(t), "afail", lp});
  expect_error({"apply", P(t), "afail"},
               "hotsplice: error: payload 'afail': apply hook 'fail_apply' returned 3; apply rolled back");
  json l = list_json(t);
  EXPECT_EQ(state_of(l, "afail"), "CHECKED");
  EXPECT_EQ((*find_payload(l, "afail"))["funcs"][0]["applied"], false);
  EXPECT_EQ(t.ask("bump"), "bump=1") << "bump() must be the original again";
  OK({"unload", P(t), "afail"});
}

TEST(Hooks, ReplaceIsRefusedWithPreOrPostHooks) {
  std::string bin = target_bin("calc");
  std::string with_post = build("hooks.c", bin, "hooks_rep_post.lp");
  std::string act = build("hooks_action.c", bin, "hooks_rep_act.lp");
  Target t(bin);
  OK({"load", P(t), with_post, "--name", "h"});
  OK({"upload", P(t), "act", act});
  expect_error({"replace", P(t), "act"},
               "hotsplice: error: payload 'act' cannot replace: payload 'h' has a postapply hook, and replace runs no "
               "pre- or post- hooks");
  EXPECT_EQ(global(t), 1100);
  // Without them, replace runs the action hooks (nothing to revert here).
  OK({"revert", P(t), "h"});
  OK({"replace", P(t), "act"});
  EXPECT_EQ(global(t), 1010);
  EXPECT_EQ(t.ask("bump"), "bump=1012");
}

// The tool SIGKILLed at every fault point of every operation of a payload
// with hooks. Each hook runs at most once, and what ran is what the repaired
// registry says: global_counter = 1000 while the payload is loaded and its
// unload hooks have not run, + 100 while APPLIED, except that a post hook
// does not run when the kill comes right after the operation's commit.
TEST(Hooks, KilledAtEveryFaultPointHooksRunAtMostOnceAndMatchTheState) {
  HS_REQUIRE_FAULT_INJECTION();
  std::string bin = target_bin("calc");
  std::string lp = build("hooks.c", bin, "hooks_crash_safety.lp");
  int start = 0;  // global_counter once set up
  std::vector<FaultOp> ops = {
      {"upload", bin, [&](Target& t) { start = global(t); }, {"upload", "h", lp}},
      {"apply", bin,
       [&](Target& t) {
         OK({"upload", P(t), "h", lp});
         start = global(t);
       },
       {"apply", "h"}},
      {"revert", bin,
       [&](Target& t) {
         OK({"load", P(t), lp, "--name", "h"});
         start = global(t);
       },
       {"revert", "h"}},
      {"unload", bin,
       [&](Target& t) {
         OK({"upload", P(t), "h", lp});
         start = global(t);
       },
       {"unload", "h"}},
  };
  int kills = 0;
  auto check = [&](Target& t, const HsRun& r, const std::string& point) {
    ASSERT_EQ(r.code, 128 + 9) << "the tool was not killed: " << r.err;
    kills++;
    ASSERT_TRUE(t.alive());
    std::string notes;
    json l = list_json(t, &notes);
    const json* p = find_payload(l, "h");
    const std::string state = p ? (*p)["state"].get<std::string>() : "absent";
    const bool unloaded_hooks = p && (*p)["unload_hooks_run"].get<bool>();
    int want = (state != "absent" && !unloaded_hooks ? 1000 : 0) + (state == "APPLIED" ? 100 : 0);
    if (point == "apply:committed") want -= 100;   // postapply not run
    if (point == "revert:committed") want += 100;  // postrevert not run
    EXPECT_EQ(global(t), want) << "state " << state << ", started at " << start << "\n" << notes;
    EXPECT_EQ(mapped(t, "h"), state != "absent") << t.maps() << notes;
    // And from here everything can be undone, each hook once.
    if (state == "APPLIED") OK({"revert", P(t), "h"});
    if (state != "absent") OK({"unload", P(t), "h"});
    EXPECT_EQ(global(t), want - (state == "APPLIED" ? 100 : 0) - (state != "absent" && !unloaded_hooks ? 1000 : 0));
    EXPECT_FALSE(mapped(t, "h"));
  };
  for (const auto& op : ops) {
    SCOPED_TRACE(op.name);
    std::vector<std::string> points;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(op, &points));
    ASSERT_NO_FATAL_FAILURE(at_each_fault_point(op, points, "HOTSPLICE_FAULT_STEP", check));
  }
  EXPECT_GT(kills, 10);
}

// Apply/revert hooks: a kill before the hook returned rolls the operation
// back; after, the repair completes it. Never is a hook run twice.
TEST(Hooks, KilledAroundAnApplyHookRepairFollowsTheHook) {
  HS_REQUIRE_FAULT_INJECTION();
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_action.c", bin, "hooks_action_crash.lp");
  for (const std::string op : {"apply", "revert"}) {
    SCOPED_TRACE(op);
    FaultOp fop{op, bin,
                [&](Target& t) {
                  OK({"upload", P(t), "act", lp});
                  if (op == "revert") OK({"apply", P(t), "act"});
                },
                {op, "act"}};
    std::vector<std::string> names;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(fop, &names));
    ASSERT_NE(std::find(names.begin(), names.end(), "hooks:action"), names.end());
    ASSERT_NE(std::find(names.begin(), names.end(), "hooks:action-committed"), names.end());
    auto check = [&](Target& t, const HsRun& r, const std::string& point) {
      ASSERT_EQ(r.code, 128 + 9) << r.err;
      std::string notes;
      json l = list_json(t, &notes);
      const bool applied = state_of(l, "act") == "APPLIED";
      EXPECT_EQ(global(t), applied ? 10 : 0) << notes;
      EXPECT_EQ(t.ask("bump"), applied ? "bump=12" : "bump=1") << notes;
      if (point == "hooks:action-committed") {
        EXPECT_EQ(applied, op == "apply");
        // Repaired by the tool's guardian, before any other invocation.
        EXPECT_NE(guardian_line(r).find(fmt::format("repaired: completed an interrupted {} of 'act'", op)),
                  std::string::npos)
            << r.err << notes;
      }
    };
    ASSERT_NO_FATAL_FAILURE(at_each_fault_point(fop, names, "HOTSPLICE_FAULT_STEP", check));
  }
}

// hotsplice killed while a load hook runs (the hook sleeps a second). The
// hook finishes on its own and returns into the recovery trampoline, which
// gives the thread back its state: the target answers as before. Until it
// has returned, another invocation is refused as busy (exit 2) rather than
// repair (unmap) the payload whose code is running; so is the tool's
// guardian, which keeps trying and repairs as soon as the hook has
// returned, with no other invocation: the hook has run exactly once.
TEST(Hooks, KilledWhileAHookRunsTheTargetCarriesOn) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_slow.c", bin, "hooks_slow.lp");
  Target t(bin);
  EXPECT_EQ(global(t), 0);
  int errp[2];
  ASSERT_EQ(::pipe2(errp, O_CLOEXEC), 0);
  const pid_t tool = ::fork();
  if (tool == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(errp[1], 2);  // for the guardian's line
    const std::string pid = P(t);
    ::execl(HS_BIN, HS_BIN, "upload", pid.c_str(), "slow", lp.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(errp[1]);
  auto in_sleep = [&] {
    const long nr = hs::test::task_syscall(t.pid(), t.pid());
    return nr == SYS_clock_nanosleep || nr == SYS_nanosleep || nr == SYS_restart_syscall;
  };
  ASSERT_TRUE(eventually(in_sleep)) << "the load hook did not start";
  ::kill(tool, SIGKILL);
  int st = 0;
  ASSERT_EQ(::waitpid(tool, &st, 0), tool);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;

  HsRun listed = hotsplice({"list", P(t)});
  HsRun busy = hotsplice({"unload", P(t), "slow"});
  const bool in_time = in_sleep();  // still sleeping after both
  if (in_time) {
    EXPECT_EQ(listed.code, 0) << listed.err;
    EXPECT_NE(listed.out.find("(an operation is in progress)"), std::string::npos) << listed.out;
    EXPECT_EQ(busy.code, 2) << busy.err;
    // Refused by the running hook, or by the guardian trying at that moment.
    const std::string hook_busy = fmt::format(
        "hotsplice: error: thread {} of PID {} is still running a function an interrupted hotsplice called in it; "
        "try again when it returns",
        t.pid(), t.pid());
    EXPECT_TRUE(busy.err_line() == hook_busy ||
                busy.err_line().starts_with(fmt::format("hotsplice: error: PID {} is busy: ", t.pid())))
        << busy.err;
    EXPECT_TRUE(mapped(t, "slow")) << "the payload whose code runs is still mapped";
  }

  ASSERT_TRUE(eventually([&] { return !in_sleep(); }));
  EXPECT_EQ(global(t), 1001) << "the hook ran to its end, once";
  // The guardian repairs once the hook has returned: no record had been
  // committed (the first load hook had not returned), so the upload is
  // rolled back. Its line is all the tool's stderr holds.
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(errp[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(errp[0]);
  if (in_time) {
    EXPECT_EQ(err, fmt::format("hotsplice: guardian: PID {0}: the tool (PID {1}) died; repaired: rolled back an "
                               "interrupted upload of 'slow' (tool PID {1})\n",
                               t.pid(), tool));
  }
  std::string notes;
  json l = list_json(t, &notes);
  EXPECT_EQ(notes, "") << "nothing left to repair";
  EXPECT_EQ(find_payload(l, "slow"), nullptr);
  EXPECT_FALSE(mapped(t, "slow"));
  EXPECT_EQ(t.ask("bump"), "bump=1002");
  EXPECT_EQ(global(t), 1002);
}

// Issue 9, defect 6: `load` whose apply fails and whose clean-up unload fails
// too says what is left in the process and the command that finishes it.
TEST(LoadCleanup, FailedUnloadSaysWhatIsLeftAndHowToFinish) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks_load_stuck.c", bin, "hooks_load_stuck.lp");
  Target t(bin);
  HsRun r = hotsplice({"load", P(t), lp, "--name", "stuck"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err_line(),
            "hotsplice: error: payload 'stuck': preapply hook 'refuse' returned 7; apply refused; unloading it again "
            "failed too: payload 'stuck': unload hook 'crash_on_unload_stuck' crashed with SIGSEGV at "
            "crash_on_unload_stuck+0x0 (fault address 0x20); the payload stays loaded (its unload hooks will not run "
            "again); payload 'stuck' stays loaded in PID " +
                P(t) + ", CHECKED (its unload hooks have run and will not run again); to remove it: hotsplice unload " +
                P(t) + " stuck");
  // That is what the process holds: the payload, not applied.
  ASSERT_TRUE(t.alive());
  EXPECT_EQ(state_of(t, "stuck"), "CHECKED");
  EXPECT_TRUE(mapped(t, "stuck"));
  EXPECT_EQ(t.ask("bump"), "bump=1");
  // And the command it names finishes the job.
  OK({"unload", P(t), "stuck"});
  expect_absent(t, "stuck");
  EXPECT_EQ(t.ask("bump"), "bump=2");
}
