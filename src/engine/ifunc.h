// Indirect functions (STT_GNU_IFUNC: glibc's strlen, memcpy, ...) in a live
// process. The symbol's value is a resolver, run by the dynamic linker, that
// returns the implementation for this CPU (and this process's
// GLIBC_TUNABLES / hwcaps). Every call reaches that implementation, never
// the resolver, so replacing "strlen" means patching the implementation the
// process's resolver chose, found here from what the process itself holds:
// the GOT slots its dynamic linker filled with the resolver's answer.
//
// Which slots (each checked to hold an address in the object's code, other
// than the resolver, where an .eh_frame FDE starts):
//  - the object's own R_X86_64_IRELATIVE slots whose addend is the resolver
//    (glibc's internal calls to strlen go through those; the dynamic linker
//    fills them at startup, lazy binding or not);
//  - any mapped object's JUMP_SLOT / GLOB_DAT / 64 slot for the symbol's name
//    that already holds an address in the object (a lazily bound slot not yet
//    used still holds its PLT stub, and is skipped).
// All such slots must agree. None: refused (the process has not told which
// implementation it uses; hotsplice does not call the resolver itself).
//
// The implementation's extent is its .eh_frame FDE (glibc's string functions
// are assembler with cfi_startproc/cfi_endproc; a stripped libc has no symbol
// for them), its name the debug file's symbol when there is one, else
// "libc.so.6+0x1a2b3c" (the offset is the link-time address).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "payload/loader.h"
#include "process/objects.h"
#include "process/process.h"

namespace hs {

// The implementation the resolver of `ifunc` (the STT_GNU_IFUNC symbol
// `name` of `obj`, one of `objs`) chose in `proc`: its address, its size
// from the .eh_frame, and its name in `implementation`. BadTarget, naming
// the PID, function and object, when it cannot be told.
Result<TargetSymbol> ifunc_implementation(const Process& proc, const std::vector<MappedObject>& objs,
                                          const MappedObject& obj, std::string_view name, const TargetSymbol& ifunc);

// The name of the function starting at `addr` in `obj`: its symbol (the
// debug file's for a stripped object), else "BASENAME+0xOFFSET".
std::string implementation_name(const MappedObject& obj, RemoteAddr addr);

// For recover: when `name` is an indirect function of `obj` and `addr` is not
// its resolver, the name of the implementation at `addr`
// (implementation_name); else empty.
std::string implementation_of(const MappedObject& obj, std::string_view name, RemoteAddr addr);

// Refuses to replace the implementation `impl` (of the indirect function
// `name` of `obj`) when other code branches into the bytes its jump would
// overwrite: glibc's __mempcpy_* jump 3 bytes into __memmove_* (past its
// first instruction), so replacing memcpy there would send every mempcpy
// into the middle of the jump. Only code near the entry is searched (every
// FDE within a rel8's reach); see DESIGN.md.
Status check_entry_not_branched_into(const MappedObject& obj, std::string_view name, const TargetSymbol& impl,
                                     pid_t pid);

// Refuses a payload that would patch an IFUNC resolver of `obj` (an old_addr
// given as a number, or a name that is the resolver's own): the jump would
// change nothing calls reach, and crash whoever binds the symbol later.
Status refuse_resolver_sites(const MappedObject& obj, const LinkedPayload& linked, pid_t pid);

}  // namespace hs
