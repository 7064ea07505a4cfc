// End-to-end: C++ exceptions through, into and out of payload code (issue
// 10, the C++ bullet's unwind half). The target is `cxxeh_server`
// (targets/cxxeh/: g++ -O2, frame pointers omitted, no noipa), which catches
// every exception in unpatched code; the payloads are C++
// (patches/cxxeh_*.cc). Before a payload's .eh_frame was registered with the
// target's unwinder, an exception thrown by replacement code ended the
// process ("terminate called after throwing ...", exit 134): the unwinder
// found no FDE for the payload's frame. The target's `fde ADDR` asks its own
// unwinder (_Unwind_Find_FDE) whether it knows a PC, which is how these
// tests see registration and deregistration; `selftest` throws and catches
// in target code, which crashes if a table stays registered over unmapped
// memory.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "fault_injection.h"
#include "harness.h"
#include "payload/eh_frame.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

constexpr const char* kTarget = "cxxeh_server";
constexpr const char* kParse = "_Z12parse_numberPKc";

// Where payload `name` put its replacement for `fn` (list --json).
uint64_t new_addr(const Target& t, const std::string& name, const std::string& fn) {
  json l = list_json(t);
  const json* p = find_payload(l, name);
  if (!p) {
    ADD_FAILURE() << "no payload " << name;
    return 0;
  }
  for (const auto& f : (*p)["funcs"])
    if (f["name"] == fn) return std::stoull(f["new_addr"].get<std::string>(), nullptr, 16);
  ADD_FAILURE() << "payload " << name << " replaces no " << fn;
  return 0;
}

// Whether the target's own unwinder has an FDE for `pc`.
bool unwinder_knows(Target& t, uint64_t pc) {
  std::string a = t.ask(fmt::format("fde {:#x}", pc));
  EXPECT_TRUE(a == "fde=1" || a == "fde=0") << a;
  return a == "fde=1";
}

// Target code still throws and catches: no table is left registered over
// memory that is gone.
void expect_target_throws_fine(Target& t) {
  EXPECT_EQ(t.ask("selftest"), "selftest=division by zero");
  EXPECT_TRUE(t.alive());
}

// The timing line's value of `key` ("unwind=123"), in ns; -1 if absent.
long long timing(const std::string& err, const std::string& line, const std::string& key) {
  size_t at = err.find("hotsplice: timing " + line + " ");
  if (at == std::string::npos) return -1;
  size_t end = err.find('\n', at);
  std::string l = err.substr(at, end - at);
  size_t k = l.find(" " + key + "=");
  if (k == std::string::npos) return -1;
  return std::stoll(l.substr(k + key.size() + 2));
}

// Zeroes the first 64 KiB of the target's registry (as recover_test.cc
// does): its state is then corrupt and only `recover` brings it back.
void zero_registry(const Target& t) {
  std::istringstream maps(t.maps());
  int found = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:hotsplice-registry") == std::string::npos) continue;
    const uint64_t at = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    int fd = ::open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string zeros(64 * 1024, '\0');
    EXPECT_EQ(::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)), static_cast<ssize_t>(zeros.size()));
    ::close(fd);
    found++;
  }
  ASSERT_EQ(found, 1) << t.maps();
}

}  // namespace

// The failure: a throw in the replacement, caught by the unpatched
// caller. The process goes on serving and the caller saw the message.
TEST(CxxEh, ExceptionThrownInReplacementIsCaughtByUnpatchedCaller) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_throw.cc", bin, "cxxeh_throw.lp");
  Target t(bin);
  expect_answers(t, {{"parse 42", "parse=42"}, {"parse 4x2", "parse=4", "strtol stops at the x"}});

  HsRun up = hotsplice({"upload", P(t), "throw", lp}, {"HOTSPLICE_TIMING=1"});
  ASSERT_EQ(up.code, 0) << up.err;
  const long long unwind_ns = timing(up.err, "upload", "unwind");
  EXPECT_GT(unwind_ns, 0) << up.err;
  std::printf("upload: registering the unwind table took %.1f us (3 remote calls)\n", unwind_ns / 1000.0);
  OK({"apply", P(t), "throw"});

  expect_answers(t, {{"parse 42", "parse=42"},
                     {"parse 4x2", "caught=not a number: 4x2", "the replacement's exception reached the caller"},
                     {"parse x", "caught=not a number: x"},
                     {"parse 7", "parse=7"}});
  EXPECT_TRUE(t.alive()) << "terminate called: exit status " << t.wait_exit();
  expect_target_throws_fine(t);
}

