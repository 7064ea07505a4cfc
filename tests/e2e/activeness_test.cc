// End-to-end activeness safety: a worker thread of the `park` target sits
// inside (or has a return address inside) code an operation would change or
// free, and the operation waits for it, times out naming it, or goes ahead
// with --force. Every step is synchronised over the target's line protocol:
// "park F" answers once the worker sits in its read(2) inside F (with its
// thread id, PC and the return address into F), "release" once F returned.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
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

// An operation run in the background (with --timeout 60s) while a thread
// is parked where it must wait.
class Background {
 public:
  Background(const Target& t, const std::vector<std::string>& op) : t_(t) {
    std::vector<std::string> args = with_pid(op, t);
    args.insert(args.end(), {"--timeout", "60s"});
    f_ = std::async(std::launch::async, [args] { return hotsplice(args); });
  }
  // Waits until it holds the process and has journaled its change (`list`
  // then says an operation is in progress): from then on it is in its
  // stop-check-resume loop. False if it ended first.
  bool waiting() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (f_.wait_for(std::chrono::milliseconds(5)) == std::future_status::ready) return false;
      HsRun r = hotsplice({"list", P(t_), "--json"});
      if (r.code == 0 && json::parse(r.out).value("in_progress", false)) return true;
    }
    return false;
  }
  const HsRun& result() {
    if (!r_) r_ = f_.get();
    return *r_;
  }

 private:
  const Target& t_;
  std::future<HsRun> f_;
  std::optional<HsRun> r_;
};

const std::string kForceWarning =
    "hotsplice: warning: --force skips the activeness check; the process may crash";

// `op` (verb, payload, ...) with --timeout 300ms: exit 2 and the one error
// line that says why.
void times_out(const Target& t, const std::vector<std::string>& op, const std::string& why) {
  std::vector<std::string> args = with_pid(op, t);
  args.insert(args.end(), {"--timeout", "300ms"});
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), fmt::format("hotsplice: error: {} of '{}' is not safe after 300 ms: {}", op[0], op[1], why));
}

// `op` with --force: done, with the warning.
void forced(const Target& t, const std::vector<std::string>& op) {
  std::vector<std::string> args = with_pid(op, t);
  args.push_back("--force");
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err_line(), kForceWarning);
}

// Why, in the error: the parked thread's PC is in `fn`; a return address is
// in `fn` at frame #N, or in payload p's replacement for parked(); its
// stack cannot be unwound.
std::string executing(const Parked& k, const std::string& fn) {
  return fmt::format("thread {} is executing in function '{}' (pc {}, frame #0)", k.tid, fn, k.pc);
}
std::string returns_into(const Parked& k, const std::string& fn, int frame) {
  return fmt::format("thread {} will return into function '{}' (return address {}, frame #{})", k.tid, fn, k.ret,
                     frame);
}
std::string returns_into_payload(const Parked& k, const std::string& payload) {
  return fmt::format("thread {} will return into the replacement for 'parked' in payload '{}' (return address {}, "
                     "frame #1)",
                     k.tid, payload, k.ret);
}
std::string unreliable(const Parked& k, const std::string& what) {
  return fmt::format("the stack of thread {} cannot be unwound reliably: {}", k.tid, what);
}

std::string park_payload(const std::string& patch, const std::string& out,
                         const std::optional<std::string>& depends = std::nullopt) {
  return build(patch, target_bin("park"), out, depends);
}

// Applying "v2" times out, saying `why`; once the parked thread is released
// (answering `released`), it applies.
void apply_waits_for_release(Target& t, const std::string& why, const std::string& released) {
  times_out(t, {"apply", "v2"}, why);
  EXPECT_EQ(t.ask("release"), released);
  OK({"apply", P(t), "v2"});
}

// `op` started in the background waits for the parked thread, the target
// answering `meanwhile`; released (answering `released`), the thread
// leaves and `op` completes.
void waits_for_release(Target& t, const std::vector<std::string>& op, const std::vector<Ask>& meanwhile,
                       const std::string& released) {
  Background bg(t, op);
  ASSERT_TRUE(bg.waiting()) << bg.result().err;
  expect_answers(t, meanwhile);
  EXPECT_EQ(t.ask("release"), released);
  EXPECT_EQ(bg.result().code, 0) << bg.result().err;
}

}  // namespace

