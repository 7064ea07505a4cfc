// Helpers for the end-to-end tests: run the real `hotsplice` binary, start
// real target programs and talk to them over their stdin/stdout line protocol
// (they print "ready <pid>" first, then answer one line per command).
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/child.h"
#include "support/eventually.h"

namespace hs::e2e {

using test::eventually;
using test::ms_since;

struct HsRun {
  int code = -1;
  std::string out, err;
  long long ms = 0;              // how long it ran (wall time)
  std::string err_line() const;  // first line of stderr, without the newline
  pid_t pid = -1;                // the tool's PID
  // Microseconds from the tool's exit to the end of its stderr, i.e. until
  // its guardian (src/cli/guardian.h, which keeps a copy of stderr) has
  // exited too; -1 if that did not happen within 30 s.
  long long guardian_us = -1;
  long long stderr_closed_ns = -1;  // when (steady clock), -1 if it was not
};

// With HOTSPLICE_FAULT_STAMP=1 in a run killed at a fault point: the
// microseconds from the kill (the time the tool printed just before it) to
// the end of its stderr (its guardian's exit, after the repair); an upper
// bound on how long the target was left half-done. -1 without the stamp.
long long kill_to_guardian_exit_us(const HsRun& r);

// Runs HS_BIN with args; never throws. Extra environment "K=V" entries
// allowed. Returns once the tool AND its guardian have exited (stderr is a
// pipe read until every copy of it is closed), so a tool killed mid-operation
// has been repaired by its guardian by then; `err` holds what both wrote.
HsRun hotsplice(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

// The line a guardian wrote ("hotsplice: guardian: ..."), or "".
std::string guardian_line(const HsRun& r);

std::string target_bin(const std::string& name);  // HS_TARGET_DIR/name
std::string patch_src(const std::string& name);   // HS_PATCH_DIR/name
std::string work_file(const std::string& name);   // HS_WORK_DIR/name (dir created)

// The build-id of the ELF file at `path`, in hex ("" and a test failure if
// it has none).
std::string build_id_hex(const std::string& path);

// Builds a payload with `hotsplice build`; on failure the test fails (not
// fatally: the path is returned anyway, and whatever uses it fails).
std::string build(const std::string& patch, const std::string& target, const std::string& out,
                  const std::optional<std::string>& depends = std::nullopt);

// A target program (HS_TARGET_DIR/...), started and past its "ready" line;
// killed when it goes. ask() sends a command line and returns the answer
// ("" on EOF or timeout).
class Target : public test::Child {
 public:
  explicit Target(const std::string& binary, const std::vector<std::string>& args = {},
                  const std::vector<std::string>& env = {});
};

// ---- shorthands the tests share ----

inline std::string P(const Target& t) { return std::to_string(t.pid()); }

// OK({"apply", P(t), "fix"}): runs a hotsplice command that must succeed;
// if it does not, the test fails and stops there (also when OK is used in a
// helper or lambda: wrap that call in ASSERT_NO_FATAL_FAILURE).
#define OK(...)                                                       \
  do {                                                                \
    ASSERT_NO_FATAL_FAILURE(::hs::e2e::expect_ok(__VA_ARGS__));       \
  } while (0)
// The check behind OK: a fatal failure in this function.
void expect_ok(const std::vector<std::string>& args);

// A hotsplice command that must fail with exit code 1, `err_line` the last
// line it writes to stderr.
void expect_error(const std::vector<std::string>& args, const std::string& err_line);

// Payload `name` is gone from the target: not listed, not mapped.
void expect_absent(const Target& t, const std::string& name);

// A question for a target and the answer expected; `why` is said when the
// answer is another.
struct Ask {
  std::string question;
  std::string answer;
  std::string why = "";
};
// Asks each question in turn and expects its answer.
void expect_answers(Target& t, const std::vector<Ask>& asks);

// `hotsplice list PID --json`, parsed; what it printed to stderr (repair
// notes) goes to *err.
// hello() and world() as the hello target reports them ("call", "world").
std::pair<int, int> hello_world(Target& t);

nlohmann::json list_json(const Target& t, std::string* err = nullptr);
const nlohmann::json* find_payload(const nlohmann::json& list, const std::string& name);
// "CHECKED", "APPLIED" or "absent".
std::string state_of(const nlohmann::json& list, const std::string& name);
std::string state_of(const Target& t, const std::string& name);

// The fault points an operation run with HOTSPLICE_FAULT_LIST=1 passed:
// their names in order, and how many.
std::vector<std::string> fault_points(const HsRun& r);
int count_points(const HsRun& r);

// The `args` of an operation with the target's PID put after the verb.
std::vector<std::string> with_pid(std::vector<std::string> args, const Target& t);

// Whether payload NAME's memory (memfd "hotsplice:NAME") is mapped in t.
bool mapped(const Target& t, const std::string& name);

// ---- an operation interrupted at each of its fault points ----

struct FaultOp {
  std::string name;
  std::string binary;                  // the target program, a full path
  std::function<void(Target&)> setup;  // brings a fresh target to where the operation starts (may use OK)
  std::vector<std::string> args;       // the operation; the PID goes after args[0]
};

// Runs `op` once on a fresh target with HOTSPLICE_FAULT_LIST=1: the names of
// the fault points it passes, in order. A fatal failure if it fails or
// passes none (call it in ASSERT_NO_FATAL_FAILURE).
void list_fault_points(const FaultOp& op, std::vector<std::string>* names);

// For each fault point k (1-based, named names[k-1]): a fresh target, set
// up, the operation run with `env`=k (HOTSPLICE_FAULT_STEP: the tool is
// killed there; HOTSPLICE_FAULT_KILL_TARGET: the target is), then
// check(target, result, point name). A fatal failure in setup or check stops
// it (call it in ASSERT_NO_FATAL_FAILURE).
using FaultCheck = std::function<void(Target&, const HsRun&, const std::string& point)>;
void at_each_fault_point(const FaultOp& op, const std::vector<std::string>& names, const std::string& env,
                         const FaultCheck& check);

}  // namespace hs::e2e
