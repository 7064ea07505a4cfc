// Unit tests of the ELF file libdw is given to unwind through payload code
// (engine/unwind_elf.h): it is read by the project's own ELF reader and by
// libelf, has its one PT_LOAD over the whole image and its .eh_frame where
// the image has it, and libdw finds the payload's CFI through it.
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>

#include <cstdlib>
#include <optional>

#include "elf/elf_file.h"
#include "engine/unwind_elf.h"

namespace hs {
namespace {

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
  Bytes elf = payload_unwind_elf(0x3000, eh_offset, eh);

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
  Bytes bytes = payload_unwind_elf(0x3000, 0x1000, eh);
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

TEST(PayloadShadowElf, TheProjectsElfReaderAcceptsItAndFindsTheSegmentAndEhFrame) {
  Bytes eh = sample_eh_frame(0x1000);
  auto elf = ElfFile::create(payload_unwind_elf(0x3000, 0x1000, eh));
  ASSERT_TRUE(elf.has_value()) << elf.error().message();
  EXPECT_EQ(elf->header().e_type, ET_DYN);
  EXPECT_EQ(elf->header().e_machine, EM_X86_64);
  ASSERT_EQ(elf->program_headers().size(), 1u);
  const Elf64_Phdr& ph = elf->program_headers()[0];
  EXPECT_EQ(ph.p_type, static_cast<u32>(PT_LOAD));
  EXPECT_EQ(ph.p_flags, static_cast<u32>(PF_R | PF_X));
  EXPECT_EQ(ph.p_vaddr, 0u);
  EXPECT_EQ(ph.p_memsz, 0x3000u);
  EXPECT_EQ(ph.p_filesz, 0u) << "the image itself is in the target, not in the file";
  EXPECT_EQ(elf->first_load_vaddr(), 0u);
  auto idx = elf->find_section(".eh_frame");
  ASSERT_TRUE(idx.has_value());
  EXPECT_EQ(elf->sections()[*idx].sh_type, static_cast<u32>(SHT_PROGBITS));
  EXPECT_EQ(elf->sections()[*idx].sh_addr, 0x1000u);
  EXPECT_EQ(Bytes(elf->section_data(*idx).begin(), elf->section_data(*idx).end()), eh);
  EXPECT_TRUE(elf->find_section(".shstrtab").has_value());
}

// A payload whose .eh_frame is empty still gets a well-formed file (libdw
// then finds no CFI there: its frames count as unreliable, never guessed).
TEST(PayloadShadowElf, AnEmptyEhFrameGivesAFileWithoutCfi) {
  Bytes bytes = payload_unwind_elf(0x2000, 0x1800, {});
  auto parsed = ElfFile::create(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  auto idx = parsed->find_section(".eh_frame");
  ASSERT_TRUE(idx.has_value());
  EXPECT_EQ(parsed->sections()[*idx].sh_size, 0u);
  EXPECT_FALSE(cfa_at(bytes, 0x1800).has_value());
}

}  // namespace
}  // namespace hs