// A thread whose PC is inside the function: apply waits (the process keeps
// running meanwhile) and completes as soon as the thread has left.
TEST(Activeness, ApplyWaitsWhileAThreadExecutesInTheFunction) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("park_v2.c", "act_wait.lp")});
  park(t, "parked");

  const std::vector<Ask> meanwhile = {
      {"call other", "other=7", "the process must run while apply waits"},
      {"call parked", "parked=1", "nothing may change while the thread is inside"},
  };
  ASSERT_NO_FATAL_FAILURE(waits_for_release(t, {"apply", "v2"}, meanwhile, "released parked=1"));
  EXPECT_EQ(t.ask("call parked"), "parked=2");
  EXPECT_EQ(state_of(t, "v2"), "APPLIED");
}

// One that never leaves: exit code 2, naming the thread, the function, the
// PC; the process is as it was.
TEST(Activeness, ApplyTimesOutNamingTheThreadAndTheFunction) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("park_v2.c", "act_timeout.lp")});
  Parked k = park(t, "parked");

  times_out(t, {"apply", "v2"}, executing(k, "parked"));
  EXPECT_EQ(state_of(t, "v2"), "CHECKED");
  EXPECT_EQ(t.ask("call parked"), "parked=1");
  EXPECT_EQ(t.ask("release"), "released parked=1");
  OK({"apply", P(t), "v2"});
  EXPECT_EQ(t.ask("call parked"), "parked=2");
}

TEST(Activeness, ForceAppliesAnywayWithAWarning) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("park_v2.c", "act_force.lp")});
  park(t, "parked");

  forced(t, {"apply", "v2"});
  EXPECT_EQ(t.ask("call parked"), "parked=2");
  // The parked thread finishes the old code it was in.
  EXPECT_EQ(t.ask("release"), "released parked=1");
  EXPECT_EQ(t.ask("call parked"), "parked=2");
}

// outer() called blocker(): only a return address is inside outer().
TEST(Activeness, ApplyWaitsWhileAReturnAddressIsInTheFunction) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("outer_v2.c", "act_outer.lp")});
  Parked k = park(t, "outer");

  times_out(t, {"apply", "v2"}, returns_into(k, "outer", 1));
  EXPECT_EQ(t.ask("call outer"), "outer=10");

  ASSERT_NO_FATAL_FAILURE(waits_for_release(t, {"apply", "v2"}, {}, "released outer=10"));
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}

// descend() parked at the bottom of a recursion 21 frames deep.
TEST(Activeness, RecursiveFunction) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("descend_v2.c", "act_descend.lp")});
  Parked k = park(t, "descend 20");

  times_out(t, {"apply", "v2"}, returns_into(k, "descend", 1));

  ASSERT_NO_FATAL_FAILURE(
      waits_for_release(t, {"apply", "v2"}, {{"call descend", "descend=4"}}, "released descend=20"));
  EXPECT_EQ(t.ask("call descend"), "descend=8");
}

// hold()'s return address lies below 65 frames of deep() and blocker(): the
// unwind has to go all the way down.
TEST(Activeness, ReturnAddressDeepInTheStack) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("hold_v2.c", "act_hold.lp")});
  Parked k = park(t, "hold 64");

  ASSERT_NO_FATAL_FAILURE(apply_waits_for_release(t, returns_into(k, "hold", 66), "released hold=100"));
  EXPECT_EQ(t.ask("call hold"), "hold=200");
}

