// The extent of a function from an object's .eh_frame: the FDE whose range
// covers an address. For functions a symbol table does not describe (the
// IFUNC implementations of a libc without .symtab, engine/ifunc.h), the FDE
// the assembler emitted for them (cfi_startproc .. cfi_endproc) is the best
// record of where they start and end.
#pragma once

#include <optional>
#include <vector>

#include "elf/elf_file.h"

namespace hs {

// One FDE's address range, in the object's link-time addresses.
struct FdeRange {
  u64 begin = 0;
  u64 size = 0;
};

// The FDE of `elf`'s .eh_frame section whose [begin, begin + size) holds
// `vaddr`; nullopt if there is none or the section cannot be read (a
// malformed entry ends the walk: what it could not read is not found).
std::optional<FdeRange> fde_covering(const ElfFile& elf, u64 vaddr);

// Every FDE of `elf`'s .eh_frame whose range meets [lo, hi), in section
// order (the same walk: a malformed entry ends it).
std::vector<FdeRange> fdes_overlapping(const ElfFile& elf, u64 lo, u64 hi);

}  // namespace hs
