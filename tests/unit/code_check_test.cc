// Unit tests of the code check (engine/code_check.h), driven with a fake
// target memory and a registry state built here: which bytes at patch sites
// and call sites pass for what the registry says, the one line a mismatch
// is refused with, how few reads the sites take, and what keeps a payload
// from being unloaded.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include "engine/code_check.h"
#include "support/assert_ok.h"
#include "support/fake_target.h"

namespace hs {
namespace {

using test::call;
using test::FakeMemory;
using test::jump;
using test::kCaller;
using test::kFn;
using test::kOther;
using test::kPrologue;

constexpr pid_t kPid = 123;
const Bytes kOriginal(kPrologue.begin(), kPrologue.begin() + 5);  // "55 48 89 e5 41"

// "fix" (f -> 0x40000010) and "b" (f -> 0x40010010, stacked on fix).
PayloadRecord fix() { return test::fake_payload("fix", 0x40000000, 0x40000010); }
PayloadRecord b() { return test::fake_payload("b", 0x40010000, 0x40010010); }

void set_applied(PayloadRecord& p, u64 seq, Bytes undo) {
  p.state = PayloadState::Applied;
  p.apply_seq = seq;
  p.funcs[0].applied = true;
  p.funcs[0].undo = std::move(undo);
}

// f's entry holding `entry`, the caller's `call` at kCaller + 4 going to `callee`.
FakeMemory memory(const Bytes& entry, u64 callee) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  m.put(kFn, entry);
  m.put(kCaller, {0x55, 0x48, 0x89, 0xe5});
  m.put(kCaller + 4, call(kCaller + 4, callee));
  m.put(kCaller + 9, {0x5d, 0xc3});
  return m;
}

std::string refusal(const RegistryState& s, const FakeMemory& m) {
  auto st = check_code(s, m.reader(), kPid);
  if (st) return "(accepted)";
  EXPECT_EQ(st.error().kind(), ErrorKind::Corrupt);
  return st.error().message();
}

// ---- patch sites ----

TEST(CodeCheck, AnAppliedPayloadsJumpAndRedirectedCallPass) {
  RegistryState s;
  s.payloads.push_back(fix());
  set_applied(s.payloads[0], 1, kOriginal);
  EXPECT_OK(check_code(s, memory(s.payloads[0].funcs[0].insn, 0x40000010).reader(), kPid));
  EXPECT_OK(check_code(s, memory(s.payloads[0].funcs[0].insn, kFn).reader(), kPid)) << "--entry-only";
}

TEST(CodeCheck, AFreshlyUploadedPayloadPassesOverTheOriginalCode) {
  RegistryState s;
  s.payloads.push_back(fix());
  EXPECT_OK(check_code(s, memory(kOriginal, kFn).reader(), kPid));
}

TEST(CodeCheck, OriginalBytesWhereTheRegistrySaysAppliedAreRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  set_applied(s.payloads[0], 1, kOriginal);
  EXPECT_EQ(refusal(s, memory(kOriginal, kFn)),
            "PID 123: patch site of 'f' (payload 'fix') at 0x401000 holds 55 48 89 e5 41, but the registry says it "
            "holds e9 0b f0 bf 3f (APPLIED)");
}

TEST(CodeCheck, AJumpElsewhereWhereTheRegistrySaysAppliedIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  set_applied(s.payloads[0], 1, kOriginal);
  EXPECT_EQ(refusal(s, memory(jump(kFn, 0x40020010), kFn)),
            "PID 123: patch site of 'f' (payload 'fix') at 0x401000 holds e9 0b f0 c1 3f, but the registry says it "
            "holds e9 0b f0 bf 3f (APPLIED)");
}

// Two payloads applied on f: only the topmost one's jump may be there.
TEST(CodeCheck, AStackedSiteMustHoldTheTopmostJump) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  set_applied(s.payloads[0], 1, kOriginal);
  set_applied(s.payloads[1], 2, s.payloads[0].funcs[0].insn);
  EXPECT_OK(check_code(s, memory(s.payloads[1].funcs[0].insn, 0x40010010).reader(), kPid));
  EXPECT_EQ(refusal(s, memory(s.payloads[0].funcs[0].insn, kFn)),
            "PID 123: patch site of 'f' (payload 'b') at 0x401000 holds e9 0b f0 bf 3f, but the registry says it "
            "holds e9 0b f0 c0 3f (APPLIED)");
}

