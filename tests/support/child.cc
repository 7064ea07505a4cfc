#include "support/child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/files.h"

namespace hs::test {

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int to_child[2], from_child[2];
  if (argv.empty() || ::pipe2(to_child, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "cannot start a child: " << (argv.empty() ? "no program" : std::strerror(errno));
    return;
  }
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    ::close(to_child[0]);
    ::close(to_child[1]);
    return;
  }
  // Everything exec needs is made before the fork.
  std::vector<std::string> args = argv, envs = env;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(to_child[0], 0);
    ::dup2(from_child[1], 1);
    for (auto& e : envs) ::putenv(e.data());
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  in_ = to_child[1];
  out_ = from_child[0];
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    reaped_ = true;
  }
}

Child::~Child() {
  kill_now();
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
}

std::unique_ptr<Child> Child::start(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  auto c = std::make_unique<Child>(argv, env);
  c->expect_ready();
  return c;
}

bool Child::send(std::string_view s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(in_, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ADD_FAILURE() << "write to child " << pid_ << " failed: " << std::strerror(errno);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

std::optional<std::string> Child::next_line(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string l = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return l;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || out_ < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;  // EINTR, or the deadline: looked at above
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

std::string Child::line(int timeout_ms) {
  auto l = next_line(timeout_ms);
  if (!l) ADD_FAILURE() << "no line of output from child " << pid_ << " within " << timeout_ms
                        << " ms (timed out, or it closed its output)";
  return l.value_or("");
}

std::string Child::read_line(int timeout_ms) { return next_line(timeout_ms).value_or(""); }

std::string Child::ask(std::string_view cmd, int timeout_ms) {
  if (!send(std::string(cmd) + "\n")) return "";
  return read_line(timeout_ms);
}

void Child::expect_ready() {
  ready_ = line();
  EXPECT_TRUE(ready_.starts_with("ready")) << "child " << pid_ << " did not say ready: '" << ready_ << "'";
}

u64 Child::ready_number(std::string_view key) const {
  const auto kv = key_values(ready_);
  const auto it = kv.find(std::string(key));
  if (it == kv.end()) {
    ADD_FAILURE() << "no " << key << "= in the ready line '" << ready_ << "'";
    return 0;
  }
  return std::stoull(it->second, nullptr, 0);
}

bool Child::alive() {
  if (pid_ <= 0 || reaped_) return false;
  int status;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) reaped_ = true;
  return r == 0;
}

int Child::wait_exit() {
  if (pid_ <= 0 || reaped_) return -1;
  int st = 0;
  pid_t r;
  while ((r = ::waitpid(pid_, &st, 0)) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  return r < 0 ? -1 : st;
}

void Child::kill_now() {
  if (pid_ <= 0 || reaped_) return;
  ::kill(pid_, SIGKILL);
  wait_exit();
}

std::string Child::maps() const { return slurp(fmt::format("/proc/{}/maps", pid_)); }

Bytes Child::read_memory(u64 addr, size_t n) const {
  Bytes b(n);
  const int fd = ::open(fmt::format("/proc/{}/mem", pid_).c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << "/proc/" << pid_ << "/mem: " << std::strerror(errno);
  const ssize_t got = fd < 0 ? 0 : ::pread(fd, b.data(), n, static_cast<off_t>(addr));
  EXPECT_EQ(got, static_cast<ssize_t>(n)) << fmt::format("reading {:#x} bytes at {:#x} in PID {}", n, addr, pid_);
  if (fd >= 0) ::close(fd);
  b.resize(got > 0 ? static_cast<size_t>(got) : 0);
  return b;
}

void ChildProcessTest::SetUp() {
  ::signal(SIGPIPE, SIG_IGN);
  ::alarm(120);
}

void ChildProcessTest::TearDown() { ::alarm(0); }

std::map<std::string, std::string> key_values(std::string_view line) {
  std::map<std::string, std::string> out;
  std::istringstream in{std::string(line)};
  for (std::string word; in >> word;) {
    const size_t eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

char task_state(pid_t pid, pid_t tid) {
  const std::string s = slurp(fmt::format("/proc/{}/task/{}/stat", pid, tid));
  const size_t p = s.rfind(") ");
  return p == std::string::npos || p + 2 >= s.size() ? '?' : s[p + 2];
}

long task_syscall(pid_t pid, pid_t tid) {
  const std::string s = slurp(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  if (s.empty() || s.starts_with("running")) return -1;
  return std::strtol(s.c_str(), nullptr, 10);
}

std::string status_field(pid_t pid, std::string_view key) {
  std::istringstream f(slurp(fmt::format("/proc/{}/status", pid)));
  const std::string prefix = std::string(key) + ":";
  for (std::string line; std::getline(f, line);)
    if (line.starts_with(prefix)) {
      const size_t v = line.find_first_not_of(" \t", prefix.size());
      return v == std::string::npos ? "" : line.substr(v);
    }
  return "";
}

}  // namespace hs::test
