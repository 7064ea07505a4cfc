// elf/eh_frame.h: a function's extent from its .eh_frame FDE, checked
// against the symbol table of this very test program (built with CFI), and
// against the system libc, whose IFUNC implementations engine/ifunc.h sizes
// this way.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <link.h>

#include "elf/eh_frame.h"

namespace hs {
namespace {

extern "C" __attribute__((noinline)) int hs_eh_frame_probe(int x) {
  volatile int v = x;
  return v * 3 + 1;
}

ElfFile self() {
  auto elf = ElfFile::open("/proc/self/exe");
  EXPECT_TRUE(elf.has_value()) << elf.error().message();
  return std::move(*elf);
}

// Every sized function of this program whose FDE covers its start (all but
// the few without CFI) has an FDE that starts exactly there and spans it.
TEST(EhFrame, FdesMatchTheSymbolTable) {
  const ElfFile elf = self();
  const auto symtab = elf.symtab_index();
  ASSERT_TRUE(symtab.has_value());
  const auto syms = elf.symbols(*symtab);
  ASSERT_TRUE(syms.has_value());
  size_t checked = 0;
  bool probe = false;
  for (const ElfSymbol& s : *syms) {
    if (s.type() != STT_FUNC || s.st_size == 0 || !s.defined()) continue;
    const auto fde = fde_covering(elf, s.st_value);
    if (s.name == "hs_eh_frame_probe") {
      probe = true;
      ASSERT_TRUE(fde.has_value());
      EXPECT_EQ(fde->begin, s.st_value);
      EXPECT_EQ(fde->size, s.st_size);
    }
    if (!fde || fde->begin != s.st_value) continue;
    EXPECT_EQ(fde->size, s.st_size) << s.name;
    if (++checked == 2000) break;
  }
  EXPECT_TRUE(probe);
  EXPECT_GT(checked, 100u);
  EXPECT_EQ(hs_eh_frame_probe(1), 4);
}

TEST(EhFrame, NoFdeOutsideCode) {
  const ElfFile elf = self();
  EXPECT_FALSE(fde_covering(elf, 0).has_value());
  const auto data = elf.find_section(".data");
  ASSERT_TRUE(data.has_value());
  EXPECT_FALSE(fde_covering(elf, elf.sections()[*data].sh_addr).has_value());
}

TEST(EhFrame, OverlappingListsTheNeighbours) {
  const ElfFile elf = self();
  const auto syms = elf.symbols(*elf.symtab_index());
  ASSERT_TRUE(syms.has_value());
  for (const ElfSymbol& s : *syms) {
    if (s.name != "hs_eh_frame_probe") continue;
    const auto all = fdes_overlapping(elf, s.st_value, s.st_value + 1);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].begin, s.st_value);
    EXPECT_GE(fdes_overlapping(elf, s.st_value - 256, s.st_value + 256).size(), 2u);
    return;
  }
  FAIL() << "hs_eh_frame_probe not found";
}

// The system libc: strlen's IFUNC implementation (what this process
// resolved) starts an FDE, which is all engine/ifunc.h needs from a libc
// without .symtab.
TEST(EhFrame, LibcImplementationsStartAnFde) {
  void* impl = dlsym(RTLD_DEFAULT, "strlen");
  Dl_info info{};
  ASSERT_NE(dladdr(impl, &info), 0);
  auto elf = ElfFile::open(info.dli_fname);
  ASSERT_TRUE(elf.has_value()) << elf.error().message();
  const u64 link = reinterpret_cast<u64>(impl) - reinterpret_cast<u64>(info.dli_fbase);
  const auto fde = fde_covering(*elf, link);
  ASSERT_TRUE(fde.has_value());
  EXPECT_EQ(fde->begin, link);
  EXPECT_GT(fde->size, 16u);
  EXPECT_LT(fde->size, 4096u);
}

// A truncated .eh_frame ends the walk instead of reading past it.
TEST(EhFrame, TruncatedSectionFindsNothingPastItsEnd) {
  ElfFile elf = self();
  const auto idx = elf.find_section(".eh_frame");
  ASSERT_TRUE(idx.has_value());
  Bytes bytes(elf.bytes().begin(), elf.bytes().end());
  // Give the first record a length running past the section.
  const u64 off = elf.sections()[*idx].sh_offset;
  store_le<u32>(bytes.data() + off, 0x7ffffff0);
  auto cut = ElfFile::create(std::move(bytes));
  ASSERT_TRUE(cut.has_value()) << cut.error().message();
  const auto syms = cut->symbols(*cut->symtab_index());
  ASSERT_TRUE(syms.has_value());
  for (const ElfSymbol& s : *syms)
    if (s.name == "hs_eh_frame_probe") {
      EXPECT_FALSE(fde_covering(*cut, s.st_value).has_value());
    }
}

}  // namespace
}  // namespace hs
