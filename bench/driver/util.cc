#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

extern char** environ;

namespace hsb {

long long now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void sleep_ns(long long ns) {
  if (ns <= 0) return;
  sleep_until_ns(now_ns() + ns);
}

void sleep_until_ns(long long abs_ns) {
  timespec ts{static_cast<time_t>(abs_ns / 1000000000LL), static_cast<long>(abs_ns % 1000000000LL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

Stats stats(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  return s;
}

double round_to(double v, int decimals) {
  double f = std::pow(10.0, decimals);
  return std::round(v * f) / f;
}

json to_json(const Stats& s, int decimals) {
  return json{{"n", s.n},
              {"median", round_to(s.median, decimals)},
              {"min", round_to(s.min, decimals)},
              {"max", round_to(s.max, decimals)}};
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) s += (i ? sep : "") + v[i];
  return s;
}

std::map<std::string, double> parse_kv(const std::string& line) {
  std::map<std::string, double> m;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq == std::string::npos) continue;
    char* end = nullptr;
    std::string val = tok.substr(eq + 1);
    double d = std::strtod(val.c_str(), &end);
    if (end && *end == 0 && !val.empty()) m[tok.substr(0, eq)] = d;
  }
  return m;
}

double kv_get(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) die("missing '{}' in an answer", key);
  return it->second;
}

