// Comparing an original and a patched object file (GCC -O2, built with
// -ffunction-sections -fdata-sections) function by function, for
// `hotsplice build --patch`.
//
// Symbols are correlated by their source name: GCC's numbered copies and
// parts (`f.isra.0`, `f.constprop.3`, `f.part.1`, `f.cold`, `f.lto_priv.0`)
// keep their kind but lose the number, numbered static locals (`count.2`)
// lose it too, so renumbering between the two builds is not a change. A
// function is changed when its size or bytes differ or its relocations point
// elsewhere; relocation targets are compared by symbol (a local section
// symbol + addend by the symbol it lands in), string literals in merged
// sections by their content, never by their offset. Bytes that differ only
// where a 32-bit immediate holds a line number the patches moved (`__LINE__`
// in assert or logging) are not a change. A cold part that changed makes its
// function changed.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

// The name a symbol is correlated by: "f.isra.0" -> "f.isra",
// "f.part.0.cold" -> "f.part.cold", "count.3" -> "count", "main" -> "main".
std::string correlation_name(std::string_view symbol);

enum class FuncStatus { Changed, New, Removed, Refused };
const char* status_name(FuncStatus s);

struct FuncDiff {
  std::string name;    // correlation name ("f", "f.isra")
  std::string symbol;  // the symbol in the patched object (the original's for Removed)
  FuncStatus status = FuncStatus::Changed;
  std::string reason;  // why changed / refused ("bytes differ at +0x1c", "calls 'b' instead of 'a' at +0x9")
  bool data = false;   // a data object (initial value), not a function
};

struct ObjectDiff {
  std::vector<FuncDiff> funcs;            // changed, new, removed and refused, in symbol order
  size_t compared = 0;                    // functions both objects have
  std::vector<std::string> line_only;     // functions whose bytes differ only in moved __LINE__ values
};

// Whether an immediate that was `old_value` in the original and is
// `new_value` in the patched object is a line number the patches moved.
using LineShift = std::function<bool(u64 old_value, u64 new_value)>;

// Compares two relocatable objects. `original` may be empty (a file the
// patch creates): every function is new. Errors: an unreadable or malformed
// object (naming it).
Result<ObjectDiff> compare_objects(const std::string& original, const std::string& patched, const LineShift& shifted);

}  // namespace hs
