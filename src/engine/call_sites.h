// Direct calls into a patched function, redirected to its replacement.
//
// A patched function is reached through the `jmp rel32` written at its
// entry: every call pays one extra taken jump. For the calls that can be
// found, hotsplice also rewrites the caller's `call rel32` (and tail-call
// `jmp rel32`) so that it goes straight to the replacement; the entry jump
// stays for everything else (calls through pointers, the PLT, other
// objects, payload code).
//
// When. The sites are found at upload, where the object's file and symbols
// are at hand anyway, and recorded with each function in the registry;
// apply, revert and replace only read the few bytes at each site.
//
// Which calls count. Only the object's own file is read (its executable
// PT_LOAD segments, as the file holds them: no memory of the process), and
// a call site is taken only if all of this holds:
//   - the bytes are E8 or E9 followed by a rel32 that reaches the function;
//   - they lie inside a function symbol (FUNC / IFUNC, non-zero size) of the
//     object's symbol table;
//   - that whole function decodes (Zydis, 64-bit) instruction by instruction
//     from its first byte, every instruction valid, the last ending exactly
//     at the symbol's end, and the site is where one of those instructions
//     starts, a 5-byte CALL or JMP with no prefix.
// The decoding is what keeps an E8 byte inside another instruction (an
// immediate, a displacement) or in data from being taken for a call. Code
// the decoder cannot follow is left alone: those calls keep going through
// the entry jump, which is always correct.
//
// Why rewriting only the rel32 is safe with every thread stopped: a thread's
// PC is always at an instruction boundary, never inside the four bytes that
// change; a thread about to execute the call goes to the new target; a
// return address after the call is unchanged. So the sites need no
// activeness guard of their own.
#pragma once

#include <map>
#include <span>
#include <vector>

#include "engine/registry.h"
#include "process/objects.h"
#include "support/error.h"

namespace hs {

struct CallSite {
  u64 addr = 0;  // runtime address of the call / jmp opcode byte
};

// Sites in `obj` calling (or tail-jumping to) each of `targets` (runtime
// addresses of functions in `obj`), keyed by target, ascending by address.
// Targets without sites are absent. An object whose symbols cannot be read
// has no sites (not an error: the entry jumps do the work).
Result<std::map<u64, std::vector<CallSite>>> find_call_sites(const MappedObject& obj, std::span<const u64> targets);

// Every function of `object` that a payload of `state` replaces, with its
// call sites as recorded at upload by any payload that replaces it (one that
// NOPs it out records none, but may be stacked on one whose sites point at
// its replacement): ascending, each once. One pass over the registry.
std::map<u64, std::vector<u64>> recorded_call_sites(const RegistryState& state, std::string_view object);

}  // namespace hs