// Target code throws (checked_div), the replacement catches.
TEST(CxxEh, ExceptionFromTargetCodeIsCaughtInReplacement) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_catch.cc", bin, "cxxeh_catch.lp");
  Target t(bin);
  expect_answers(t, {{"div 7 0", "caught=division by zero"}, {"div 9 3", "div=3"}});
  OK({"load", P(t), lp});
  expect_answers(t, {{"div 7 0", "div=-1", "the replacement's catch clause ran"}, {"div 9 3", "div=3"}});
  EXPECT_TRUE(t.alive());
}

// Target code throws (stage), the exception goes through the replacement
// (pipeline_v2, which holds a local with a destructor) to the target's
// caller: the payload's cleanup runs on the way.
TEST(CxxEh, ExceptionPassesThroughPayloadCodeRunningItsCleanups) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_catch.cc", bin, "cxxeh_catch.lp");
  Target t(bin);
  expect_answers(t, {{"pipe 5", "pipe=16 cleanups=0"}, {"pipe -1", "caught=stage: negative cleanups=0"}});
  OK({"load", P(t), lp});
  expect_answers(t, {{"pipe 5", "pipe=17 cleanups=1"},
                     {"pipe -1", "caught=stage: negative cleanups=2", "unwound through the payload, destructor ran"},
                     {"pipe -2", "caught=stage: negative cleanups=3"}});
  EXPECT_TRUE(t.alive());
}

// typeid and dynamic_cast on the target's objects, inside the payload; the
// payload's weak copies of the classes' typeinfo and of the inline hits()'s
// static local are bound to the target's (DESIGN.md, C++ payloads).
TEST(CxxEh, TypeidDynamicCastAndStaticLocalsAreTheTargets) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_types.cc", bin, "cxxeh_types.lp");
  Target t(bin);
  expect_answers(t, {{"shape c 2", "shape=shape size=2"}, {"hits", "hits=0"}});
  OK({"load", P(t), lp});
  expect_answers(t, {{"shape c 2", "shape=circle r=2 same-typeinfo", "dynamic_cast to the target's Circle"},
                     {"shape s 3", "shape=square side=3 same-typeinfo", "typeid of the target's Square"},
                     {"hits", "hits=2", "the payload counted in the target's static local"}});
}

// std::string and std::vector built, copied and grown in payload code
// (libstdc++ is the target's; templates the target instantiated are its).
TEST(CxxEh, PayloadUsesTheTargetsStdStringAndVector) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_types.cc", bin, "cxxeh_types.lp");
  Target t(bin);
  EXPECT_EQ(t.ask("words a b c"), "words=a,b,c");
  OK({"load", P(t), lp});
  expect_answers(t, {{"words a b c", "words=c|b|a|end n=4"},
                     {"words one", "words=one|end n=2"},
                     {"words " + std::string(40, 'x') + " y", "words=y|" + std::string(40, 'x') + "|end n=3"}});
}

// Upload registers (the unwinder knows the replacement's PC while the
// payload is only CHECKED), unload deregisters; two payloads whose tables
// are linked in libgcc's list unload in either order; target code throws
// fine afterwards (a table left over unmapped memory would crash it).
TEST(CxxEh, UnloadDeregistersTheTable) {
  std::string bin = target_bin(kTarget);
  std::string a = build("cxxeh_throw.cc", bin, "cxxeh_throw.lp");
  std::string b = build("cxxeh_catch.cc", bin, "cxxeh_catch.lp");
  Target t(bin);
  OK({"upload", P(t), "a", a});
  OK({"upload", P(t), "b", b});
  const uint64_t pa = new_addr(t, "a", kParse), pb = new_addr(t, "b", "_Z6divideii");
  EXPECT_TRUE(unwinder_knows(t, pa));
  EXPECT_TRUE(unwinder_knows(t, pb));
  expect_target_throws_fine(t);  // classifies both tables (libgcc links them)

  OK({"unload", P(t), "a"});
  EXPECT_FALSE(unwinder_knows(t, pa)) << "deregistered before the munmap";
  EXPECT_TRUE(unwinder_knows(t, pb));
  expect_target_throws_fine(t);
  OK({"apply", P(t), "b"});
  EXPECT_EQ(t.ask("div 1 0"), "div=-1");
  OK({"revert", P(t), "b"});
  OK({"unload", P(t), "b"});
  EXPECT_FALSE(unwinder_knows(t, pb));
  expect_target_throws_fine(t);
  EXPECT_EQ(t.ask("pipe -1"), "caught=stage: negative cleanups=0");

  // Again, the other order.
  OK({"upload", P(t), "a", a});
  OK({"upload", P(t), "b", b});
  expect_target_throws_fine(t);
  OK({"unload", P(t), "b"});
  OK({"unload", P(t), "a"});
  expect_target_throws_fine(t);
}

