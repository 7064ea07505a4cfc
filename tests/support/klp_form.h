// Rewrites a payload into the Linux livepatch ELF form, as the kernel's
// klp-convert does for a livepatch module: the tests write patches in
// assembler with references to ".klp.sym.<object>.<name>,<pos>" symbols, the
// builder assembles and links them (those are ordinary undefined symbols
// then), and klp_convert() makes those symbols SHN_LIVEPATCH and moves the
// relocations that use them out of each ".rela<section>" into a
// ".klp.rela.<object>.<section>" section (SHT_RELA, SHF_ALLOC |
// SHF_RELA_LIVEPATCH, sh_info = the section), one per object and section.
// The options make the deviations the loader must refuse.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"

namespace hs::test {

struct KlpConvert {
  // The object names a ".klp.sym." symbol may start with (the longest that
  // fits wins); a ".klp.sym." symbol naming none of them is an error.
  std::vector<std::string> objects;
  bool mark_livepatch = true;     // st_shndx = SHN_LIVEPATCH (0xff20)
  bool move_relocations = true;   // false: left in the ordinary .rela sections
  // The .klp.rela section's name for (object, section name); default
  // ".klp.rela." + object + "." + section.
  std::function<std::string(const std::string& object, const std::string& section)> section_name;
  // sh_flags of the .klp.rela sections.
  u64 flags = 0x2 /* SHF_ALLOC */ | 0x40 /* SHF_INFO_LINK */ | 0x00100000 /* SHF_RELA_LIVEPATCH */;
};

// The converted file; an error (Internal) if `elf` is not what the builder
// makes or a symbol names no known object.
Result<Bytes> klp_convert(ByteView elf, const KlpConvert& opts);

}  // namespace hs::test
