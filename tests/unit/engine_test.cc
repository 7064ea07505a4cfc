// Unit tests of the engine's registry: its serialisation, with its
// extensions. (The other engine units that need no process have their own
// tests: plan_test, placement_test, dwarf_expr_test, unwind_elf_test.)
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/registry.h"

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
    if (i == 0) f.call_sites = {0x400100, 0x400240};
    p.funcs.push_back(f);
    p.exports.emplace_back("g", 0x1234);
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

}  // namespace
}  // namespace hs