// Load hooks run with the table registered, unload hooks before it goes:
// both throw and catch inside themselves.
TEST(CxxEh, HooksThrowAndCatchWhileTheTableIsRegistered) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_hooks.cc", bin, "cxxeh_hooks.lp");
  Target t(bin);
  OK({"load", P(t), lp});
  expect_answers(t, {{"hits", "hits=100", "the load hook caught its own exception"}, {"parse 1", "parse=7"}});
  OK({"revert", P(t), "cxxeh_hooks"});
  OK({"unload", P(t), "cxxeh_hooks"});
  expect_answers(t, {{"hits", "hits=1100", "the unload hook caught its own exception"}, {"parse 1", "parse=1"}});
  expect_target_throws_fine(t);
}

// A load hook crashes: the upload is rolled back, and the table is
// deregistered before the image is unmapped.
TEST(CxxEh, FailedUploadDeregistersBeforeUnmapping) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_hook_crash.cc", bin, "cxxeh_hook_crash.lp");
  Target t(bin);
  HsRun r = hotsplice({"upload", P(t), "crash", lp});
  EXPECT_EQ(r.code, 1) << r.err;
  // (The hook's name is its symbol's, mangled: demangling is another part of issue 10.)
  EXPECT_EQ(r.err_line(),
            "hotsplice: error: payload 'crash': load hook '_ZL7on_loadv' crashed with SIGSEGV at _ZL7on_loadv+0x0 "
            "(fault address 0x28); upload rolled back");
  expect_absent(t, "crash");
  expect_target_throws_fine(t);
  EXPECT_EQ(t.ask("parse 5"), "parse=5");
}

// The tool killed at every fault point of an upload and of an unload of a
// C++ payload: after the guardian's repair the unwinder knows the table
// exactly when the payload is still there, and target code throws fine.
TEST(CxxEh, KilledAtEachUploadOrUnloadStepLeavesNoStaleTable) {
  HS_REQUIRE_FAULT_INJECTION();
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_throw.cc", bin, "cxxeh_throw_crash.lp");
  uint64_t pc = 0;  // the replacement, as the setup of the unload found it
  int kills = 0;
  for (const std::string op : {"upload", "unload"}) {
    SCOPED_TRACE(op);
    FaultOp fop{op, bin,
                [&](Target& t) {
                  if (op == "unload") {
                    OK({"upload", P(t), "x", lp});
                    pc = new_addr(t, "x", kParse);
                    ASSERT_TRUE(unwinder_knows(t, pc));
                  }
                },
                op == "upload" ? std::vector<std::string>{"upload", "x", lp} : std::vector<std::string>{"unload", "x"}};
    std::vector<std::string> names;
    ASSERT_NO_FATAL_FAILURE(list_fault_points(fop, &names));
    const char* mine = op == "upload" ? "upload:unwind-registered" : "unload:unwind-deregistered";
    ASSERT_NE(std::find(names.begin(), names.end(), mine), names.end()) << fmt::format("{}", fmt::join(names, " "));
    auto check = [&](Target& t, const HsRun& r, const std::string& point) {
      ASSERT_EQ(r.code, 128 + 9) << point << ": " << r.err;
      kills++;
      std::string notes;
      json l = list_json(t, &notes);
      const bool there = find_payload(l, "x") != nullptr;
      EXPECT_EQ(there, mapped(t, "x")) << point;
      if (there) {
        EXPECT_TRUE(unwinder_knows(t, new_addr(t, "x", kParse))) << point << ": " << r.err;
      } else if (op == "unload") {
        EXPECT_FALSE(unwinder_knows(t, pc)) << point << ": " << r.err;
      }
      expect_target_throws_fine(t);
      if (there) {
        OK({"apply", P(t), "x"});
        EXPECT_EQ(t.ask("parse z"), "caught=not a number: z") << point;
        OK({"revert", P(t), "x"});
        OK({"unload", P(t), "x"});
        expect_target_throws_fine(t);
      }
    };
    ASSERT_NO_FATAL_FAILURE(at_each_fault_point(fop, names, "HOTSPLICE_FAULT_STEP", check));
  }
  EXPECT_GE(kills, 8);
  std::printf("killed at %d fault points of upload and unload\n", kills);
}

