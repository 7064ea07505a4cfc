// The ELF file that lets libdw unwind through payload code.
//
// A payload is mapped from a memfd holding its linked image only: no ELF
// headers, so libdw, which finds unwind tables through a module's ELF file,
// sees nothing there. The payload does carry .eh_frame (gcc emits it, the
// loader relocates it for the payload's address and the registry records
// where it is), so the activeness check builds a minimal ELF file around
// those bytes, read from the target, and hands it to libdw (elf_memory):
// ET_DYN for x86-64, one PT_LOAD at address 0 covering the whole image (so
// the module's load bias is the payload's base), and a section header table
// with `.eh_frame` (its sh_addr the offset in the image) and `.shstrtab`.
#pragma once

#include "support/bytes.h"

namespace hs {

// The file for a payload image of `image_size` bytes whose .eh_frame,
// `eh_frame`, sits at `eh_frame_offset` in the image.
Bytes payload_unwind_elf(u64 image_size, u64 eh_frame_offset, ByteView eh_frame);

}  // namespace hs
