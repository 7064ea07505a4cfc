// Unit tests of the engine's registry: its serialisation, with its
// extensions. (The other engine units that need no process have their own
// tests: plan_test, placement_test, dwarf_expr_test, unwind_elf_test.)
#include <gtest/gtest.h>

#include <algorithm>

#include <cstring>

#include "engine/registry.h"
#include "engine/repair.h"
#include "engine/tls.h"

namespace hs {
namespace {

RegistryState sample_state() {
  RegistryState s;
  s.next_seq = 7;
  for (int i = 0; i < 2; i++) {
    PayloadRecord p;
    p.name = fmt::format("p{}", i);
    p.file = "/x.lp";
    p.state = i == 0 ? PayloadState::Applied : PayloadState::Checked;
    p.build_id = {1, 2, 3};
    p.object_path = "/bin/t";
    p.base = 0x10000 * (i + 1);
    p.size = 0x3000;
    p.regions.push_back({0, 0x1000, 5});
    FuncState f;
    f.name = "f";
    f.old_addr = 0x400000;
    f.old_size = 16;
    f.new_addr = p.base + 0x10;
    f.new_size = 8;
    f.insn = {0xe9, 1, 2, 3, 4};
    if (i == 0) {
      f.applied = true;
      f.undo = {0x55, 0x48, 0x89, 0xe5, 0x90};
    }
    if (i == 0) f.call_sites = {0x400100, 0x400240};
    p.funcs.push_back(f);
    p.exports.emplace_back("g", p.base + 0x1234);
    p.modinfo.emplace_back("cve", "x");
    p.upload_seq = 3 + i;
    p.apply_seq = i == 0 ? 5 : 0;
    p.eh_frame_offset = 0x1000 + 0x100 * i;
    p.eh_frame_size = 0x38;
    s.payloads.push_back(p);
  }
  return s;
}

TEST(Registry, UnwindInformationRoundTrips) {
  RegistryState s = sample_state();
  auto back = deserialize(serialize(s));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  ASSERT_EQ(back->payloads.size(), 2u);
  for (size_t i = 0; i < 2; i++) {
    EXPECT_EQ(back->payloads[i].eh_frame_offset, s.payloads[i].eh_frame_offset);
    EXPECT_EQ(back->payloads[i].eh_frame_size, s.payloads[i].eh_frame_size);
    EXPECT_EQ(back->payloads[i].name, s.payloads[i].name);
    EXPECT_EQ(back->payloads[i].apply_seq, s.payloads[i].apply_seq);
  }
  EXPECT_EQ(serialize(*back), serialize(s));
}

// What a tool from before the extension wrote (the same stream without it)
// still reads, with no unwind information; a tag a reader does not know is
// skipped.
TEST(Registry, ExtensionsAreOptionalAndUnknownOnesAreSkipped) {
  RegistryState s = sample_state();
  Bytes full = serialize(s);
  // The extensions start with the unwind one: tag 1, body length, count.
  Bytes start(20, 0);
  store_le<u32>(start.data(), 1);
  store_le<u64>(start.data() + 4, 8 + 16 * s.payloads.size());
  store_le<u64>(start.data() + 12, s.payloads.size());
  auto at = std::search(full.begin(), full.end(), start.begin(), start.end());
  ASSERT_NE(at, full.end());
  Bytes old(full.begin(), at);
  auto back = deserialize(old);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  ASSERT_EQ(back->payloads.size(), 2u);
  EXPECT_EQ(back->payloads[0].eh_frame_size, 0u);
  EXPECT_EQ(back->payloads[1].name, "p1");

  Bytes more = full;
  const u8 unknown[] = {0x63, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9};  // tag 99, 3 bytes
  more.insert(more.end(), std::begin(unknown), std::end(unknown));
  back = deserialize(more);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->payloads[1].eh_frame_offset, 0x1100u);
}

TEST(Registry, CallSitesRoundTripPerFunction) {
  RegistryState s = sample_state();
  auto back = deserialize(serialize(s));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->payloads[0].funcs[0].call_sites, (std::vector<u64>{0x400100, 0x400240}));
  EXPECT_TRUE(back->payloads[1].funcs[0].call_sites.empty());
}

