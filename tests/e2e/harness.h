// Helpers for the end-to-end tests: run the real `hotsplice` binary, start
// real target programs and talk to them over their stdin/stdout line protocol
// (they print "ready <pid>" first, then answer one line per command).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hs::e2e {

struct HsRun {
  int code = -1;
  std::string out, err;
  std::string err_line() const;  // first line of stderr, without the newline
};

// Runs HS_BIN with args; never throws. Extra environment "K=V" entries allowed.
HsRun hotsplice(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

std::string target_bin(const std::string& name);  // HS_TARGET_DIR/name
std::string patch_src(const std::string& name);   // HS_PATCH_DIR/name
std::string work_file(const std::string& name);   // HS_WORK_DIR/name (dir created)

// Builds a payload with `hotsplice build`; on failure the test fails (fatal).
std::string build(const std::string& patch, const std::string& target, const std::string& out,
                  const std::optional<std::string>& depends = std::nullopt);

class Target {
 public:
  explicit Target(const std::string& binary, const std::vector<std::string>& args = {},
                  const std::vector<std::string>& env = {});
  ~Target();
  Target(const Target&) = delete;
  Target& operator=(const Target&) = delete;

  pid_t pid() const { return pid_; }
  // Sends one line, returns the answer line (without newline); "" on EOF/timeout.
  std::string ask(const std::string& line, int timeout_ms = 20000);
  // Reads one more line of output.
  std::string read_line(int timeout_ms = 20000);
  bool alive() const;
  std::string maps() const;  // /proc/PID/maps text
  void kill_now();

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buf_;
};

// ---- shorthands the tests share ----

inline std::string P(const Target& t) { return std::to_string(t.pid()); }

// Runs a hotsplice command that must succeed (a fatal test failure if not).
void ok(const std::vector<std::string>& args);

// `hotsplice list PID --json`, parsed; what it printed to stderr (repair
// notes) goes to *err.
nlohmann::json list_json(const Target& t, std::string* err = nullptr);
const nlohmann::json* find_payload(const nlohmann::json& list, const std::string& name);
// "CHECKED", "APPLIED" or "absent".
std::string state_of(const nlohmann::json& list, const std::string& name);
std::string state_of(const Target& t, const std::string& name);

// How many fault points an operation run with HOTSPLICE_FAULT_LIST=1 passed.
int count_points(const HsRun& r);

// Polls `cond` every millisecond until it holds or `limit` passes.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = std::chrono::seconds(20));

}  // namespace hs::e2e
