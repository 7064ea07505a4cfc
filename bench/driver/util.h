// hsbench helpers: clocks, statistics, running commands, talking to targets.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace hsb {

using json = nlohmann::json;

// Any failure aborts the benchmark with this message (main catches it).
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
template <class... Args>
[[noreturn]] void die(fmt::format_string<Args...> f, Args&&... args) {
  throw BenchError(fmt::format(f, std::forward<Args>(args)...));
}

// CLOCK_MONOTONIC (the clock the targets and HOTSPLICE_TIMING use), in ns.
long long now_ns();
void sleep_ns(long long ns);
void sleep_until_ns(long long abs_ns);

// Median / min / max of a sample (median of an even count: mean of the two).
struct Stats {
  size_t n = 0;
  double median = 0, min = 0, max = 0, mean = 0;
};
Stats stats(std::vector<double> v);
json to_json(const Stats& s, int decimals = 3);
double round_to(double v, int decimals);

// One finished command.
struct CmdResult {
  int status = -1;      // exit code, or 128 + signal
  double ms = 0;        // wall time, fork to reaped
  std::string out, err;
  // HOTSPLICE_TIMING lines: "hotsplice: timing WHAT k=v ..." -> [WHAT][k] = v.
  std::map<std::string, std::map<std::string, double>> timing;
};
// Runs argv (no shell). `env` entries "K=V" are added to the environment.
// stdout is captured only when keep_out (else /dev/null).
CmdResult run_cmd(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                  bool keep_out = false);
// As run_cmd, and dies unless it exits 0.
CmdResult run_ok(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                 bool keep_out = false);
std::string join(const std::vector<std::string>& v, const std::string& sep = " ");

// A program driven over stdin/stdout with one answer line per command line.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string read_line(int timeout_ms = 30000);
  std::string ask(const std::string& line, int timeout_ms = 30000);
  // Asks and dies unless the answer starts with `prefix`.
  std::string ask_expect(const std::string& line, const std::string& prefix, int timeout_ms = 30000);
  // "quit", then waits (SIGKILL after 3 s).
  void stop();

 private:
  std::string name_;
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buf_;
};

// "k1=v1 k2=v2" -> map (values as numbers; non-numbers are skipped).
std::map<std::string, double> parse_kv(const std::string& line);
double kv_get(const std::map<std::string, double>& m, const std::string& key);

// Waits until at least `n` threads of `pid` sleep (state S) in the kernel.
void wait_sleeping_threads(pid_t pid, int n, int timeout_ms = 10000);
int thread_count(pid_t pid);

std::string read_text_file(const std::string& path);
long long file_size(const std::string& path);

}  // namespace hsb
