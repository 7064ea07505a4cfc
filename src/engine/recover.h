// `hotsplice recover PID [--revert-all]`: rebuilding hotsplice's state of a
// process from the process itself, for when its registry is corrupt or
// missing (the registry is a claim, the code is the truth).
//
// What it reads. Every payload mapping ("/memfd:hotsplice:NAME", see
// placement.h), and in it the image descriptor the loader put at the start
// of its read-only region (payload/descriptor.h): build-ids, where the
// relocated .livepatch.funcs are (name, old and new address, sizes,
// expectation), hooks, .eh_frame, .modinfo. From those it rebuilds each
// PayloadRecord as upload made it: the patch bytes (jmp rel32 or NOPs, after
// an endbr64), and the direct call sites, found again in the object's file.
//
// What it decides. A payload is APPLIED when one of its patch sites holds
// its patch, or a direct call site is pointed at one of its replacements, or
// a payload stacked on it (its `depends`) is APPLIED; the
// applied stack of an object is ordered by the depends chain. Every applied
// payload's sites must then hold its patch, or the patch of one above it in
// the stack at the same site; anything else (a half-applied payload, bytes
// no payload wrote) refuses the recovery and names the function, the
// address and what is there. The bytes each applied function would get back
// (its undo) are the object file's bytes at the site (the very file that is
// mapped), with the patches of the payloads below it laid over them; where
// the file cannot say, the payload's expectation bytes if they cover the
// site.
//
// What it writes. Every registry mapping ("/memfd:hotsplice-registry") is
// unmapped, corrupt or not, and a fresh one is created holding the rebuilt
// state, so there is never more than one. A process with no payload
// mapping and no registry has nothing to recover (an error, State).
//
// --revert-all first puts every patch site that holds a known payload's
// patch back to the object file's bytes (else the expectation bytes, where
// they cover it), and every call site redirected into a payload back to the
// file's call, in one stop of all threads; sites whose original bytes are
// not known, or that hold something no payload wrote, are left as they are
// and named. The payloads stay mapped, as CHECKED (so a thread running in
// one, or returning into it, is never left without its code); `unload`
// removes them with its usual checks.
//
// What cannot be known from the process, and is said so: the payload file's
// path, the payload's exports (later payloads cannot link against its
// symbols), the symbol names of its hooks (they are named by address),
// whether its unload hooks had already run. No hook is run by recover.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "elf/debug_file.h"
#include "engine/registry.h"
#include "support/error.h"

namespace hs {

struct RecoverOptions {
  bool revert_all = false;
  // Where stripped objects' debug files are looked for: their symbols
  // bound the call sites found again (--debug-dir, as at upload).
  DebugSearch debug;
};

// Where one function of a recovered payload stands.
struct RecoveredSite {
  std::string func;       // as in the payload ("hello", "file.c#f")
  u64 site = 0;           // where its patch goes (old_addr + patch_offset)
  std::string found;      // what is there: "its patch", "the patch of payload 'b'", "the original bytes", ...
  std::string restored;   // --revert-all: what was done there ("" = nothing needed)
};

struct RecoveredPayload {
  PayloadRecord record;
  std::vector<RecoveredSite> sites;  // one per function, in order
};

struct RecoveryReport {
  std::string registry;                     // what the old registry was: "none", "corrupt: ...", "valid (replaced)"
  std::vector<RecoveredPayload> payloads;   // in upload order
  std::vector<std::string> notes;           // what could not be known or was left alone
  std::vector<std::string> unknown;         // fields no recovered record can have
  u64 registry_base = 0;                    // the fresh registry
};

// Seizes PID (Busy if another tool holds it) without reading its registry,
// rebuilds the state from the process and writes a fresh registry; with
// revert_all, first puts the original bytes back. State error "PID N has
// nothing to recover: no payload mapping and no registry" when there is
// nothing of hotsplice's in it.
Result<RecoveryReport> recover(pid_t pid, const RecoverOptions& opts);

}  // namespace hs
