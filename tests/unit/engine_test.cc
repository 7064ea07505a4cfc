// Unit tests of the engine's pieces that need no process: the registry's
// serialisation (with its extensions) and the ELF file the activeness check
// builds so libdw can unwind through payload code.
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>

#include <algorithm>
#include <cstdlib>

#include "engine/registry.h"
#include "engine/safety.h"

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
}

TEST(Registry, UnwindInformationOutsideThePayloadIsCorrupt) {
  RegistryState s = sample_state();
  s.payloads[1].eh_frame_offset = 0x2ff0;  // + 0x38 runs past 0x3000
  auto back = deserialize(serialize(s));
  ASSERT_FALSE(back.has_value());
  EXPECT_EQ(back.error().message(),
            "registry is corrupt: payload 'p1' has .eh_frame at 0x2ff0+0x38 outside its 0x3000 bytes");
}

// One CIE and one FDE as gcc writes them (pc-relative sdata4 pointers): the
// function at image offset 0x10, 0x20 bytes long, with `push %rbp` at 0x11.
Bytes sample_eh_frame(u64 eh_offset) {
  Bytes b;
  auto u32le = [&](u32 v) {
    for (int i = 0; i < 4; i++) b.push_back(static_cast<u8>(v >> (8 * i)));
  };
  // CIE: length 0x14, id 0, version 1, "zR", code align 1, data align -8,
  // RA register 16, augmentation data: FDE encoding pcrel|sdata4;
  // def_cfa rsp+8, offset(rip) = cfa-8.
  u32le(0x14);
  u32le(0);
  const u8 cie[] = {1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1, 0, 0};
  b.insert(b.end(), std::begin(cie), std::end(cie));
  // FDE: length 0x1c, CIE pointer (distance back to the CIE), pc_begin, pc_range,
  // no augmentation data; advance 1, def_cfa_offset 16, offset(rbp) = cfa-16.
  const size_t fde = b.size();
  u32le(0x1c);
  u32le(static_cast<u32>(fde + 4));
  const u64 field = eh_offset + b.size();
  u32le(static_cast<u32>(0x10 - field));
  u32le(0x20);
  const u8 insns[] = {0, 0x41, 0x0e, 16, 0x86, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  b.insert(b.end(), std::begin(insns), std::end(insns));
  return b;
}

struct CfaRule {
  int reg = -1;
  i64 offset = 0;
};

// The CFA rule libdw derives from the shadow file at image offset `at`.
std::optional<CfaRule> cfa_at(Bytes& elf_bytes, u64 at) {
  elf_version(EV_CURRENT);
  Elf* elf = elf_memory(reinterpret_cast<char*>(elf_bytes.data()), elf_bytes.size());
  if (!elf) return std::nullopt;
  std::optional<CfaRule> out;
  if (Dwarf_CFI* cfi = dwarf_getcfi_elf(elf)) {
    Dwarf_Frame* frame = nullptr;
    if (dwarf_cfi_addrframe(cfi, at, &frame) == 0) {
      Dwarf_Op* ops = nullptr;
      size_t nops = 0;
      if (dwarf_frame_cfa(frame, &ops, &nops) == 0 && nops == 1 && ops[0].atom == DW_OP_bregx)
        out = CfaRule{static_cast<int>(ops[0].number), static_cast<i64>(ops[0].number2)};
    }
    std::free(frame);
    dwarf_cfi_end(cfi);
  }
  elf_end(elf);
  return out;
}

TEST(PayloadShadowElf, LibdwFindsThePayloadsCfi) {
  const u64 eh_offset = 0x1000;
  Bytes eh = sample_eh_frame(eh_offset);
  Bytes elf = payload_shadow_elf(0x3000, eh_offset, eh);

  auto entry = cfa_at(elf, 0x10);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->reg, 7);
  EXPECT_EQ(entry->offset, 8);
  auto body = cfa_at(elf, 0x2f);
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(body->reg, 7);
  EXPECT_EQ(body->offset, 16);
  EXPECT_FALSE(cfa_at(elf, 0x30).has_value()) << "past the function: no CFI, never a guess";
  EXPECT_FALSE(cfa_at(elf, 0x0f).has_value());
}

TEST(PayloadShadowElf, IsAnElfFileOfOneSegmentOverThePayload) {
  Bytes eh = sample_eh_frame(0x1000);
  Bytes bytes = payload_shadow_elf(0x3000, 0x1000, eh);
  elf_version(EV_CURRENT);
  Elf* elf = elf_memory(reinterpret_cast<char*>(bytes.data()), bytes.size());
  ASSERT_NE(elf, nullptr);
  GElf_Ehdr eh_mem;
  GElf_Ehdr* ehdr = gelf_getehdr(elf, &eh_mem);
  ASSERT_NE(ehdr, nullptr);
  EXPECT_EQ(ehdr->e_type, ET_DYN);
  EXPECT_EQ(ehdr->e_machine, EM_X86_64);
  size_t phnum = 0;
  ASSERT_EQ(elf_getphdrnum(elf, &phnum), 0);
  ASSERT_EQ(phnum, 1u);
  GElf_Phdr ph_mem;
  GElf_Phdr* ph = gelf_getphdr(elf, 0, &ph_mem);
  ASSERT_NE(ph, nullptr);
  EXPECT_EQ(ph->p_type, PT_LOAD);
  EXPECT_EQ(ph->p_vaddr, 0u);
  EXPECT_EQ(ph->p_memsz, 0x3000u);
  size_t shstrndx = 0;
  ASSERT_EQ(elf_getshdrstrndx(elf, &shstrndx), 0);
  Elf_Scn* scn = elf_nextscn(elf, nullptr);
  ASSERT_NE(scn, nullptr);
  GElf_Shdr sh_mem;
  GElf_Shdr* sh = gelf_getshdr(scn, &sh_mem);
  ASSERT_NE(sh, nullptr);
  EXPECT_STREQ(elf_strptr(elf, shstrndx, sh->sh_name), ".eh_frame");
  EXPECT_EQ(sh->sh_addr, 0x1000u);
  EXPECT_EQ(sh->sh_size, eh.size());
  Elf_Data* data = elf_getdata(scn, nullptr);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(Bytes(static_cast<u8*>(data->d_buf), static_cast<u8*>(data->d_buf) + data->d_size), eh);
  elf_end(elf);
}

}  // namespace
}  // namespace hs
