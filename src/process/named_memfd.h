// Named memory in the target: a memfd created and mapped by remote system
// calls, so /proc/PID/maps shows "/memfd:NAME (deleted)" for it. hotsplice's
// registry, payload images and recovery trampoline live in such mappings; the
// name is how a later invocation recognises them as its own (never a mapping
// of the target's).
#pragma once

#include <string>

#include "process/remote_syscall.h"

namespace hs {

// Maps `size` bytes of a new memfd called `name` at `hint` with `prot` and
// `flags` (MAP_SHARED or MAP_PRIVATE, plus e.g. MAP_FIXED_NOREPLACE). The fd
// is closed again; the mapping keeps the memory alive. `t` is the borrowed
// (stopped) thread whose stack, below its red zone, holds the name briefly.
Result<RemoteAddr> map_named_memfd(const Process& proc, RemoteSyscalls& rs, const TracedThread& t,
                                   std::string_view name, RemoteAddr hint, u64 size, int prot, int flags);

// True if a /proc/PID/maps path is that of a memfd named `name`.
bool is_memfd_named(std::string_view path, std::string_view name);

}  // namespace hs
