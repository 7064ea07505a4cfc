// Fault points (test builds only) and the phase timer: see instrument.h.
#include "engine/instrument.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#ifdef HS_FAULT_INJECTION
#include <signal.h>
#include <unistd.h>

#include "process/process.h"
#endif

namespace hs {

#ifdef HS_FAULT_INJECTION

namespace {

pid_t fault_target_pid = 0;

long env_number(const char* name) {
  const char* s = std::getenv(name);
  return s ? std::atol(s) : 0L;
}

// HOTSPLICE_FAULT_KILL_TARGET: SIGKILLs the target, then waits (at most 5 s)
// until none of its threads runs any more, so that what the tool does next
// meets a dead process every time, not one still dying.
void kill_target(pid_t pid) {
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 5000 && Process::any_thread_running(pid); i++) ::usleep(1000);
}

}  // namespace

void set_fault_target(pid_t pid) { fault_target_pid = pid; }

void fault_point(const char* name) {
  static const long kill_tool_at = env_number("HOTSPLICE_FAULT_STEP");
  static const long kill_target_at = env_number("HOTSPLICE_FAULT_KILL_TARGET");
  static const bool list = std::getenv("HOTSPLICE_FAULT_LIST") != nullptr;
  static const bool stamp = std::getenv("HOTSPLICE_FAULT_STAMP") != nullptr;
  static long reached = 0;
  reached++;
  if (list) fmt::print(stderr, "hotsplice: fault point {} {}\n", reached, name);
  if (reached == kill_tool_at) {
    if (stamp) fmt::print(stderr, "hotsplice: killed at fault point {} {} at {} ns\n", reached, name, PhaseTimer::now());
    raise(SIGKILL);
  }
  if (reached == kill_target_at && fault_target_pid > 0) kill_target(fault_target_pid);
}

#endif  // HS_FAULT_INJECTION

PhaseTimer::~PhaseTimer() {
  if (enabled()) fmt::print(stderr, "hotsplice: timing {}{}\n", what_, line_);
}

bool PhaseTimer::enabled() {
  static const bool on = std::getenv("HOTSPLICE_TIMING") != nullptr;
  return on;
}

void PhaseTimer::put(const char* name, long long v) {
  if (enabled()) line_ += fmt::format(" {}={}", name, v);
}

}  // namespace hs