// Version 2 came with the call sites: a version-1 registry (no call sites)
// still reads; a version the tool does not know is refused by name.
TEST(Registry, FormatVersionOneStillReadsAndAnUnknownOneIsRefused) {
  RegistryState s = sample_state();
  for (auto& p : s.payloads)
    for (auto& f : p.funcs) f.call_sites.clear();
  Bytes b = serialize(s);
  ASSERT_EQ(load_le<u32>(b.data()), 2u);
  store_le<u32>(b.data(), 1);
  auto back = deserialize(b);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->payloads.size(), 2u);
  store_le<u32>(b.data(), 3);
  back = deserialize(b);
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(), "registry format version 3 is not supported (expected 1 to 2)");
}

TEST(Registry, CallSitesForTheWrongNumberOfFunctionsAreCorrupt) {
  RegistryState s = sample_state();
  Bytes b = serialize(s);
  // The call-site extension is the last one: tag 3, then its body; cut the
  // body's first payload down to claim 2 functions.
  Bytes tag(4, 0);
  store_le<u32>(tag.data(), 3);
  auto at = std::find_end(b.begin(), b.end(), tag.begin(), tag.end());
  ASSERT_NE(at, b.end());
  const size_t body = static_cast<size_t>(at - b.begin()) + 4 + 8;  // tag, length
  ASSERT_EQ(load_le<u64>(b.data() + body), 2u);                     // payloads
  store_le<u64>(b.data() + body + 8, 2);                            // functions of p0
  auto back = deserialize(b);
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(), "registry is corrupt: call sites for 2 functions of payload 'p0', expected 1");
  EXPECT_EQ(back.error().kind(), ErrorKind::Corrupt);
}

TEST(Registry, UnwindInformationOutsideThePayloadIsCorrupt) {
  RegistryState s = sample_state();
  s.payloads[1].eh_frame_offset = 0x2ff0;  // + 0x38 runs past 0x3000
  auto back = deserialize(serialize(s));
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(),
            "registry is corrupt: payload 'p1' has .eh_frame at 0x2ff0+0x38 outside its 0x3000 bytes");
  EXPECT_EQ(back.error().kind(), ErrorKind::Corrupt);
}

// Issue 10: the symbol a function's name stood for and its cold parts
// (extension 16) come back; a cold part that wraps around is corrupt.
TEST(Registry, FunctionPartsRoundTrip) {
  RegistryState s = sample_state();
  s.payloads[0].funcs[0].symbol = "f.isra.0";
  s.payloads[0].funcs[0].cold = {{0x401000, 0x2d}, {0x402000, 8}};
  auto back = deserialize(serialize(s));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->payloads[0].funcs[0].symbol, "f.isra.0");
  EXPECT_EQ(back->payloads[0].funcs[0].cold, s.payloads[0].funcs[0].cold);
  EXPECT_EQ(back->payloads[0].funcs[0].quoted(), "'f' (f.isra.0)");
  EXPECT_TRUE(back->payloads[1].funcs[0].cold.empty());
  EXPECT_EQ(back->payloads[1].funcs[0].quoted(), "'f'");

  s.payloads[1].funcs[0].cold = {{~u64{0} - 4, 8}};
  back = deserialize(serialize(s));
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(),
            "registry is corrupt: payload 'p1': function 'f' at 0x400000 has a cold part at 0xfffffffffffffffb+0x8");
}

// A state read back from a target is bounded (registry_check.cc): a journal
// write must be at a patch site or a call site of a payload.
TEST(Registry, JournalWriteOutsidePatchAndCallSitesIsCorrupt) {
  RegistryState s = sample_state();
  s.journal = Journal{JournalOp::Revert, "p0", 1, {{0x400008, Bytes(5, 0xcc), Bytes(5, 0x90)}}, 0, 0};
  auto back = deserialize(serialize(s), "registry of PID 7");
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(),
            "registry of PID 7 is corrupt: journal writes 5 bytes at 0x400008, neither a patch site nor a call site "
            "of a payload");
  EXPECT_EQ(back.error().kind(), ErrorKind::Corrupt);
  s.journal->writes = {{0x400000, Bytes(5, 0xcc), s.payloads[0].funcs[0].undo}};  // the patch site: fits
  EXPECT_TRUE(deserialize(serialize(s)).has_value());
}