// A C target has no unwinder loaded (no libgcc_s): nothing is registered,
// and C payloads load, apply and unload as before. The image still carries
// its unwind block (the payload has an .eh_frame), unused.
TEST(CxxEh, CTargetWithoutAnUnwinderTakesCPayloadsAsBefore) {
  std::string bin = target_bin("hello");
  std::string lp = build("hello_v2.c", bin, "cxxeh_hello_v2.lp");
  Target t(bin);
  ASSERT_EQ(t.maps().find("libgcc_s"), std::string::npos) << "the C target has no unwinder loaded";
  OK({"load", P(t), lp});
  EXPECT_EQ(hello_world(t).first, 2);
  // The first writable mapping of the image starts with the block.
  std::istringstream maps(t.maps());
  bool found = false;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:hotsplice:cxxeh_hello_v2 ") == std::string::npos || line.find(" rw-p ") == std::string::npos)
      continue;
    const uint64_t at = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    hs::Bytes b = t.read_memory(at, 8);
    EXPECT_EQ(std::string(b.begin(), b.end()), std::string(hs::kUnwindBlockMagic)) << line;
    found = true;
    break;
  }
  EXPECT_TRUE(found) << t.maps();
  OK({"revert", P(t), "cxxeh_hello_v2"});
  OK({"unload", P(t), "cxxeh_hello_v2"});
  EXPECT_EQ(hello_world(t).first, 1);
  expect_absent(t, "cxxeh_hello_v2");
}

// A registry lost and rebuilt by `recover`: the payload's table stays
// registered (recover asks the unwinder and finds it known), exceptions
// still cross the payload, and an unload of the recovered record (which
// finds the unwind block through the mapping's regions) deregisters it.
TEST(CxxEh, RecoveredPayloadKeepsItsTableAndUnloadDeregistersIt) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_throw.cc", bin, "cxxeh_throw.lp");
  Target t(bin);
  OK({"load", P(t), lp, "--name", "x"});
  const uint64_t pc = new_addr(t, "x", kParse);
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));
  HsRun r = hotsplice({"recover", P(t)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("registered it"), std::string::npos) << "the unwinder knew it all along: " << r.out;
  EXPECT_EQ(state_of(t, "x"), "APPLIED");
  EXPECT_TRUE(unwinder_knows(t, pc));
  EXPECT_EQ(t.ask("parse q"), "caught=not a number: q");
  OK({"revert", P(t), "x"});
  OK({"unload", P(t), "x"});
  EXPECT_FALSE(unwinder_knows(t, pc));
  expect_target_throws_fine(t);
}

// Two threads keep calling parse_number("7x") while the payload that makes
// it throw is loaded, reverted and unloaded ten times: registration and
// deregistration happen with those threads running (libgcc's own lock
// orders them against their throws), and no throw ever misses the table.
TEST(CxxEh, ThreadsThrowThroughThePayloadWhileItComesAndGoes) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_throw.cc", bin, "cxxeh_throw.lp");
  Target t(bin);
  ASSERT_EQ(t.ask("spin 2"), "spinning=2");
  auto spun = [&]() {
    long ok = -1, caught = -1;
    std::string a = t.ask("spun");
    EXPECT_EQ(std::sscanf(a.c_str(), "spun ok=%ld caught=%ld", &ok, &caught), 2) << a;
    return std::pair{ok, caught};
  };
  for (int i = 0; i < 10; i++) {
    SCOPED_TRACE(i);
    OK({"load", P(t), lp, "--name", "x"});
    const long caught = spun().second;
    EXPECT_TRUE(eventually([&] { return spun().second > caught; })) << "the threads' calls throw now";
    OK({"revert", P(t), "x"});
    const long ok = spun().first;
    EXPECT_TRUE(eventually([&] { return spun().first > ok; })) << "and return again";
    OK({"unload", P(t), "x"});
    ASSERT_TRUE(t.alive());
  }
  auto [ok, caught] = spun();
  EXPECT_GT(ok, 0);
  EXPECT_GT(caught, 0);
  std::printf("2 threads: %ld calls returned, %ld threw through the payload, over 10 load/revert/unload cycles\n", ok,
              caught);
  expect_target_throws_fine(t);
}