// The thread is blocked inside the payload's new code (parked_v2 called
// blocker()): revert waits for it, and times out naming the payload.
TEST(Activeness, RevertWaitsWhileAThreadIsInsideTheNewCode) {
  Target t(target_bin("park"));
  OK({"load", P(t), park_payload("park_v2.c", "act_revert.lp"), "--name", "a"});
  Parked k = park(t, "parked");

  times_out(t, {"revert", "a"}, returns_into_payload(k, "a"));
  EXPECT_EQ(state_of(t, "a"), "APPLIED");

  ASSERT_NO_FATAL_FAILURE(waits_for_release(t, {"revert", "a"}, {{"call parked", "parked=2"}}, "released parked=2"));
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// Unloading frees the code: after a forced revert, a thread still inside
// the payload's code keeps unload waiting, and it returns through that code
// unharmed before the memory goes.
TEST(Activeness, UnloadWaitsWhileAThreadIsInsideTheCodeItFrees) {
  Target t(target_bin("park"));
  OK({"load", P(t), park_payload("park_v2.c", "act_unload.lp"), "--name", "a"});
  Parked k = park(t, "parked");

  forced(t, {"revert", "a"});
  EXPECT_EQ(t.ask("call parked"), "parked=1");

  times_out(t, {"unload", "a"}, returns_into_payload(k, "a"));
  EXPECT_EQ(state_of(t, "a"), "CHECKED");

  ASSERT_NO_FATAL_FAILURE(waits_for_release(t, {"unload", "a"}, {}, "released parked=2"));
  EXPECT_EQ(state_of(t, "a"), "absent");
  EXPECT_EQ(t.maps().find("hotsplice:a"), std::string::npos);
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// With a thread blocked inside payload a's new code, operations that do not
// concern a unwind through it (with a's .eh_frame) and go ahead at once.
TEST(Activeness, UnwindsThroughPayloadCode) {
  std::string a = park_payload("park_v2.c", "act_through_a.lp");
  std::string b = park_payload("other_v2.c", "act_through_b.lp", a);
  Target t(target_bin("park"));
  OK({"load", P(t), a, "--name", "a"});
  Parked k = park(t, "parked");

  // A failed unwind would make these wait out their timeout and fail.
  OK({"load", P(t), b, "--name", "b", "--timeout", "60s"});
  EXPECT_EQ(t.ask("call other"), "other=70");
  OK({"revert", P(t), "b", "--timeout", "60s"});
  EXPECT_EQ(t.ask("call other"), "other=7");
  OK({"unload", P(t), "b", "--timeout", "60s"});

  times_out(t, {"revert", "a"}, returns_into_payload(k, "a"));
  EXPECT_EQ(t.ask("release"), "released parked=2");
  OK({"revert", P(t), "a"});
  EXPECT_EQ(t.ask("call parked"), "parked=1");
}

// replace switches away from every applied payload: a thread inside one of
// them holds it back.
TEST(Activeness, ReplaceWaitsWhileAThreadIsInsideAPayloadItReverts) {
  Target t(target_bin("park"));
  OK({"load", P(t), park_payload("park_v2.c", "act_replace_a.lp"), "--name", "a"});
  OK({"upload", P(t), "c", park_payload("park_v3.c", "act_replace_c.lp")});
  Parked k = park(t, "parked");

  times_out(t, {"replace", "c"}, returns_into_payload(k, "a"));
  EXPECT_EQ(state_of(t, "a"), "APPLIED");
  EXPECT_EQ(state_of(t, "c"), "CHECKED");

  ASSERT_NO_FATAL_FAILURE(waits_for_release(t, {"replace", "c"}, {}, "released parked=2"));
  EXPECT_EQ(t.ask("call parked"), "parked=3");
  EXPECT_EQ(t.ask("call other"), "other=700");
}

// Unreliable unwinds count as unsafe, even for a function nowhere near the
// thread: code with no CFI (libdw would fall back to frame pointers, which
// here would even look plausible) ...
TEST(Activeness, CodeWithoutUnwindInformationIsUnsafe) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("outer_v2.c", "act_nocfi.lp")});
  Parked k = park(t, "nocfi");

  const std::string why = unreliable(
      k, fmt::format("no unwind information for frame #0 (pc {} in function 'nocfi_block' of {})", k.pc,
                     target_bin("park")));
  ASSERT_NO_FATAL_FAILURE(apply_waits_for_release(t, why, "released nocfi=0"));
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}

// ... and a stack its CFI cannot be followed on (the stack pointer is bad).
TEST(Activeness, CorruptStackIsUnsafe) {
  Target t(target_bin("park"));
  OK({"upload", P(t), "v2", park_payload("outer_v2.c", "act_corrupt.lp")});
  Parked k = park(t, "corrupt");

  const std::string why = unreliable(k, fmt::format("cannot find the caller of frame #0 (pc {} in function "
                                                    "'corrupt_block' of {}) through its unwind information",
                                                    k.pc, target_bin("park")));
  ASSERT_NO_FATAL_FAILURE(apply_waits_for_release(t, why, "released corrupt=0"));
  EXPECT_EQ(t.ask("call outer"), "outer=20");
}
