// The engine: Xen's livepatch state machine, run against one target process.
//
// A Session is one invocation's hold on a process: it opens it, seizes every
// thread (which is also the per-process lock), finds the registry, repairs
// what a killed earlier invocation left half-done, and then runs operations.
// Every operation prepares everything it can while the process runs (parse,
// resolve, link, read the bytes it will replace, check expectations), writes
// its intent to the registry journal, and only then stops the threads for the
// short window in which it checks activeness and writes the patch bytes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/registry.h"
#include "engine/safety.h"
#include "process/objects.h"
#include "process/process.h"
#include "process/thread_group.h"

namespace hs {

struct Payload;
struct Overlay;

struct EngineOptions {
  std::chrono::milliseconds timeout{1000};  // activeness retries
  bool force = false;                        // skip the activeness check (warns)
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

  // Lines worth telling the user (repairs done, --force warnings).
  const std::vector<std::string>& notes() const { return notes_; }
  const RegistryState& state() const { return state_; }
  const Process& process() const { return *proc_; }

  // Releases the lock (detaches); also done by the destructor.
  Status close();

 private:
  Session() = default;
  Status repair();
  Result<bool> payload_mapped(const Journal& j);
  Status ensure_registry();
  Status commit();
  Result<const std::vector<MappedObject>*> objects();
  Result<PayloadRecord*> need(std::string_view name);

  struct Plan;
  Status plan_apply(const PayloadRecord& p, Overlay& mem, Plan& plan);
  Status plan_revert(const PayloadRecord& p, Overlay& mem, Plan& plan);
  // Journals `plan`, stops the world until it is safe, writes, resumes.
  Status execute(JournalOp op, std::string_view name, const Plan& plan);
  Status unmap_payload(const PayloadRecord& p);

  std::unique_ptr<Process> proc_;
  std::optional<ThreadGroup> group_;
  std::optional<Registry> registry_;
  RegistryState state_;
  std::optional<std::vector<MappedObject>> objects_;
  EngineOptions opts_;
  std::vector<std::string> notes_;
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

// Fault injection for the crash-safety tests: when the environment variable
// HOTSPLICE_FAULT_STEP=N is set, the N-th fault point reached kills the tool
// with SIGKILL (HOTSPLICE_FAULT_LIST=1 prints each point's number and name to
// stderr as it is passed).
void fault_point(const char* name);

}  // namespace hs