TEST(CodeCheck, AJumpLeftBehindByARevertedPayloadIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads[0].funcs[0].undo = kOriginal;  // applied once, reverted since
  EXPECT_OK(check_code(s, memory(kOriginal, kFn).reader(), kPid));
  EXPECT_EQ(refusal(s, memory(s.payloads[0].funcs[0].insn, kFn)),
            "PID 123: patch site of 'f' (payload 'fix') at 0x401000 holds e9 0b f0 bf 3f, but the registry says it "
            "holds 55 48 89 e5 41 (the original bytes: no payload is APPLIED there)");
}

TEST(CodeCheck, AJumpOfANeverAppliedPayloadIsRefusedWithoutKnownOriginals) {
  RegistryState s;
  s.payloads.push_back(fix());
  EXPECT_EQ(refusal(s, memory(s.payloads[0].funcs[0].insn, kFn)),
            "PID 123: patch site of 'f' (payload 'fix') at 0x401000 holds e9 0b f0 bf 3f, the jump of payload 'fix', "
            "but the registry says no payload is APPLIED there");
}

// b, once stacked on fix, saved fix's jump as its undo: that is not what the
// site holds with nothing applied.
TEST(CodeCheck, AStackedPayloadsUndoIsNotTakenForTheOriginal) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  s.payloads[0].funcs[0].undo = kOriginal;
  s.payloads[1].funcs[0].undo = s.payloads[0].funcs[0].insn;
  EXPECT_OK(check_code(s, memory(kOriginal, kFn).reader(), kPid));
  EXPECT_EQ(refusal(s, memory(s.payloads[0].funcs[0].insn, kFn)),
            "PID 123: patch site of 'f' (payload 'fix') at 0x401000 holds e9 0b f0 bf 3f, but the registry says it "
            "holds 55 48 89 e5 41 (the original bytes: no payload is APPLIED there)");
}

// A NOP patch (6 bytes) once applied on fix saved fix's jump and the byte
// after it; once fix is unloaded that undo must say what is beneath.
TEST(CodeCheck, AStackedUndoOutlivesThePayloadBelowOnceItIsForgotten) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads[0].funcs[0].undo = kOriginal;
  PayloadRecord nop = b();
  nop.funcs[0].new_addr = 0;
  nop.funcs[0].insn = x86_64::make_nops(6);
  Bytes saved = s.payloads[0].funcs[0].insn;
  saved.push_back(kPrologue[5]);
  nop.funcs[0].undo = saved;
  s.payloads.push_back(nop);
  const FakeMemory m = memory(kOriginal, kFn);
  EXPECT_OK(check_code(s, m.reader(), kPid));
  forget_patches_of(s, s.payloads[0]);
  s.payloads.erase(s.payloads.begin());
  EXPECT_EQ(s.payloads[0].funcs[0].undo, Bytes(kPrologue.begin(), kPrologue.begin() + 6));
  EXPECT_OK(check_code(s, m.reader(), kPid));
}

// A NOP patch: its NOPs where applied; a site with NOPs and nothing applied
// is checked against the saved original.
TEST(CodeCheck, ANopPatchIsCheckedLikeAJump) {
  RegistryState s;
  PayloadRecord nop = fix();
  nop.funcs[0].new_addr = 0;
  nop.funcs[0].insn = x86_64::make_nops(5);
  nop.funcs[0].call_sites.clear();
  s.payloads.push_back(nop);
  EXPECT_OK(check_code(s, memory(kOriginal, kFn).reader(), kPid));
  set_applied(s.payloads[0], 1, kOriginal);
  EXPECT_OK(check_code(s, memory(nop.funcs[0].insn, kFn).reader(), kPid));
  EXPECT_NE(refusal(s, memory(kOriginal, kFn)), "(accepted)");
  s.payloads[0].state = PayloadState::Checked;
  EXPECT_NE(refusal(s, memory(nop.funcs[0].insn, kFn)), "(accepted)");
}

// ---- call sites ----

// The forged case: a call pointing into a payload that is not the
// top of f's applied stack.
TEST(CodeCheck, ACallIntoACheckedPayloadIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  set_applied(s.payloads[0], 1, kOriginal);
  EXPECT_EQ(refusal(s, memory(s.payloads[0].funcs[0].insn, 0x40010010)),
            "PID 123: call site of 'f' (payload 'fix') at 0x402004 holds e8 07 e0 c0 3f, a call to 0x40010010 in "
            "payload 'b' (CHECKED), but the registry says it goes to 'f' at 0x401000 or to its replacement at "
            "0x40000010 in payload 'fix' (APPLIED)");
}

