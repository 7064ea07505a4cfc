// The guardian: a small process the CLI forks before a verb that changes a
// process, so that a tool killed in the middle of an operation (SIGKILL
// included) does not leave the target half-patched until someone runs
// hotsplice on it again.
//
// The tool and its guardian share a pipe. The tool writes "done" when it
// finishes by itself (success or error: an atexit handler), and the guardian
// exits at once. EOF without "done" means the tool died: the guardian waits
// until the dead tool's ptrace hold on the target is gone, opens a Session
// on it (Session::open repairs the registry's journal: rolls the operation
// back, or forward where a hook of it had run), prints one line saying what
// it repaired, and exits. It never holds the target before that.
#pragma once

#include <sys/types.h>

namespace hs {

// Forks the guardian of `target` (the calling process is the tool). Returns
// in the tool only; if the fork fails, says so on stderr and carries on
// without one. Call it once, before the Session is opened.
void start_guardian(pid_t target);

}  // namespace hs
