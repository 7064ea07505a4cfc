#include "harness.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "elf/elf_file.h"
#include "support/bytes.h"

namespace hs::e2e {

namespace {

std::string slurp_fd(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

std::string HsRun::err_line() const { return err.substr(0, err.find('\n')); }

namespace {

// Forks and execs the tool with stdout/stderr on `out`/`err`; its PID.
pid_t spawn_tool(const std::vector<std::string>& args, const std::vector<std::string>& env, int out, int err) {
  std::vector<std::string> argv{HS_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> envs = env;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (auto& e : envs) {
      // Not for the tool: run it as that (unprivileged) user.
      if (e.rfind("HOTSPLICE_TEST_SETUID=", 0) == 0) {
        uid_t id = static_cast<uid_t>(std::stoul(e.substr(e.find('=') + 1)));
        if (setgroups(0, nullptr) != 0 || setgid(id) != 0 || setuid(id) != 0) _exit(126);
        continue;
      }
      putenv(e.data());
    }
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

HsRun hotsplice(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  using Clock = std::chrono::steady_clock;
  char out_tmpl[] = "/tmp/hs-out-XXXXXX";
  int out = mkstemp(out_tmpl);
  unlink(out_tmpl);
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  const auto t0 = Clock::now();
  HsRun r;
  r.pid = spawn_tool(args, env, out, errp[1]);
  close(errp[1]);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, r.pid, 0));
  EXPECT_GE(pidfd, 0) << "pidfd_open: " << std::strerror(errno);
  // The tool's exit (its pidfd) and the end of stderr (every writer gone),
  // whichever comes first, each timed.
  // A guardian that has not let go of stderr 30 s after the tool's exit
  // is a test failure (guardian_us stays -1).
  std::optional<Clock::time_point> exited, eof;
  while (!eof && (!exited || Clock::now() < *exited + std::chrono::seconds(30))) {
    pollfd p[2] = {{.fd = errp[0], .events = POLLIN, .revents = 0},
                   {.fd = exited ? -1 : pidfd, .events = POLLIN, .revents = 0}};
    if (poll(p, 2, 100) < 0) continue;
    const auto now = Clock::now();
    if (p[1].revents) exited = now;
    if (p[0].revents) {
      char buf[4096];
      ssize_t n = read(errp[0], buf, sizeof buf);
      if (n > 0) r.err.append(buf, static_cast<size_t>(n));
      if (n == 0) eof = now;
    }
  }
  int status = 0;
  waitpid(r.pid, &status, 0);
  if (!exited) exited = Clock::now();
  r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(*exited - t0).count();
  if (eof) {
    r.guardian_us =
        std::max<long long>(0, std::chrono::duration_cast<std::chrono::microseconds>(*eof - *exited).count());
    r.stderr_closed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(eof->time_since_epoch()).count();
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  lseek(out, 0, SEEK_SET);
  r.out = slurp_fd(out);
  close(out);
  close(errp[0]);
  if (pidfd >= 0) close(pidfd);
  return r;
}

long long kill_to_guardian_exit_us(const HsRun& r) {
  const std::string tag = "hotsplice: killed at fault point ";
  const size_t at = r.err.find(tag);
  if (at == std::string::npos || r.stderr_closed_ns < 0) return -1;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  long long killed = -1;
  if (sscanf(line.c_str() + line.rfind(" at ") + 4, "%lld ns", &killed) != 1) return -1;
  return (r.stderr_closed_ns - killed) / 1000;
}

std::string guardian_line(const HsRun& r) {
  const std::string tag = "hotsplice: guardian: ";
  size_t at = r.err.rfind(tag);
  if (at == std::string::npos || (at > 0 && r.err[at - 1] != '\n')) return "";
  return r.err.substr(at, r.err.find('\n', at) - at);
}

std::string target_bin(const std::string& name) { return std::string(HS_TARGET_DIR) + "/" + name; }
std::string patch_src(const std::string& name) { return std::string(HS_PATCH_DIR) + "/" + name; }
std::string work_file(const std::string& name) {
  mkdir(HS_WORK_DIR, 0755);
  return std::string(HS_WORK_DIR) + "/" + name;
}

std::string build_id_hex(const std::string& path) {
  auto elf = hs::ElfFile::open(path);
  EXPECT_TRUE(elf.has_value()) << (elf ? "" : elf.error().message());
  if (!elf) return "";
  auto id = elf->build_id();
  EXPECT_TRUE(id.has_value()) << path;
  return id ? hs::to_hex(*id) : "";
}

std::string build(const std::string& patch, const std::string& target, const std::string& out,
                  const std::optional<std::string>& depends) {
  // Test processes run in parallel and may build the same payload (a
  // fixture's, once per test): each writes its own file and renames it into
  // place, so a reader never sees a half-written one. The builder is
  // deterministic, so every rename puts the same bytes there.
  std::string path = work_file(out);
  std::string tmp = path + "." + std::to_string(::getpid()) + ".tmp";
  std::vector<std::string> args{"build", patch_src(patch), "--target", target, "-o", tmp};
  if (depends) {
    args.push_back("--depends");
    args.push_back(*depends);
  }
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 0) << "hotsplice build " << patch << " failed: " << r.err;
  if (r.code == 0) {
    EXPECT_EQ(::rename(tmp.c_str(), path.c_str()), 0) << tmp << ": " << std::strerror(errno);
  }
  return path;
}

namespace {
std::vector<std::string> argv_of(const std::string& binary, const std::vector<std::string>& args) {
  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
}  // namespace

Target::Target(const std::string& binary, const std::vector<std::string>& args, const std::vector<std::string>& env)
    : Child(argv_of(binary, args), env) {
  expect_ready();
}

void expect_ok(const std::vector<std::string>& args) {
  HsRun r = hotsplice(args);
  ASSERT_EQ(r.code, 0) << "hotsplice " << testing::PrintToString(args) << "\nstderr: " << r.err;
}

std::pair<int, int> hello_world(Target& t) {
  int h = -1, w = -1, c = 0;
  sscanf(t.ask("call").c_str(), "hello=%d count=%d", &h, &c);
  sscanf(t.ask("world").c_str(), "world=%d", &w);
  return {h, w};
}

nlohmann::json list_json(const Target& t, std::string* err) {
  HsRun r = hotsplice({"list", P(t), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  if (err) *err = r.err;
  return nlohmann::json::parse(r.out.empty() ? "{}" : r.out);
}

const nlohmann::json* find_payload(const nlohmann::json& list, const std::string& name) {
  for (const auto& p : list["payloads"])
    if (p["name"] == name) return &p;
  return nullptr;
}

std::string state_of(const nlohmann::json& list, const std::string& name) {
  const nlohmann::json* p = find_payload(list, name);
  return p ? (*p)["state"].get<std::string>() : "absent";
}

std::string state_of(const Target& t, const std::string& name) { return state_of(list_json(t), name); }

void expect_error(const std::vector<std::string>& args, const std::string& err_line) {
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err_line(), err_line);
}

void expect_absent(const Target& t, const std::string& name) {
  EXPECT_EQ(state_of(list_json(t), name), "absent");
  EXPECT_FALSE(mapped(t, name)) << t.maps();
}

void expect_answers(Target& t, const std::vector<Ask>& asks) {
  for (const Ask& a : asks) EXPECT_EQ(t.ask(a.question), a.answer) << "asked \"" << a.question << "\" " << a.why;
}

std::vector<std::string> fault_points(const HsRun& r) {
  // "hotsplice: fault point N NAME"
  std::vector<std::string> names;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("hotsplice: fault point ")) names.push_back(line.substr(line.rfind(' ') + 1));
  return names;
}

int count_points(const HsRun& r) { return static_cast<int>(fault_points(r).size()); }

std::vector<std::string> with_pid(std::vector<std::string> args, const Target& t) {
  args.insert(args.begin() + 1, P(t));
  return args;
}

bool mapped(const Target& t, const std::string& name) {
  return t.maps().find("/memfd:hotsplice:" + name + " ") != std::string::npos;
}

void list_fault_points(const FaultOp& op, std::vector<std::string>* names) {
  Target t(op.binary);
  ASSERT_NO_FATAL_FAILURE(op.setup(t));
  HsRun r = hotsplice(with_pid(op.args, t), {"HOTSPLICE_FAULT_LIST=1"});
  ASSERT_EQ(r.code, 0) << r.err;
  *names = fault_points(r);
  ASSERT_FALSE(names->empty()) << r.err;
}

void at_each_fault_point(const FaultOp& op, const std::vector<std::string>& names, const std::string& env,
                         const FaultCheck& check) {
  for (size_t k = 1; k <= names.size(); k++) {
    SCOPED_TRACE(fmt::format("{}={} (fault point {})", env, k, names[k - 1]));
    Target t(op.binary);
    ASSERT_NO_FATAL_FAILURE(op.setup(t));
    HsRun r = hotsplice(with_pid(op.args, t), {fmt::format("{}={}", env, k)});
    ASSERT_NO_FATAL_FAILURE(check(t, r, names[k - 1]));
  }
}

}  // namespace hs::e2e