TEST(Registry, InconsistentFieldsAreCorrupt) {
  struct Case {
    void (*spoil)(RegistryState&);
    std::string message;
  };
  const Case cases[] = {
      {[](RegistryState& s) { s.payloads[1].name = "p0"; }, "two payloads named 'p0'"},
      {[](RegistryState& s) { s.payloads[1].name = "../x"; }, "a payload named '../x'"},
      {[](RegistryState& s) {
         s.payloads[1].base = 0x11000;
         s.payloads[1].funcs[0].new_addr = 0x11010;
         s.payloads[1].exports[0].second = 0x11000;
       },
       "payloads overlap at 0x11000"},
      {[](RegistryState& s) { s.payloads[0].funcs[0].undo.pop_back(); },
       "payload 'p0': function 'f' at 0x400000 saved 4 bytes for a 5-byte patch"},
      {[](RegistryState& s) { s.payloads[0].funcs[0].new_addr = 0x400000; },
       "payload 'p0': function 'f' at 0x400000 is replaced by code at 0x400000, outside the payload"},
      {[](RegistryState& s) { s.payloads[1].apply_seq = 5; }, "payload 'p1' is CHECKED with apply sequence 5 (next 7)"},
      {[](RegistryState& s) { s.next_seq = 5; }, "payload 'p0' is APPLIED with apply sequence 5 (next 5)"},
      {[](RegistryState& s) { s.payloads[0].exports[0].second = 0x1234; },
       "payload 'p0' exports 'g' at 0x1234, outside it"},
      {[](RegistryState& s) { s.journal = Journal{JournalOp::Unload, "p1", 1, {}, 0x20000, 0x1000}; },
       "journal unload of 'p1' names the mapping 0x20000+0x1000"},
      {[](RegistryState& s) { s.journal = Journal{JournalOp::Apply, "nobody", 1, {}, 0, 0}; },
       "journal apply names payload 'nobody', which is not in the registry"},
  };
  for (const auto& c : cases) {
    RegistryState s = sample_state();
    c.spoil(s);
    auto back = deserialize(serialize(s));
    ASSERT_FALSE(back.has_value()) << c.message;
    EXPECT_EQ(back.error().message(), "registry is corrupt: " + c.message);
    EXPECT_EQ(back.error().kind(), ErrorKind::Corrupt);
  }
}

// The active slot must hold the generation the header names: a header
// pointing at the other (older) slot is corruption, not an older state.
TEST(Registry, ASlotOfAnotherGenerationIsCorrupt) {
  const u64 self = 0x7f0000000000;
  Bytes header(kRegistryHeaderSize, 0);
  RegistryHeader h = registry_header(self);
  h.commit = 5 << 1 | 1;  // generation 5, slot 1
  std::memcpy(header.data(), &h, sizeof h);
  Bytes slot = registry_slot_image(sample_state(), 4);
  RegistryReader read = [&](u64 off, size_t len) -> Result<Bytes> {
    if (off < kRegistryHeaderSize) return Bytes(header.begin() + off, header.begin() + off + len);
    Bytes out(len, 0);
    const u64 at = off - registry_slot_offset(1);
    for (size_t i = 0; i < len && at + i < slot.size(); i++) out[i] = slot[at + i];
    return out;
  };
  auto st = read_registry(read, self, "registry of PID 9");
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().message(),
            "registry of PID 9 is corrupt: the active slot 1 holds generation 4, the header says 5");
  slot = registry_slot_image(sample_state(), 5);
  st = read_registry(read, self, "registry of PID 9");
  ASSERT_TRUE(st.has_value()) << st.error().message();
  EXPECT_EQ(st->payloads.size(), 2u);
  h.self = self + 0x1000;
  std::memcpy(header.data(), &h, sizeof h);
  st = read_registry(read, self, "registry of PID 9");
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().message(),
            "registry of PID 9 at 0x7f0000000000 is corrupt: header says it is at 0x7f0000001000");
}

