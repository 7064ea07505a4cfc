// The stop window: stopping the target at a moment when its code may change.
//
// An operation's writes are made with every thread stopped and none of them
// executing in, or due to return into, code about to change or be switched
// away from (the guards of its Plan). stop_when_safe() stops the threads in
// two waves (ThreadGroup::stop_all: first the ones not running, whose stacks
// are checked while the running ones still run, then those), checks each
// wave with the ActivenessChecker, and if a thread is in the way resumes
// everything, backs off (200 µs doubling up to 20 ms) and tries again until
// the time limit. What happens inside the window (the writes, the apply and
// revert hooks, the commit, the resume or detach) is Session::execute
// (stop_window.cc).
#pragma once

#include <chrono>
#include <optional>
#include <span>

#include "engine/activeness.h"
#include "engine/instrument.h"
#include "process/thread_group.h"

namespace hs {

// Returns nullopt with every thread of `group` stopped and none in `guards`;
// or, once `timeout` has passed with every try unsafe, the unsafe thread the
// last try found, with every thread running again. `checker` must be
// prepared; with `force` nothing is checked and the first stop is taken. An
// error leaves the threads running. Marks "stop", "check", "resume",
// "backoff" on `timer` (with "t0", "tries" and "threads" once stopped).
Result<std::optional<UnsafeThread>> stop_when_safe(ThreadGroup& group, ActivenessChecker& checker,
                                                   std::span<const GuardedRange> guards,
                                                   std::chrono::milliseconds timeout, bool force, PhaseTimer& timer);

}  // namespace hs