// A program linked with -static-libgcc has two unwinders: its own copy
// (which runs _Unwind_Resume from its landing pads and the payload's, and
// answers `fde`) and libgcc_s's (which libstdc++'s throws use). Both learn
// the table: a throw out of the replacement is caught, and one passing
// through it runs its cleanup and resumes through the payload frame; both
// forget it at unload.
TEST(CxxEh, StaticLibgccTargetRegistersWithBothUnwinders) {
  std::string bin = target_bin("cxxeh_static_libgcc");
  std::string a = build("cxxeh_throw.cc", bin, "cxxeh_throw_static.lp");
  std::string b = build("cxxeh_catch.cc", bin, "cxxeh_catch_static.lp");
  Target t(bin);
  ASSERT_NE(t.maps().find("libgcc_s"), std::string::npos) << "libstdc++.so brings libgcc_s";
  OK({"load", P(t), a, "--name", "a"});
  OK({"upload", P(t), "b", b});
  const uint64_t pa = new_addr(t, "a", kParse);
  EXPECT_TRUE(unwinder_knows(t, pa)) << "the program's own unwinder";
  EXPECT_EQ(t.ask("parse 1y"), "caught=not a number: 1y") << "libgcc_s's";
  OK({"revert", P(t), "a"});
  OK({"apply", P(t), "b"});
  expect_answers(t, {{"pipe -1", "caught=stage: negative cleanups=1", "resumed through the payload frame"},
                     {"div 5 0", "div=-1"}});
  OK({"revert", P(t), "b"});
  OK({"unload", P(t), "a"});
  OK({"unload", P(t), "b"});
  EXPECT_FALSE(unwinder_knows(t, pa));
  expect_target_throws_fine(t);
  EXPECT_EQ(t.ask("pipe -1"), "caught=stage: negative cleanups=1");
}

// An unload refused because a thread is still inside the payload (reverted
// with --force while it slept there): the table, deregistered before the
// stop window, is registered again, so when that thread wakes and throws
// out of the replacement its caller catches it.
TEST(CxxEh, RefusedUnloadRegistersTheTableAgain) {
  std::string bin = target_bin(kTarget);
  std::string lp = build("cxxeh_block.cc", bin, "cxxeh_block.lp");
  Target t(bin);
  OK({"load", P(t), lp, "--name", "x"});
  const uint64_t pc = new_addr(t, "x", kParse);
  ASSERT_EQ(t.ask("bg wait"), "bg started");
  OK({"revert", P(t), "x", "--force"});
  HsRun r = hotsplice({"unload", P(t), "x", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  const std::string head = "hotsplice: error: unload of 'x' is not safe after 300 ms: thread ";
  EXPECT_EQ(r.err_line().substr(0, head.size()), head) << r.err;
  EXPECT_NE(r.err_line().find(" will return into the replacement for '_Z12parse_numberPKc' in payload 'x' (return address "),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(unwinder_knows(t, pc)) << "registered again";
  EXPECT_EQ(state_of(t, "x"), "CHECKED");
  EXPECT_TRUE(eventually([&] { return t.ask("bgres") == "bg caught=woke up"; })) << t.ask("bgres");
  OK({"unload", P(t), "x"});
  EXPECT_FALSE(unwinder_knows(t, pc));
  expect_target_throws_fine(t);
}

// A program built with -fvisibility=hidden: the classes' typeinfo stay
// weak (hidden) and the static local unique (hidden) in its .symtab; the
// payload's default-visibility weak copies still bind to them.
TEST(CxxEh, HiddenVisibilityTargetStillSharesTypeinfo) {
  std::string bin = target_bin("cxxeh_hidden");
  std::string lp = build("cxxeh_types.cc", bin, "cxxeh_types_hidden.lp");
  Target t(bin);
  OK({"load", P(t), lp});
  expect_answers(t, {{"shape c 2", "shape=circle r=2 same-typeinfo"},
                     {"shape s 3", "shape=square side=3 same-typeinfo"},
                     {"hits", "hits=2"},
                     {"words a b", "words=b|a|end n=3"}});
}