namespace {

std::vector<char*> make_env(const std::vector<std::string>& extra, std::vector<std::string>& storage) {
  for (char** e = environ; *e; e++) {
    std::string s = *e;
    bool overridden = false;
    for (const auto& x : extra)
      if (s.substr(0, s.find('=') + 1) == x.substr(0, x.find('=') + 1)) overridden = true;
    if (!overridden) storage.push_back(s);
  }
  for (const auto& x : extra) storage.push_back(x);
  std::vector<char*> envp;
  for (auto& s : storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  return envp;
}

std::vector<char*> make_argv(const std::vector<std::string>& argv, std::vector<std::string>& storage) {
  storage = argv;
  std::vector<char*> out;
  for (auto& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void parse_timing(CmdResult& r) {
  std::istringstream in(r.err);
  std::string line;
  const std::string prefix = "hotsplice: timing ";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::string rest = line.substr(prefix.size());
    std::string what = rest.substr(0, rest.find(' '));
    auto kv = parse_kv(rest);
    auto& dst = r.timing[what];
    for (const auto& [k, v] : kv) dst[k] = v;
  }
}

}  // namespace

CmdResult run_cmd(const std::vector<std::string>& argv, const std::vector<std::string>& env, bool keep_out) {
  CmdResult r;
  int err_pipe[2], out_pipe[2] = {-1, -1};
  if (pipe2(err_pipe, O_CLOEXEC) != 0) die("pipe: {}", std::strerror(errno));
  if (keep_out && pipe2(out_pipe, O_CLOEXEC) != 0) die("pipe: {}", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (keep_out)
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  else
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<std::string> arg_storage, env_storage;
  auto cargv = make_argv(argv, arg_storage);
  auto cenv = make_env(env, env_storage);

  pid_t pid;
  long long t0 = now_ns();
  int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  close(err_pipe[1]);
  if (keep_out) close(out_pipe[1]);
  if (rc != 0) {
    close(err_pipe[0]);
    if (keep_out) close(out_pipe[0]);
    die("cannot run {}: {}", argv[0], std::strerror(rc));
  }
  // Drain the pipes until both are closed (the child exited), then reap.
  std::vector<pollfd> fds{{err_pipe[0], POLLIN, 0}};
  if (keep_out) fds.push_back({out_pipe[0], POLLIN, 0});
  size_t open_fds = fds.size();
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (auto& p : fds) {
      if (p.fd < 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(p.fd, buf, sizeof buf);
      if (n > 0) {
        (p.fd == err_pipe[0] ? r.err : r.out).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(p.fd);
        p.fd = -1;
        open_fds--;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.ms = static_cast<double>(now_ns() - t0) / 1e6;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  parse_timing(r);
  return r;
}

CmdResult run_ok(const std::vector<std::string>& argv, const std::vector<std::string>& env, bool keep_out) {
  CmdResult r = run_cmd(argv, env, keep_out);
  if (r.status != 0) {
    std::string first = r.err.substr(0, r.err.find('\n'));
    die("`{}` exited {}: {}", join(argv), r.status, first);
  }
  return r;
}

// ---- Child ------------------------------------------------------------------

Child::Child(const std::vector<std::string>& argv) : name_(argv.at(0)) {
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) die("pipe: {}", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
  std::vector<std::string> arg_storage, env_storage;
  auto cargv = make_argv(argv, arg_storage);
  auto cenv = make_env({}, env_storage);
  int rc = posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  close(to_child[0]);
  close(from_child[1]);
  if (rc != 0) {
    close(to_child[1]);
    close(from_child[0]);
    die("cannot start {}: {}", name_, std::strerror(rc));
  }
  in_ = to_child[1];
  out_ = from_child[0];
  signal(SIGPIPE, SIG_IGN);
}

Child::~Child() { stop(); }

std::string Child::read_line(int timeout_ms) {
  long long deadline = now_ns() + static_cast<long long>(timeout_ms) * 1000000LL;
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    long long left = (deadline - now_ns()) / 1000000LL;
    if (left <= 0) die("{} (PID {}) did not answer within {} ms", name_, pid_, timeout_ms);
    pollfd p{out_, POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char buf[4096];
    ssize_t n = read(out_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("{} (PID {}) closed its output (exited?)", name_, pid_);
    buf_.append(buf, static_cast<size_t>(n));
  }
}

std::string Child::ask(const std::string& line, int timeout_ms) {
  std::string l = line + "\n";
  if (write(in_, l.data(), l.size()) != static_cast<ssize_t>(l.size()))
    die("cannot write to {} (PID {})", name_, pid_);
  return read_line(timeout_ms);
}

std::string Child::ask_expect(const std::string& line, const std::string& prefix, int timeout_ms) {
  std::string a = ask(line, timeout_ms);
  if (a.rfind(prefix, 0) != 0) die("{} answered '{}' to '{}' (expected '{}...')", name_, a, line, prefix);
  return a;
}

void Child::stop() {
  if (pid_ <= 0) return;
  if (in_ >= 0) {
    (void)!write(in_, "quit\n", 5);
    close(in_);
    in_ = -1;
  }
  long long deadline = now_ns() + 3000000000LL;
  int status;
  for (;;) {
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    if (now_ns() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    sleep_ns(2000000);
  }
  if (out_ >= 0) close(out_);
  out_ = -1;
  pid_ = -1;
}

// ---- /proc ------------------------------------------------------------------

namespace {
std::vector<char> thread_states(pid_t pid) {
  std::vector<char> states;
  std::string dir = fmt::format("/proc/{}/task", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return states;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string stat = read_text_file(dir + "/" + e->d_name + "/stat");
    auto rp = stat.rfind(')');
    if (rp != std::string::npos && rp + 2 < stat.size()) states.push_back(stat[rp + 2]);
  }
  closedir(d);
  return states;
}
}  // namespace

void wait_sleeping_threads(pid_t pid, int n, int timeout_ms) {
  long long deadline = now_ns() + static_cast<long long>(timeout_ms) * 1000000LL;
  for (;;) {
    auto st = thread_states(pid);
    if (std::count(st.begin(), st.end(), 'S') >= n) return;
    if (now_ns() > deadline) die("PID {}: fewer than {} threads blocked after {} ms", pid, n, timeout_ms);
    sleep_ns(5000000);
  }
}

int thread_count(pid_t pid) { return static_cast<int>(thread_states(pid).size()); }

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.st_size);
}

}  // namespace hsb
