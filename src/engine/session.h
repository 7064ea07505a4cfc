// Session: one invocation's hold on a target process, and the verbs of
// Xen's livepatch state machine run through it.
//
// Session::open opens the process, seizes every thread (which is also the
// per-process lock), finds the registry and repairs what a killed earlier
// invocation left half-done (repair.cc). Every operation then prepares all it
// can while the process runs (parse, resolve, link, read the bytes it will
// replace, check expectations: resolver.h, placement.h, record.h, plan.h),
// writes its intent to the registry journal, and only then stops the threads
// for the short window in which it checks activeness and writes the patch
// bytes (stop_window.h). Hooks run as hooks.cc describes. The verbs
// themselves are in session.cc; list_state reads a process's state without
// taking the lock.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/activeness.h"
#include "engine/plan.h"
#include "engine/registry.h"
#include "process/objects.h"
#include "process/process.h"
#include "process/thread_group.h"

namespace hs {

class PhaseTimer;

struct EngineOptions {
  std::chrono::milliseconds timeout{1000};  // activeness retries
  bool force = false;                        // skip the activeness check
  // The session's last operation: once it has committed with the threads
  // stopped, detach from that same stop instead of resuming and stopping
  // again to detach (one stop window instead of two). The session is closed
  // afterwards. The CLI sets it; code running several operations does not.
  bool release_when_done = false;
  // Also point the direct calls to a patched function at its replacement
  // (engine/call_sites.h). Off: every call keeps going through the entry
  // jump (and sites an earlier operation redirected are put back).
  bool redirect_calls = true;
  // Where stripped target objects' debug files are looked for (--debug-dir).
  DebugSearch debug;
};

class Session {
 public:
  // Opens PID, takes the lock, repairs an interrupted operation.
  static Result<std::unique_ptr<Session>> open(pid_t pid, EngineOptions opts = {});
  ~Session();

  Status upload(std::string_view name, const std::string& file);
  Status apply(std::string_view name);
  Status revert(std::string_view name);
  Status replace(std::string_view name);
  Status unload(std::string_view name);
  // upload + apply; on a failed apply the payload is unloaded again.
  Status load(std::string_view name, const std::string& file);

  // Lines worth telling the user (repairs done, post-hook failures).
  const std::vector<std::string>& notes() const { return notes_; }
  const RegistryState& state() const { return state_; }

  // Releases the lock (detaches); also done by the destructor.
  Status close();

 private:
  Session() = default;
  Status repair();
  Status ensure_registry();
  Status commit();
  Result<const std::vector<MappedObject>*> objects();
  Result<PayloadRecord*> need(std::string_view name);
  // apply / revert of one checked payload: plan, hooks, the stop window.
  Status switch_payload(JournalOp op, const PayloadRecord& p);

  // The stop window (stop_window.cc). Journals `plan`, stops the world until
  // it is safe, writes, runs the action hooks, commits, resumes.
  Status execute(JournalOp op, std::string_view name, const Plan& plan);
  // Stops every thread when none is in `guards`; a Timeout error (journal
  // cleared) when that does not happen within the time limit.
  Status enter_stop_window(JournalOp op, std::string_view name, std::span<const GuardedRange> guards,
                           PhaseTimer& timer);

  // Hooks (hooks.cc): when each kind runs and with which threads stopped,
  // and how a repair treats an operation killed among them.
  // `arg`: the hook's argument (hotsplice_action for apply/revert hooks, else 0).
  Result<u64> call_hook(const PayloadRecord& p, const HookRecord& h, pid_t tid, bool stop_window = false,
                        u64 arg = 0);
  Result<u64> call_hook_running(const PayloadRecord& p, const HookRecord& h);
  pid_t stopped_hook_thread() const;
  Status run_pre_hook(std::string_view name, std::string_view kind, JournalOp op);
  Status run_post_hook(std::string_view name, std::string_view kind);
  Status run_action_hooks(JournalOp op, std::string_view name, const Plan& plan);
  Status run_load_hooks(PayloadRecord rec, pid_t tid);
  Status run_unload_hooks(std::string_view name);
  // Sets the registry states `plan` leads to (idempotent).
  Status transition(JournalOp op, std::string_view name, const Plan& plan);

  std::unique_ptr<Process> proc_;
  std::optional<ThreadGroup> group_;
  std::optional<Registry> registry_;
  RegistryState state_;
  std::optional<std::vector<MappedObject>> objects_;
  EngineOptions opts_;
  std::vector<std::string> notes_;
  std::unique_ptr<ActivenessChecker> checker_;  // of the operation under way
};

// The committed state of a process, read without taking the lock
// (for `list`). A process without a registry has no payloads. `in_progress`
// is set when another invocation is working on it right now.
struct ListResult {
  RegistryState state;
  bool in_progress = false;
  std::vector<std::string> notes;
};
Result<ListResult> list_state(pid_t pid);

}  // namespace hs
