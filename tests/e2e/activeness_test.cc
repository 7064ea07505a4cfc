// End-to-end activeness safety: a worker thread of the `park` target sits
// inside (or has a return address inside) code an operation would change or
// free, and the operation waits for it, times out naming it, or goes ahead
// with --force. Every step is synchronised over the target's line protocol:
// "park F" answers once the worker sits in its read(2) inside F (with its
// thread id, PC and the return address into F), "release" once F returned.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// Where the worker sits, as the target reports it.
struct Parked {
  std::string tid, pc, ret;
};

Parked park(Target& t, const std::string& what) {
  const std::string line = t.ask("park " + what);
  EXPECT_EQ(line.substr(0, line.find(' ')), "parked") << line;
  auto kv = hs::test::key_values(line);
  Parked p{kv["tid"], kv["pc"], kv["ret"]};
  EXPECT_FALSE(p.tid.empty()) << line;
  return p;
}

std::future<HsRun> in_background(std::vector<std::string> args) {
  return std::async(std::launch::async, [args = std::move(args)] { return hotsplice(args); });
}

// Waits until the operation running in the background holds the process
// and has journaled its change (`list` then says an operation is in
// progress): from then on it is in its stop-check-resume loop. False if the
// operation ended first (the caller's checks on its result then fail).
bool wait_until_waiting(const Target& t, std::future<HsRun>& op) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (op.wait_for(std::chrono::milliseconds(5)) == std::future_status::ready) return false;
    HsRun r = hotsplice({"list", P(t), "--json"});
    if (r.code == 0 && json::parse(r.out).value("in_progress", false)) return true;
  }
  return false;
}

const std::string kForceWarning =
    "hotsplice: warning: --force skips the activeness check; the process may crash";

std::string error_line(const std::string& op, const std::string& name, const std::string& rest) {
  return fmt::format("hotsplice: error: {} of '{}' is not safe after 300 ms: {}", op, name, rest);
}

}  // namespace