TEST(CodeCheck, ACallIntoAReplacementBelowTheTopIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  set_applied(s.payloads[0], 1, kOriginal);
  set_applied(s.payloads[1], 2, s.payloads[0].funcs[0].insn);
  EXPECT_EQ(refusal(s, memory(s.payloads[1].funcs[0].insn, 0x40000010)),
            "PID 123: call site of 'f' (payload 'fix') at 0x402004 holds e8 07 e0 bf 3f, a call to 0x40000010 in "
            "payload 'fix' (APPLIED), but the registry says it goes to 'f' at 0x401000 or to its replacement at "
            "0x40010010 in payload 'b' (APPLIED)");
}

TEST(CodeCheck, ARedirectedCallWithNothingAppliedIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  EXPECT_EQ(refusal(s, memory(kOriginal, 0x40000010)),
            "PID 123: call site of 'f' (payload 'fix') at 0x402004 holds e8 07 e0 bf 3f, a call to 0x40000010 in "
            "payload 'fix' (CHECKED), but the registry says it goes to 'f' at 0x401000");
}

TEST(CodeCheck, ACallSiteThatIsNoLongerACallIsRefused) {
  RegistryState s;
  s.payloads.push_back(fix());
  FakeMemory m = memory(kOriginal, kFn);
  m.put(kCaller + 4, {0x0f, 0x1f, 0x44, 0x00, 0x00});
  EXPECT_EQ(refusal(s, m),
            "PID 123: call site of 'f' (payload 'fix') at 0x402004 holds 0f 1f 44 00 00, not a call or jump, but the "
            "registry says it goes to 'f' at 0x401000");
}

// A call site inside bytes an applied patch covers holds the patch: the
// patch site's check covers it.
TEST(CodeCheck, ACallSiteInsideAnAppliedPatchIsLeftToThePatchSite) {
  RegistryState s;
  s.payloads.push_back(fix());
  PayloadRecord caller = test::fake_payload("caller", 0x40020000, 0x40020010);
  caller.funcs[0].name = "caller";
  caller.funcs[0].old_addr = kCaller + 2;
  caller.funcs[0].insn = jump(kCaller + 2, 0x40020010);
  caller.funcs[0].call_sites.clear();
  set_applied(caller, 1, {0x89, 0xe5, 0xe8, 0xf7, 0xef});
  s.payloads.push_back(caller);
  FakeMemory m = memory(kOriginal, kFn);
  m.put(kCaller + 2, caller.funcs[0].insn);
  EXPECT_OK(check_code(s, m.reader(), kPid));
}

// ---- reads ----

// fix with its one call site at kFn + 0x40 instead (in a function after f).
RegistryState near_call() {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads[0].funcs[0].call_sites = {kFn + 0x40};
  return s;
}

TEST(CodeCheck, NearbySitesAreReadInOneRead) {
  FakeMemory m;
  m.put(kFn, Bytes(0x40, 0xcc));
  m.put(kFn, kPrologue);
  m.put(kFn + 0x40, call(kFn + 0x40, kFn));
  ASSERT_OK(check_code(near_call(), m.reader(), kPid));
  EXPECT_EQ(m.reads(), 1);
}

// Between the two, a hole (unmapped): one failed read, then one per site.
TEST(CodeCheck, AFailedMergedReadFallsBackToOneReadPerSite) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  m.put(kFn + 0x40, call(kFn + 0x40, kFn));
  ASSERT_OK(check_code(near_call(), m.reader(), kPid));
  EXPECT_EQ(m.reads(), 3);
}

// Sites pages apart are read apart.
TEST(CodeCheck, DistantSitesAreReadApart) {
  RegistryState s;
  s.payloads.push_back(fix());
  const FakeMemory m = memory(kOriginal, kFn);
  ASSERT_OK(check_code(s, m.reader(), kPid));
  EXPECT_EQ(m.reads(), 2);
}

TEST(CodeCheck, AnUnreadableSiteIsAnError) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads[0].funcs[0].call_sites = {0x900000};
  auto st = check_code(s, memory(kOriginal, kFn).reader(), kPid);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message(), "cannot read 0x900000");
}

// ---- in the stop window: the bytes the writes replace ----

