// The DWARF expression evaluator of the activeness check.
//
// Call-frame information describes the canonical frame address (CFA) and
// where each caller register was saved as small DWARF stack-machine
// expressions (DWARF 5, section 2.5): "rsp + 16", "the word at CFA - 8",
// now and then something longer. The activeness check (activeness.cc)
// recomputes every unwind step libdw takes from those rules, to catch
// libdw's silent fall-back to frame pointers, so it evaluates them itself,
// over one frame's registers and the target's memory, both given as
// callbacks (a unit test passes fakes).
//
// Only what CFI uses is supported: literals and constants, breg / bregx,
// DW_OP_call_frame_cfa, plus_uconst, dup, deref, the binary arithmetic,
// bitwise and comparison operators, nop and a final stack_value. Anything
// else, a stack that runs dry, an unknown register or unreadable memory
// makes the result nullopt: never a guess.
#pragma once

#include <elfutils/libdw.h>

#include <functional>
#include <optional>
#include <span>

#include "support/bytes.h"

namespace hs {

// One register of the frame (DWARF register number), nullopt if unknown.
using DwarfRegReader = std::function<std::optional<u64>(unsigned regno)>;
// The 8 bytes of target memory at an address (little-endian), nullopt if
// they cannot be read.
using DwarfMemReader = std::function<std::optional<u64>(u64 addr)>;

struct DwarfValue {
  u64 value = 0;
  // The expression ended in DW_OP_stack_value: `value` is the result itself.
  // Otherwise it is the address of the memory holding the result.
  bool is_value = false;
};

// The value on top of the stack after `ops`. `cfa` is what
// DW_OP_call_frame_cfa pushes (nullopt while the CFA itself is computed: the
// operation is then refused).
std::optional<DwarfValue> eval_dwarf_expr(std::span<const Dwarf_Op> ops, std::optional<u64> cfa,
                                          const DwarfRegReader& reg, const DwarfMemReader& mem);

}  // namespace hs