// A thread whose PC is inside the function: apply waits (the process keeps
// running meanwhile) and completes as soon as the thread has left.
TEST(Activeness, ApplyWaitsWhileAThreadExecutesInTheFunction) {
  std::string bin = target_bin("park");
  std::string lp = build("park_v2.c", bin, "act_wait.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  park(t, "parked");

  auto apply = in_background({"apply", P(t), "v2", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, apply)) << apply.get().err;
  EXPECT_EQ(t.ask("call other"), "other=7") << "the process must run while apply waits";
  EXPECT_EQ(t.ask("call parked"), "parked=1") << "nothing may change while the thread is inside";

  EXPECT_EQ(t.ask("release"), "released parked=1");
  HsRun r = apply.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call parked"), "parked=2");
  EXPECT_EQ(state_of(t, "v2"), "APPLIED");
}

// One that never leaves: exit code 2, naming the thread, the function, the
// PC; the process is as it was.
TEST(Activeness, ApplyTimesOutNamingTheThreadAndTheFunction) {
  std::string bin = target_bin("park");
  std::string lp = build("park_v2.c", bin, "act_timeout.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "parked");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("thread {} is executing in function 'parked' (pc {}, frame #0)", k.tid, k.pc)));
  EXPECT_EQ(state_of(t, "v2"), "CHECKED");
  EXPECT_EQ(t.ask("call parked"), "parked=1");
  EXPECT_EQ(t.ask("release"), "released parked=1");
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(t.ask("call parked"), "parked=2");
}

TEST(Activeness, ForceAppliesAnywayWithAWarning) {
  std::string bin = target_bin("park");
  std::string lp = build("park_v2.c", bin, "act_force.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  park(t, "parked");

  HsRun r = hotsplice({"apply", P(t), "v2", "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err_line(), kForceWarning);
  EXPECT_EQ(t.ask("call parked"), "parked=2");
  // The parked thread finishes the old code it was in.
  EXPECT_EQ(t.ask("release"), "released parked=1");
  EXPECT_EQ(t.ask("call parked"), "parked=2");
}

// outer() called blocker(): only a return address is inside outer().
TEST(Activeness, ApplyWaitsWhileAReturnAddressIsInTheFunction) {
  std::string bin = target_bin("park");
  std::string lp = build("outer_v2.c", bin, "act_outer.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "outer");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("thread {} will return into function 'outer' (return address {}, frame #1)",
                                   k.tid, k.ret)));
  EXPECT_EQ(t.ask("call outer"), "outer=10");

  auto apply = in_background({"apply", P(t), "v2", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, apply)) << apply.get().err;
  EXPECT_EQ(t.ask("release"), "released outer=10");
  r = apply.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}

// descend() parked at the bottom of a recursion 21 frames deep.
TEST(Activeness, RecursiveFunction) {
  std::string bin = target_bin("park");
  std::string lp = build("descend_v2.c", bin, "act_descend.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "descend 20");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("thread {} will return into function 'descend' (return address {}, frame #1)",
                                   k.tid, k.ret)));

  auto apply = in_background({"apply", P(t), "v2", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, apply)) << apply.get().err;
  EXPECT_EQ(t.ask("call descend"), "descend=4");
  EXPECT_EQ(t.ask("release"), "released descend=20");
  r = apply.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call descend"), "descend=8");
}

// hold()'s return address lies below 65 frames of deep() and blocker(): the
// unwind has to go all the way down.
TEST(Activeness, ReturnAddressDeepInTheStack) {
  std::string bin = target_bin("park");
  std::string lp = build("hold_v2.c", bin, "act_hold.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "hold 64");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("thread {} will return into function 'hold' (return address {}, frame #66)",
                                   k.tid, k.ret)));
  EXPECT_EQ(t.ask("release"), "released hold=100");
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(t.ask("call hold"), "hold=200");
}

// The thread is blocked inside the payload's new code (parked_v2 called
// blocker()): revert waits for it, and times out naming the payload.
TEST(Activeness, RevertWaitsWhileAThreadIsInsideTheNewCode) {
  std::string bin = target_bin("park");
  std::string lp = build("park_v2.c", bin, "act_revert.lp");
  Target t(bin);
  OK({"load", P(t), lp, "--name", "a"});
  Parked k = park(t, "parked");

  HsRun r = hotsplice({"revert", P(t), "a", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), error_line("revert", "a",
                                     fmt::format("thread {} will return into the replacement for 'parked' in "
                                                 "payload 'a' (return address {}, frame #1)",
                                                 k.tid, k.ret)));
  EXPECT_EQ(state_of(t, "a"), "APPLIED");

  auto revert = in_background({"revert", P(t), "a", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, revert)) << revert.get().err;
  EXPECT_EQ(t.ask("call parked"), "parked=2");
  EXPECT_EQ(t.ask("release"), "released parked=2");
  r = revert.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// Unloading frees the code: after a forced revert, a thread still inside
// the payload's code keeps unload waiting, and it returns through that code
// unharmed before the memory goes.
TEST(Activeness, UnloadWaitsWhileAThreadIsInsideTheCodeItFrees) {
  std::string bin = target_bin("park");
  std::string lp = build("park_v2.c", bin, "act_unload.lp");
  Target t(bin);
  OK({"load", P(t), lp, "--name", "a"});
  Parked k = park(t, "parked");

  HsRun r = hotsplice({"revert", P(t), "a", "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err_line(), kForceWarning);
  EXPECT_EQ(t.ask("call parked"), "parked=1");

  r = hotsplice({"unload", P(t), "a", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), error_line("unload", "a",
                                     fmt::format("thread {} will return into the replacement for 'parked' in "
                                                 "payload 'a' (return address {}, frame #1)",
                                                 k.tid, k.ret)));
  EXPECT_EQ(state_of(t, "a"), "CHECKED");

  auto unload = in_background({"unload", P(t), "a", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, unload)) << unload.get().err;
  EXPECT_EQ(t.ask("release"), "released parked=2");
  r = unload.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(state_of(t, "a"), "absent");
  EXPECT_EQ(t.maps().find("hotsplice:a"), std::string::npos);
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// With a thread blocked inside payload a's new code, operations that do not
// concern a unwind through it (with a's .eh_frame) and go ahead at once.
TEST(Activeness, UnwindsThroughPayloadCode) {
  std::string bin = target_bin("park");
  std::string a = build("park_v2.c", bin, "act_through_a.lp");
  std::string b = build("other_v2.c", bin, "act_through_b.lp", a);
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  Parked k = park(t, "parked");

  // A failed unwind would make these wait out their timeout and fail.
  OK({"load", P(t), b, "--name", "b", "--timeout", "60s"});
  EXPECT_EQ(t.ask("call other"), "other=70");
  OK({"revert", P(t), "b", "--timeout", "60s"});
  EXPECT_EQ(t.ask("call other"), "other=7");
  OK({"unload", P(t), "b", "--timeout", "60s"});

  HsRun r = hotsplice({"revert", P(t), "a", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), error_line("revert", "a",
                                     fmt::format("thread {} will return into the replacement for 'parked' in "
                                                 "payload 'a' (return address {}, frame #1)",
                                                 k.tid, k.ret)));
  EXPECT_EQ(t.ask("release"), "released parked=2");
  OK({"revert", P(t), "a"});
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// replace switches away from every applied payload: a thread inside one of
// them holds it back.
TEST(Activeness, ReplaceWaitsWhileAThreadIsInsideAPayloadItReverts) {
  std::string bin = target_bin("park");
  std::string a = build("park_v2.c", bin, "act_replace_a.lp");
  std::string c = build("park_v3.c", bin, "act_replace_c.lp");
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  OK({"upload", P(t), "c", c});
  Parked k = park(t, "parked");

  HsRun r = hotsplice({"replace", P(t), "c", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), error_line("replace", "c",
                                     fmt::format("thread {} will return into the replacement for 'parked' in "
                                                 "payload 'a' (return address {}, frame #1)",
                                                 k.tid, k.ret)));
  EXPECT_EQ(state_of(t, "a"), "APPLIED");
  EXPECT_EQ(state_of(t, "c"), "CHECKED");

  auto replace = in_background({"replace", P(t), "c", "--timeout", "60s"});
  ASSERT_TRUE(wait_until_waiting(t, replace)) << replace.get().err;
  EXPECT_EQ(t.ask("release"), "released parked=2");
  r = replace.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call parked"), "parked=3");
  EXPECT_EQ(t.ask("call other"), "other=700");
}

// Unreliable unwinds count as unsafe, even for a function nowhere near the
// thread: code with no CFI (libdw would fall back to frame pointers, which
// here would even look plausible) ...
TEST(Activeness, CodeWithoutUnwindInformationIsUnsafe) {
  std::string bin = target_bin("park");
  std::string lp = build("outer_v2.c", bin, "act_nocfi.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "nocfi");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("the stack of thread {} cannot be unwound reliably: no unwind information for "
                                   "frame #0 (pc {} in function 'nocfi_block' of {})",
                                   k.tid, k.pc, bin)));
  EXPECT_EQ(t.ask("release"), "released nocfi=0");
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}

// ... and a stack its CFI cannot be followed on (the stack pointer is bad).
TEST(Activeness, CorruptStackIsUnsafe) {
  std::string bin = target_bin("park");
  std::string lp = build("outer_v2.c", bin, "act_corrupt.lp");
  Target t(bin);
  OK({"upload", P(t), "v2", lp});
  Parked k = park(t, "corrupt");

  HsRun r = hotsplice({"apply", P(t), "v2", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(),
            error_line("apply", "v2",
                       fmt::format("the stack of thread {} cannot be unwound reliably: cannot find the caller of "
                                   "frame #0 (pc {} in function 'corrupt_block' of {}) through its unwind "
                                   "information",
                                   k.tid, k.pc, bin)));
  EXPECT_EQ(t.ask("release"), "released corrupt=0");
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}