// A replace's writes: fix's jump off (back to the original), b's on, at the
// same site; the second write's `before` is what the first leaves.
std::vector<JournalWrite> replace_writes() {
  const Bytes a = fix().funcs[0].insn, c = b().funcs[0].insn;
  return {{kFn, a, kOriginal}, {kFn, kOriginal, c}};
}

TEST(CheckWrites, BytesAsPlannedPass) {
  const FakeMemory m = memory(fix().funcs[0].insn, kFn);
  EXPECT_OK(check_writes(replace_writes(), m.reader(), kPid));
  EXPECT_EQ(m.reads(), 1);
}

TEST(CheckWrites, BytesChangedSinceThePlanAreRefused) {
  auto st = check_writes(replace_writes(), memory(kOriginal, kFn).reader(), kPid);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::Corrupt);
  EXPECT_EQ(st.error().message(),
            "PID 123: 0x401000 changed while the operation was prepared: it holds 55 48 89 e5 41, not e9 0b f0 bf 3f "
            "as it did a moment ago; nothing was written");
}

// ---- what refers into a payload before it is unloaded ----

std::string unload_refusal(const RegistryState& s, const PayloadRecord& p, const FakeMemory& m,
                           std::span<const PointerArea> areas = {}) {
  auto st = check_unreferenced(s, p, areas, m.reader(), kPid);
  if (st) return "(accepted)";
  EXPECT_EQ(st.error().kind(), ErrorKind::State);
  return st.error().message();
}

constexpr u64 kGot = 0x404000;

TEST(Unreferenced, NothingReferringIntoItPasses) {
  RegistryState s;
  s.payloads.push_back(fix());
  FakeMemory m = memory(kOriginal, kFn);
  m.put(kGot, Bytes(16, 0));
  const PointerArea got{kGot, 16, "GOT slot", "/bin/t"};
  EXPECT_EQ(unload_refusal(s, s.payloads[0], m, std::span(&got, 1)), "(accepted)");
}

TEST(Unreferenced, APatchSiteJumpingIntoItRefuses) {
  RegistryState s;
  s.payloads.push_back(fix());
  EXPECT_EQ(unload_refusal(s, s.payloads[0], memory(s.payloads[0].funcs[0].insn, kFn)),
            "PID 123: cannot unload 'fix': the patch site of 'f' at 0x401000 (e9 0b f0 bf 3f) points into it at "
            "0x40000010");
}

TEST(Unreferenced, ACallSiteIntoItRefuses) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  EXPECT_EQ(unload_refusal(s, s.payloads[1], memory(kOriginal, 0x40010010)),
            "PID 123: cannot unload 'b': the call site of 'f' at 0x402004 (e8 07 e0 c0 3f) points into it at "
            "0x40010010");
}

TEST(Unreferenced, AGotSlotIntoItRefuses) {
  RegistryState s;
  s.payloads.push_back(fix());
  FakeMemory m = memory(kOriginal, kFn);
  m.put(kGot, Bytes(16, 0));
  Bytes ptr(8);
  store_le<u64>(ptr.data(), 0x40000123);
  m.put(kGot + 8, ptr);
  const PointerArea got{kGot, 16, "GOT slot", "/bin/t"};
  EXPECT_EQ(unload_refusal(s, s.payloads[0], m, std::span(&got, 1)),
            "PID 123: cannot unload 'fix': the GOT slot at 0x404008 of /bin/t points into it at 0x40000123");
}

TEST(Unreferenced, AHookOfAnotherPayloadInItRefuses) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  s.payloads[1].hooks.push_back({"apply", "on_apply", 0x40000040});
  EXPECT_EQ(unload_refusal(s, s.payloads[0], memory(kOriginal, kFn)),
            "PID 123: cannot unload 'fix': the apply hook 'on_apply' of payload 'b' points into it at 0x40000040");
}

// b's data (a GOT slot the loader built for an export of fix) points into fix.
TEST(Unreferenced, APointerInAnotherPayloadsDataRefuses) {
  RegistryState s;
  s.payloads.push_back(fix());
  s.payloads.push_back(b());
  FakeMemory m = memory(kOriginal, kFn);
  Bytes data(0x1000, 0);
  store_le<u64>(data.data() + 0x18, 0x40000200);
  m.put(0x40011000, data);
  EXPECT_EQ(unload_refusal(s, s.payloads[0], m),
            "PID 123: cannot unload 'fix': the pointer at 0x40011018 of payload 'b' points into it at 0x40000200");
}

}  // namespace
}  // namespace hs
