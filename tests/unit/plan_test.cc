// Unit tests of operation planning (engine/plan.h), driven with a fake
// target memory and a registry state built here: the writes an apply or a
// revert plans, the checks that refuse one, and where direct call sites are
// pointed.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include "arch/x86_64.h"
#include "engine/plan.h"
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
using test::rel32;

PayloadRecord payload(std::string name, u64 base, u64 new_addr, u32 patch_offset = 0) {
  return test::fake_payload(std::move(name), base, new_addr, patch_offset);
}

TEST(PlanApply, WritesTheJumpAndKeepsTheBytesItReplaces) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  const PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_apply(p, mem, plan).has_value());
  ASSERT_EQ(mem.writes().size(), 1u);
  const JournalWrite& w = mem.writes()[0];
  EXPECT_EQ(w.addr, kFn);
  EXPECT_EQ(w.before, Bytes(kPrologue.begin(), kPrologue.begin() + 5));
  EXPECT_EQ(w.after, p.funcs[0].insn);
  ASSERT_EQ(plan.applied.size(), 1u);
  EXPECT_EQ(std::get<0>(plan.applied[0]), "fix");
  EXPECT_EQ(std::get<1>(plan.applied[0]), 0u);
  EXPECT_EQ(std::get<2>(plan.applied[0]), w.before);
  ASSERT_EQ(plan.guards.size(), 1u);
  EXPECT_EQ(plan.guards[0].range.begin.value(), kFn);
  EXPECT_EQ(plan.guards[0].range.end.value(), kFn + kPrologue.size());
  EXPECT_EQ(plan.guards[0].what, "function 'f'");
  // The overlay reads what the plan leaves there.
  EXPECT_EQ(*mem.read(kFn, 5), p.funcs[0].insn);
}

TEST(PlanApply, AfterAnEndbr64TheJumpGoesFourBytesIn) {
  FakeMemory m;
  Bytes code = {0xf3, 0x0f, 0x1e, 0xfa};
  code.insert(code.end(), kPrologue.begin(), kPrologue.end());
  m.put(kFn, code);
  PayloadRecord p = payload("fix", 0x40000000, 0x40000010, 4);
  p.funcs[0].old_size = static_cast<u32>(code.size());
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_apply(p, mem, plan).has_value());
  ASSERT_EQ(mem.writes().size(), 1u);
  EXPECT_EQ(mem.writes()[0].addr, kFn + 4);
  EXPECT_EQ(mem.writes()[0].before, Bytes(kPrologue.begin(), kPrologue.begin() + 5));
}

TEST(PlanApply, ExpectationMismatchIsRefusedNamingTheBytes) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  p.funcs[0].expect = {0x55, 0x48, 0x8b};
  Overlay mem(m.reader());
  Plan plan;
  auto st = plan_apply(p, mem, plan);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().kind(), ErrorKind::BadTarget);
  EXPECT_EQ(st.error().message(), "payload 'fix': function 'f': expected bytes 55488b at 0x401000, found 554889");
  EXPECT_TRUE(mem.writes().empty());
}

TEST(PlanApply, MatchingExpectationIsAccepted) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  p.funcs[0].expect = Bytes(kPrologue.begin(), kPrologue.begin() + 8);
  Overlay mem(m.reader());
  Plan plan;
  EXPECT_TRUE(plan_apply(p, mem, plan).has_value());
  EXPECT_EQ(mem.writes().size(), 1u);
}

TEST(PlanApply, AFunctionAlreadyHoldingThePatchIsRefused) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  const PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  m.put(kFn, p.funcs[0].insn);
  Overlay mem(m.reader());
  Plan plan;
  auto st = plan_apply(p, mem, plan);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().message(), "payload 'fix': function 'f' at 0x401000 already holds this patch");
}

