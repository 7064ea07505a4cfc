// A child process the tests talk to over pipes: its stdin is written with
// send(), its stdout read a line at a time. The unit tests' helper programs
// and the e2e targets are run with it; most say "ready ..." first.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "support/bytes.h"

namespace hs::test {

class Child {
 public:
  // Starts argv[0] with those arguments and extra "K=V" environment
  // entries. A failure to start is a test failure (pid() is then -1).
  explicit Child(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
  // Killed (SIGKILL) and reaped unless it has been already.
  virtual ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Spawns and reads the first line, which must start with "ready" (a test
  // failure if not).
  static std::unique_ptr<Child> start(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

  // The PID it was started with (also after it died).
  pid_t pid() const { return pid_; }

  // Writes all of s to its stdin (retrying EINTR); false, and a test
  // failure, if it cannot.
  bool send(std::string_view s);
  // The next line of output, without the newline; nullopt on timeout or EOF.
  std::optional<std::string> next_line(int timeout_ms);
  // The next line; "" and a test failure on timeout or EOF.
  std::string line(int timeout_ms = 30000);
  // The next line; "" on timeout or EOF, quietly (the caller compares it).
  std::string read_line(int timeout_ms = 20000);
  // Sends one line and returns the answer line, quietly as read_line().
  std::string ask(std::string_view cmd, int timeout_ms = 20000);

  // The first line when it was started with start() (or expect_ready()).
  const std::string& ready() const { return ready_; }
  // Reads the first line; it must start with "ready".
  void expect_ready();
  // The number given as "key=<number>" in the ready line (any base strtoull
  // takes); a test failure and 0 if it is not there.
  u64 ready_number(std::string_view key) const;

  bool alive();               // not exited (reaps it if it has)
  int wait_exit();            // waits for it to exit: its wait status, -1 if reaped elsewhere
  void kill_now();            // SIGKILL and reap
  std::string maps() const;   // /proc/PID/maps
  // n bytes of its memory at addr, read through /proc/PID/mem (a test
  // failure, and fewer bytes, if they cannot all be read).
  Bytes read_memory(u64 addr, size_t n) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int in_ = -1, out_ = -1;
  std::string buffered_, ready_;
};

// A fixture for tests that drive child processes: SIGPIPE is ignored (a
// child that died makes send() fail, not the test process) and a watchdog
// alarm turns a hang into a failure.
class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
};

// "word k1=v1 k2=v2 ..." -> {k1: v1, k2: v2}; words without '=' are skipped.
std::map<std::string, std::string> key_values(std::string_view line);

// Reads /proc: the state letter of a thread ('?' if gone), the system call
// it is blocked in (-1 if running), a /proc/PID/status field ("" if absent).
char task_state(pid_t pid, pid_t tid);
long task_syscall(pid_t pid, pid_t tid);
std::string status_field(pid_t pid, std::string_view key);

}  // namespace hs::test
