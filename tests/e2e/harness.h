// Helpers for the end-to-end tests: run the real `hotsplice` binary, start
// real target programs and talk to them over their stdin/stdout line protocol
// (they print "ready <pid>" first, then answer one line per command).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

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

}  // namespace hs::e2e
