// Planning an operation: which bytes of the target change, computed before
// anything is stopped.
//
// apply, revert and replace first work out every write they will make
// (entry patches, undo bytes, redirected call sites) against an Overlay: the
// target's memory as it will be once the writes planned so far are made. A
// replace that reverts a whole stack and then applies a new payload thus
// sees, for each function, the bytes the earlier steps leave there. The
// result, a Plan, is what the operation journals and what the stop window
// writes; it also lists the code no thread may be in while it is written
// (the activeness guards), the per-function states to commit and the action
// hooks to run.
//
// Nothing here stops, writes or commits: the functions read target memory
// through a MemoryReader (a Process, or a fake in a unit test) and the
// registry state they are given.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/activeness.h"
#include "engine/registry.h"

namespace hs {

class Process;

// Reads `len` bytes of target memory at `addr`.
using MemoryReader = std::function<Result<Bytes>(RemoteAddr addr, size_t len)>;
// The memory of a live process (/proc/PID/mem).
MemoryReader memory_of(const Process& proc);

// Target memory as it will be after the writes planned so far.
class Overlay {
 public:
  explicit Overlay(MemoryReader read) : read_(std::move(read)) {}

  // The bytes at [addr, addr + len) once the planned writes are made.
  Result<Bytes> read(u64 addr, size_t len) const;
  // Plans a write (`before` is what is there then, for the journal).
  void write(u64 addr, Bytes before, Bytes after);

  const std::vector<JournalWrite>& writes() const { return writes_; }
  std::vector<JournalWrite> take_writes() { return std::move(writes_); }

 private:
  MemoryReader read_;
  std::vector<JournalWrite> writes_;
};

struct Plan {
  std::vector<JournalWrite> writes;  // in order
  std::vector<GuardedRange> guards;
  // (payload, function index, undo bytes) for functions switched on.
  std::vector<std::tuple<std::string, size_t, Bytes>> applied;
  std::vector<std::string> reverted;  // payloads a replace switches off
  // Apply/revert hooks run in the stop window right after the writes, in
  // order: (payload, hook).
  std::vector<std::pair<std::string, HookRecord>> action_hooks;
  // Detach straight from the stop window once committed (nothing after the
  // operation needs the threads held).
  bool detach_when_done = false;
};

// Switches `p` on: at each function, the expected bytes must be there
// (BadTarget "expected bytes ... found ..."), the patch must not be
// already ("already holds this patch"); its patch is planned with the bytes
// it replaces as undo, and the whole old function is guarded.
Status plan_apply(const PayloadRecord& p, Overlay& mem, Plan& plan);

// Switches `p` off, newest function first: each patch site must hold its
// patch (Internal error otherwise) and gets its undo bytes back; the patched
// entries and the payload's code are guarded.
Status plan_revert(const PayloadRecord& p, Overlay& mem, Plan& plan);

// After the entries are planned: the direct call sites (recorded at upload,
// by any payload of `state` replacing the function) of every function of
// `involved` (payloads of one object) are pointed where the function's entry
// leads once `mem`'s writes are made: the replacement whose jump is there,
// else the function itself. Without `redirect_calls` always the function
// itself, so that a site redirected earlier is put back rather than left
// pointing at code that may be unloaded. A site whose bytes are not a call
// to the function or one of its replacements (something else wrote there)
// is left alone, as is one in bytes some payload patches or expects at a
// function entry: those bytes belong to the entry patches.
Status plan_call_sites(const RegistryState& state, std::span<const PayloadRecord* const> involved,
                       bool redirect_calls, Overlay& mem);

}  // namespace hs