// A repair writes a journal write back only over its own before or after.
TEST(Registry, RepairRefusesBytesThatAreNeitherTheJournalsBeforeNorAfter) {
  RegistryState s = sample_state();
  const Bytes& insn = s.payloads[0].funcs[0].insn;
  const Bytes& undo = s.payloads[0].funcs[0].undo;
  s.journal = Journal{JournalOp::Revert, "p0", 1, {{0x400000, insn, undo}}, 0, 0};  // p0 still APPLIED: roll back
  ASSERT_TRUE(check_state(s).has_value());
  Bytes there = {1, 2, 3, 4, 5};
  MemoryReader mem = [&](RemoteAddr, size_t) -> Result<Bytes> { return there; };
  auto plan = plan_repair(s, mem, {}, 9);
  ASSERT_FALSE(plan.has_value());
  EXPECT_EQ(plan.error().message(),
            "registry of PID 9 is corrupt: its journal would write at 0x400000, which holds 0102030405, neither the "
            "journal's before (e901020304) nor after (554889e590)");
  there = undo;  // the revert's write was made: rolled back to the patch
  plan = plan_repair(s, mem, {}, 9);
  ASSERT_TRUE(plan.has_value()) << plan.error().message();
  ASSERT_EQ(plan->writes.size(), 1u);
  EXPECT_EQ(plan->writes[0].after, insn);
}

// A replace journals two writes at one site (the old patch reverted, the
// new one written): killed before either, the site holds the old patch,
// which is neither the second write's before nor its after, and that is fine.
TEST(Registry, RepairOfAReplaceKilledBeforeItsWritesFindsTheOldPatch) {
  RegistryState s = sample_state();
  const Bytes old_patch = s.payloads[0].funcs[0].insn, orig = s.payloads[0].funcs[0].undo;
  s.payloads[1].funcs[0].insn = {0xe9, 9, 9, 9, 9};
  s.journal = Journal{JournalOp::Replace, "p1", 1,
                      {{0x400000, old_patch, orig}, {0x400000, orig, s.payloads[1].funcs[0].insn}}, 0, 0};
  ASSERT_TRUE(check_state(s).has_value()) << check_state(s).error().message();
  for (const Bytes& there : {old_patch, orig, s.payloads[1].funcs[0].insn}) {
    MemoryReader mem = [&](RemoteAddr, size_t) -> Result<Bytes> { return there; };
    auto plan = plan_repair(s, mem, {}, 9);  // p1 is CHECKED: rolled back
    ASSERT_TRUE(plan.has_value()) << plan.error().message();
    ASSERT_EQ(plan->writes.size(), 2u);
    EXPECT_EQ(plan->writes.back().after, old_patch);
  }
  Bytes other = {0xcc, 0xcc, 0xcc, 0xcc, 0xcc};
  MemoryReader mem = [&](RemoteAddr, size_t) -> Result<Bytes> { return other; };
  EXPECT_FALSE(plan_repair(s, mem, {}, 9).has_value());
}

// Static TLS: below the thread pointer, inside the mapping that holds it
// (a thread's stack mapping, or the initial thread's startup allocation).
TEST(StaticTlsOffset, OnlyBlocksBesideTheThreadPointerAreStatic) {
  const std::vector<MapEntry> maps = {
      MapEntry{.range = {RemoteAddr(0x7000'0000), RemoteAddr(0x7080'0000)}, .prot = 3},  // a thread's stack
      MapEntry{.range = {RemoteAddr(0x5000'0000), RemoteAddr(0x5010'0000)}, .prot = 3},  // the heap
  };
  const u64 tp = 0x707f'f000;
  EXPECT_EQ(static_tls_offset(tp, tp - 0x40, 0x20, maps), -0x40);
  EXPECT_EQ(static_tls_offset(tp, tp - 0x40, 0x40, maps), -0x40) << "the block may end at the thread pointer";
  EXPECT_EQ(static_tls_offset(tp, tp - 0x40, 0x41, maps), std::nullopt) << "it may not cross it";
  EXPECT_EQ(static_tls_offset(tp, 0x5000'1000, 0x20, maps), std::nullopt) << "malloc'd: dynamic TLS";
  EXPECT_EQ(static_tls_offset(tp, 0x6fff'fff0, 0x10, maps), std::nullopt) << "below the thread's mapping";
  EXPECT_EQ(static_tls_offset(tp, 0, 0x20, maps), std::nullopt) << "not allocated in that thread";
  EXPECT_EQ(static_tls_offset(tp, tp + 0x40, 0x20, maps), std::nullopt) << "above the thread pointer";
  EXPECT_EQ(static_tls_offset(0x9000'0000, 0x9000'0000 - 0x40, 0x20, maps), std::nullopt) << "TP not mapped";
}

}  // namespace
}  // namespace hs