TEST(PlanRevert, PutsTheUndoBytesBackAndGuardsEntryAndCode) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  p.funcs[0].undo = Bytes(kPrologue.begin(), kPrologue.begin() + 5);
  p.funcs[0].applied = true;
  p.state = PayloadState::Applied;
  m.put(kFn, p.funcs[0].insn);
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_revert(p, mem, plan).has_value());
  ASSERT_EQ(mem.writes().size(), 1u);
  EXPECT_EQ(mem.writes()[0].addr, kFn);
  EXPECT_EQ(mem.writes()[0].before, p.funcs[0].insn);
  EXPECT_EQ(mem.writes()[0].after, p.funcs[0].undo);
  ASSERT_EQ(plan.guards.size(), 2u);
  EXPECT_EQ(plan.guards[0].what, "the patched entry of function 'f'");
  EXPECT_EQ(plan.guards[0].range.begin.value(), kFn);
  EXPECT_EQ(plan.guards[0].range.end.value(), kFn + 5);
  EXPECT_EQ(plan.guards[1].what, "the code of payload 'fix'");  // the executable region only
  EXPECT_EQ(plan.guards[1].range.begin.value(), 0x40000000u);
  EXPECT_EQ(plan.guards[1].range.end.value(), 0x40001000u);
  EXPECT_EQ(*mem.read(kFn, kPrologue.size()), kPrologue);
}

TEST(PlanRevert, ASiteNotHoldingThePatchIsAnInternalError) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  PayloadRecord p = payload("fix", 0x40000000, 0x40000010);
  Overlay mem(m.reader());
  Plan plan;
  auto st = plan_revert(p, mem, plan);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().kind(), ErrorKind::Internal);
  EXPECT_EQ(st.error().message(), "payload 'fix': function 'f' at 0x401000 holds 554889e541, not this payload's "
                                  "patch " + to_hex(p.funcs[0].insn));
}

// A replace: reverting the stack, then applying, against one overlay. The
// new payload's undo bytes are the original ones, not the old jump.
TEST(PlanReplace, TheNewPayloadSeesTheBytesTheRevertLeaves) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  PayloadRecord old = payload("old", 0x40000000, 0x40000010);
  old.funcs[0].undo = Bytes(kPrologue.begin(), kPrologue.begin() + 5);
  m.put(kFn, old.funcs[0].insn);
  const PayloadRecord fresh = payload("new", 0x40010000, 0x40010010);
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_revert(old, mem, plan).has_value());
  ASSERT_TRUE(plan_apply(fresh, mem, plan).has_value());
  ASSERT_EQ(mem.writes().size(), 2u);
  EXPECT_EQ(mem.writes()[1].before, old.funcs[0].undo);
  EXPECT_EQ(std::get<2>(plan.applied.at(0)), old.funcs[0].undo);
  EXPECT_EQ(*mem.read(kFn, 5), fresh.funcs[0].insn);
}

// The caller's `call f` at kCaller + 4.
FakeMemory with_caller(u64 callee) {
  FakeMemory m;
  m.put(kFn, kPrologue);
  m.put(kCaller, {0x55, 0x48, 0x89, 0xe5});
  m.put(kCaller + 4, call(kCaller + 4, callee));
  m.put(kCaller + 9, {0x5d, 0xc3});
  return m;
}

// A registry holding "fix": f -> 0x40000010.
RegistryState with_fix() {
  RegistryState state;
  state.payloads.push_back(payload("fix", 0x40000000, 0x40000010));
  return state;
}

// Plans applying the registry's first payload on m, then its call sites
// (`redirect` or not); *writes gets the writes planned.
void plan_first_with_call_sites(const FakeMemory& m, const RegistryState& state, bool redirect,
                                std::vector<JournalWrite>* writes) {
  const PayloadRecord* p = &state.payloads[0];
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_apply(*p, mem, plan).has_value());
  ASSERT_TRUE(plan_call_sites(state, std::span(&p, 1), redirect, mem).has_value());
  *writes = mem.writes();
}

TEST(PlanCallSites, ACallIsPointedAtTheReplacementTheEntryJumpsTo) {
  FakeMemory m = with_caller(kFn);
  std::vector<JournalWrite> writes;
  ASSERT_NO_FATAL_FAILURE(plan_first_with_call_sites(m, with_fix(), true, &writes));
  ASSERT_EQ(writes.size(), 2u);
  const JournalWrite& w = writes[1];
  EXPECT_EQ(w.addr, kCaller + 5) << "only the rel32 changes";
  EXPECT_EQ(w.before, rel32(kCaller + 4, kFn));
  EXPECT_EQ(w.after, rel32(kCaller + 4, 0x40000010));
}

