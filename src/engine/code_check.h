// The code is the truth: what the registry says is checked against the bytes
// in the process before an operation acts on it, and nothing is unmapped
// while something known still refers into it.
//
// The registry is a claim the target could have changed (or a fork, a
// debugger, a second patching tool could have made stale). So before apply,
// revert, replace and unload act on it, check_code() reads every patch site
// and every recorded call site and compares them with what the registry
// says must be there:
//   - a patch site (FuncState::site()) patched by an APPLIED payload holds
//     exactly the recorded bytes (`insn`) of the topmost one (highest
//     apply_seq); a site no applied payload patches holds the original
//     bytes a record saved (`undo`, where one has them) and never a
//     payload's jump;
//   - a recorded call site (the E8/E9 opcode address) is a call or jump to
//     the function itself or, when redirected, to exactly the replacement
//     at the top of that function's applied stack; sites inside bytes an
//     applied patch covers are the patch sites' business.
// A mismatch refuses the operation (ErrorKind::Corrupt) with one line naming
// the PID, the function, the payload, the address, the bytes found and the
// bytes or destination the registry claims. The sites are read with as few
// reads as their addresses allow (nearby sites in one read).
//
// Before unload unmaps a payload, check_unreferenced() looks for anything
// that still refers into its mapping, by the bytes actually there: a patch
// site or recorded call site whose rel32 lands in it, a hook of another
// payload in it, a pointer into it in a GOT of any mapped object or in the
// data of another payload. Threads' stacks are the unload stop window's
// activeness guard (the whole mapping is guarded). Refused with
// ErrorKind::State naming what refers into it and where.
//
// Pure over a RegistryState and a MemoryReader (plan.h), so the unit tests
// drive them with fake memory; got_areas() reads only the objects' files.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "engine/plan.h"
#include "engine/registry.h"
#include "process/objects.h"

namespace hs {

// Refuses (Corrupt) the first patch site or call site whose bytes are not
// what `state` says: see above.
Status check_code(const RegistryState& state, const MemoryReader& read, pid_t pid);

// In the stop window, right before an operation's writes: the bytes each
// write replaces are still what the plan read (its `before`, as the earlier
// writes leave them), so nothing changed them since the check and the
// planning. Refuses (Corrupt) naming the address.
Status check_writes(std::span<const JournalWrite> writes, const MemoryReader& read, pid_t pid);

// Before `gone` leaves the registry (unload): every other record whose saved
// bytes at a site of `gone` begin with gone's patch there (it was applied
// on top of `gone`) gets gone's own saved bytes there instead. So an undo
// always holds the bytes beneath whatever is still loaded, and the check
// above can tell the original bytes from a jump saved off a payload long
// gone.
void forget_patches_of(RegistryState& state, const PayloadRecord& gone);

// Memory holding 8-byte pointers: "the <what> at <slot> of <owner>".
struct PointerArea {
  u64 addr = 0, size = 0;
  std::string what;   // "GOT slot"
  std::string owner;  // the object's path
};

// The .got and .got.plt of each object, at their runtime addresses (from the
// section headers of its file; an object without them has none).
std::vector<PointerArea> got_areas(std::span<const MappedObject> objs);

// Refuses (State) unloading `p` while anything named above refers into its
// mapping: "PID N: cannot unload 'fix': the GOT slot at 0x... of /lib/x.so
// points into it at 0x...". `areas` are the objects' GOTs (got_areas());
// the data of the other payloads of `state` is read too.
Status check_unreferenced(const RegistryState& state, const PayloadRecord& p, std::span<const PointerArea> areas,
                          const MemoryReader& read, pid_t pid);

}  // namespace hs
