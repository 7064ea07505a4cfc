// `build --patch`'s payload: the changed and new functions of a patched
// object written out as assembler source (their bytes, and each relocation
// as a `.reloc` naming what it points at), with a `.livepatch.funcs` entry
// per changed function, for build_payload to assemble, fill in and link.
//
// What a function refers to: another function of the payload, by the
// payload's own copy; everything else as the running target's symbol,
// never copied: globals by name, statics in `file#name` form with the
// original build's name (so the running process's storage and code are
// used); string literals are copied (by content). First slice: sections
// without symbols other than merged strings (jump tables, constant pools)
// are refused, naming them.
#pragma once

#include <string>

#include "builder/compare.h"
#include "support/error.h"

namespace hs {

// The assembler source for the payload part of one object. `original` is
// the original object ("" for an object the patch adds). Errors
// (BadPayload): what cannot be carried yet, naming the function and section.
Result<std::string> payload_source(const std::string& original, const std::string& patched, const ObjectDiff& diff);

}  // namespace hs