TEST(PlanCallSites, WithoutRedirectionTheCallStaysOnTheFunction) {
  FakeMemory m = with_caller(kFn);
  std::vector<JournalWrite> writes;
  ASSERT_NO_FATAL_FAILURE(plan_first_with_call_sites(m, with_fix(), false, &writes));
  EXPECT_EQ(writes.size(), 1u);
}

// Two payloads stacked on f: the call follows the one whose jump is at the
// entry once the writes are made, i.e. the top of the stack.
TEST(PlanCallSites, TheCallFollowsTheTopOfTheStack) {
  RegistryState state;
  state.payloads.push_back(payload("a", 0x40000000, 0x40000010));
  state.payloads.push_back(payload("b", 0x40010000, 0x40010010));
  PayloadRecord& a = state.payloads[0];
  PayloadRecord& b = state.payloads[1];
  a.state = PayloadState::Applied;
  a.funcs[0].undo = Bytes(kPrologue.begin(), kPrologue.begin() + 5);
  // a is applied, its call redirected; b is being applied on top.
  FakeMemory m = with_caller(0x40000010);
  m.put(kFn, a.funcs[0].insn);
  const PayloadRecord* top = &b;
  Overlay mem(m.reader());
  Plan plan;
  ASSERT_TRUE(plan_apply(b, mem, plan).has_value());
  ASSERT_TRUE(plan_call_sites(state, std::span(&top, 1), true, mem).has_value());
  ASSERT_EQ(mem.writes().size(), 2u);
  EXPECT_EQ(mem.writes()[1].before, rel32(kCaller + 4, 0x40000010));
  EXPECT_EQ(mem.writes()[1].after, rel32(kCaller + 4, 0x40010010));

  // Reverting b again puts the call back on a's replacement.
  Overlay back(m.reader());
  b.funcs[0].undo = a.funcs[0].insn;
  m.put(kFn, b.funcs[0].insn);
  m.put(kCaller + 5, rel32(kCaller + 4, 0x40010010));
  Plan revert;
  ASSERT_TRUE(plan_revert(b, back, revert).has_value());
  ASSERT_TRUE(plan_call_sites(state, std::span(&top, 1), true, back).has_value());
  ASSERT_EQ(back.writes().size(), 2u);
  EXPECT_EQ(back.writes()[1].after, rel32(kCaller + 4, 0x40000010));
}

TEST(PlanCallSites, ACallToSomethingElseIsLeftAlone) {
  FakeMemory m = with_caller(kOther);  // not f, nor a replacement of it
  std::vector<JournalWrite> writes;
  ASSERT_NO_FATAL_FAILURE(plan_first_with_call_sites(m, with_fix(), true, &writes));
  EXPECT_EQ(writes.size(), 1u);
}

TEST(PlanCallSites, BytesThatAreNoLongerACallAreLeftAlone) {
  FakeMemory m = with_caller(kFn);
  m.put(kCaller + 4, {0x0f, 0x1f, 0x44, 0x00, 0x00});  // someone NOPped it out
  std::vector<JournalWrite> writes;
  ASSERT_NO_FATAL_FAILURE(plan_first_with_call_sites(m, with_fix(), true, &writes));
  EXPECT_EQ(writes.size(), 1u);
}

// A site inside bytes another payload patches or expects at a function
// entry belongs to that patch: it is not touched.
TEST(PlanCallSites, ASiteOverlappingAnEntryPatchIsLeftAlone) {
  FakeMemory m = with_caller(kFn);
  RegistryState state;
  state.payloads.push_back(payload("fix", 0x40000000, 0x40000010));
  PayloadRecord caller_patch = payload("other", 0x40020000, 0x40020010);
  caller_patch.funcs[0].name = "caller";
  caller_patch.funcs[0].old_addr = kCaller;
  caller_patch.funcs[0].call_sites.clear();
  caller_patch.funcs[0].insn = jump(kCaller, 0x40020010);
  caller_patch.funcs[0].expect = Bytes(8, 0);  // kCaller .. kCaller + 8 covers the call's first bytes
  state.payloads.push_back(caller_patch);
  std::vector<JournalWrite> writes;
  ASSERT_NO_FATAL_FAILURE(plan_first_with_call_sites(m, state, true, &writes));
  EXPECT_EQ(writes.size(), 1u);
}

}  // namespace
}  // namespace hs
