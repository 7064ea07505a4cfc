// Registering a payload's unwind table with the target's own unwinder, so
// that C++ exceptions (and forced unwinding: pthread_cancel, pthread_exit)
// go through, into and out of payload code as through the program's own.
//
// The unwinder (libgcc's, in libgcc_s.so.1 or linked into the executable)
// finds the FDEs of the objects the dynamic linker loaded by itself; memory
// hotsplice mapped is none of those, so a payload's table must be handed to
// it: `__register_frame_info(eh_frame, object)` at upload, right after the
// image is protected and before its load hooks run, and
// `__deregister_frame_info(eh_frame)` at unload, after the unload hooks and
// before the munmap (and on every path that unmaps: a failed upload, a
// repair rolling an upload back). Both are called on a borrowed thread
// (RemoteCall) with the other threads running, as hooks are: they take
// libgcc's object mutex, which a stopped thread may hold.
//
// Which unwinders: every object, in link-map order (at most four), that
// defines `_Unwind_Find_FDE`, `__register_frame_info` and
// `__deregister_frame_info` (globals, or locals of an unstripped object):
// libgcc_s.so.1, and an executable linked with -static-libgcc, whose own
// copy runs its landing pads' _Unwind_Resume while libstdc++'s throws go
// through libgcc_s's. Each gets the table, with its own object. A process
// with none (a C program that never loaded libgcc_s) gets no registration:
// nothing there can throw through payload code.
//
// The table (loader-checked, zero-terminated) and libgcc's `struct object`
// live in the payload image; the unwind block (payload/eh_frame.h) at the
// start of its RW region says where the table is and gives a PC inside it.
// Whether the unwinder knows the table is never taken from a record: it is
// asked (`_Unwind_Find_FDE(pc)` returns an FDE inside the table or not), so
// registering and deregistering are idempotent, and a repair, a recover, an
// image uploaded before the unwinder was loaded, or by an older hotsplice,
// all come out right. (Deregistering a table libgcc does not know aborts the
// process; registering one twice corrupts libgcc's list: the question is
// what makes both impossible.)
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/registry.h"
#include "process/objects.h"
#include "process/thread_group.h"

namespace hs {

struct Unwinder {
  std::string object;  // its path
  RemoteAddr find_fde, register_info, deregister_info;
};

// The process's unwinders, as above; empty if none is loaded.
std::vector<Unwinder> find_unwinders(const std::vector<MappedObject>& objs);

// Where a payload's unwind block would be: the start of its first writable
// region, from its record or from the process's mappings of it; nullopt if
// it has none.
std::optional<RemoteAddr> unwind_block_of(const PayloadRecord& p);
std::optional<RemoteAddr> unwind_block_in(std::span<const MapEntry> maps, RemoteRange mapping);

enum class FrameChange { None, Registered, Deregistered };

// Brings the registration of the table the block at `block` describes to
// `registered`, on stopped thread `tid` (the other threads as they are):
// reads the block (no magic: nothing to do), finds the unwinders (none:
// nothing to do), asks each whether it knows the table, and registers or
// deregisters it where not as wanted. Errors name the payload and the
// object.
Result<FrameChange> settle_frames(ThreadGroup& group, pid_t tid, const Process& proc,
                                  const std::vector<MappedObject>& objs, RemoteAddr block, bool registered,
                                  std::string_view payload);

// The same on a thread stopped for it alone (ThreadGroup::stop_one), the
// process running otherwise; every thread is resumed afterwards.
Result<FrameChange> settle_frames_running(ThreadGroup& group, const Process& proc,
                                          const std::vector<MappedObject>& objs, RemoteAddr block, bool registered,
                                          std::string_view payload);

}  // namespace hs
