// A linked payload's unwind table (.eh_frame) as the target's unwinder will
// read it, and the small "unwind block" the loader reserves beside it so the
// engine can register the table with that unwinder (engine/unwind_frames.h).
//
// The loader relocates .eh_frame like any section and puts a zero word (the
// terminator `ld -r` leaves out: crtend.o supplies it in a final link) right
// after it. check_eh_frame then walks the relocated table exactly as libgcc
// will: every CIE and FDE inside the table, each FDE's CIE pointer landing
// on a CIE, only pointer encodings GCC emits on x86-64 (absolute or
// PC-relative, 2/4/8-byte or LEB128, personality and LSDA possibly
// indirect), personality routines that are set (an indirect one through a
// slot inside the image, such as the DW.ref.__gxx_personality_v0 that a C++
// object carries in a COMDAT group), LSDAs (.gcc_except_table) and every
// FDE's code range inside the image. Anything else is refused naming the
// entry's offset, before the target is touched.
//
// The unwind block opens the image's RW region (which the loader then always
// has when a payload carries an .eh_frame), 320 bytes, 16-aligned:
//
//   0   magic     "HSUNWND1" (written by the loader only when the table has
//                 an FDE; absent: nothing to register)
//   8   u64       address of the relocated .eh_frame in the target
//   16  u64       its size in bytes, without the terminator
//   24  u64       a PC inside the first FDE with a non-empty range: asking
//                 the unwinder for it says whether the table is registered
//   32  u8[24]    scratch for the unwinder's answer (struct dwarf_eh_bases)
//   56  u8[8]     zero
//   64  u8[64]x4  libgcc's `struct object` for __register_frame_info, one
//                 per unwinder in the process (a program linked with
//                 -static-libgcc has its own besides libgcc_s's); at most 7
//                 words in the GCC versions known; each stays its
//                 unwinder's while registered
//
// So the image says by itself where its table is and whether the unwinder
// knows it, whoever uploaded it: repair and recover need no registry field.
#pragma once

#include <optional>
#include <string_view>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

inline constexpr std::string_view kUnwindBlockMagic = "HSUNWND1";
inline constexpr u64 kUnwindObjectSize = 64;
inline constexpr u64 kUnwindBlockObjects = 4;
inline constexpr u64 kUnwindBlockSize = 64 + kUnwindBlockObjects * kUnwindObjectSize;
inline constexpr u64 kUnwindBlockAlign = 16;
inline constexpr u64 kUnwindBlockEhFrameOff = 8;
inline constexpr u64 kUnwindBlockEhSizeOff = 16;
inline constexpr u64 kUnwindBlockProbeOff = 24;
inline constexpr u64 kUnwindBlockScratchOff = 32;
inline constexpr u64 kUnwindBlockObjectOff = 64;
inline constexpr u64 kEhFrameTerminatorSize = 4;

struct EhFrameSummary {
  u64 cies = 0, fdes = 0;
  u64 probe_pc = 0;   // inside the first FDE with a non-empty range; 0: none
  bool personality = false;  // some CIE names a personality routine (C++ code)
  bool lsda = false;         // some FDE has a language-specific data area
};

// Checks the relocated table at image offset `offset` (`size` bytes, the
// terminator after them) of `image`, which is mapped at `base`.
Result<EhFrameSummary> check_eh_frame(ByteView image, u64 base, u64 offset, u64 size);

// The fields of an unwind block read back from a target (nullopt: no magic).
struct UnwindBlock {
  u64 eh_frame = 0, eh_size = 0, probe_pc = 0;
};
std::optional<UnwindBlock> decode_unwind_block(ByteView b);
// The block's bytes: magic, eh_frame, size, probe PC; the rest zero.
Bytes encode_unwind_block(const UnwindBlock& u);

}  // namespace hs
