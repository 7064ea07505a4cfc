// Instrumentation of the engine: fault injection for the crash-safety tests
// and phase timings for the benchmarks.
//
// Fault injection exists only in builds configured with
// -DHS_FAULT_INJECTION=ON (scripts/test.sh does): there, when the
// environment variable HOTSPLICE_FAULT_STEP=N is set, the N-th fault point
// reached kills the tool with SIGKILL (HOTSPLICE_FAULT_LIST=1 prints each
// point's number and name to stderr as it is passed; HOTSPLICE_FAULT_STAMP=1
// prints "hotsplice: killed at fault point N NAME at T ns", T on
// CLOCK_MONOTONIC, just before the kill, so a test can time what follows), and
// HOTSPLICE_FAULT_KILL_TARGET=N instead SIGKILLs the target process at the
// N-th point and waits until it has died, for the tests of a target that
// dies in the middle of an operation. In every other build the fault points
// are macros that expand to nothing: the binary holds neither the code, the
// variables' names nor the points' names.
//
// The phase timer is in every build: with HOTSPLICE_TIMING=1 an operation
// prints "hotsplice: timing WHAT name=ns ..." on stderr (bench/ reads it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace hs {

#ifdef HS_FAULT_INJECTION
// Passes the fault point `name` (see above).
void fault_point(const char* name);
// The process HOTSPLICE_FAULT_KILL_TARGET kills: the one last opened.
void set_fault_target(pid_t pid);
#define HS_FAULT_POINT(name) ::hs::fault_point(name)
#define HS_FAULT_TARGET(pid) ::hs::set_fault_target(pid)
#else
#define HS_FAULT_POINT(name) \
  do {                       \
  } while (0)
#define HS_FAULT_TARGET(pid) ((void)(pid))
#endif

// Phase timings of one operation. Each mark() records the time since the
// previous one under a name; the line is printed when the timer goes out of
// scope, if HOTSPLICE_TIMING is set. A name marked twice (a retry) appears
// twice; readers that use a map keep its last value.
class PhaseTimer {
 public:
  explicit PhaseTimer(const char* what) : what_(what), last_(now()) {}
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  static bool enabled();
  static long long now() {  // CLOCK_MONOTONIC ns
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  long long last() const { return last_; }
  void mark(const char* name) {  // name = time since the previous mark
    const long long t = now();
    put(name, t - last_);
    last_ = t;
  }
  void put(const char* name, long long v);

 private:
  const char* what_;
  long long last_;
  std::string line_;
};

}  // namespace hs
