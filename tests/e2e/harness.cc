#include "harness.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace hs::e2e {

namespace {

std::string slurp_fd(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

std::vector<char*> cstrs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string HsRun::err_line() const { return err.substr(0, err.find('\n')); }

HsRun hotsplice(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv{HS_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  char out_tmpl[] = "/tmp/hs-out-XXXXXX", err_tmpl[] = "/tmp/hs-err-XXXXXX";
  int out = mkstemp(out_tmpl), err = mkstemp(err_tmpl);
  unlink(out_tmpl);
  unlink(err_tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (const auto& e : env) {
      // Not for the tool: run it as that (unprivileged) user.
      if (e.rfind("HOTSPLICE_TEST_SETUID=", 0) == 0) {
        uid_t id = static_cast<uid_t>(std::stoul(e.substr(e.find('=') + 1)));
        if (setgroups(0, nullptr) != 0 || setgid(id) != 0 || setuid(id) != 0) _exit(126);
        continue;
      }
      putenv(strdup(e.c_str()));
    }
    auto a = cstrs(argv);
    execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  HsRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  lseek(out, 0, SEEK_SET);
  lseek(err, 0, SEEK_SET);
  r.out = slurp_fd(out);
  r.err = slurp_fd(err);
  close(out);
  close(err);
  return r;
}

std::string target_bin(const std::string& name) { return std::string(HS_TARGET_DIR) + "/" + name; }
std::string patch_src(const std::string& name) { return std::string(HS_PATCH_DIR) + "/" + name; }
std::string work_file(const std::string& name) {
  mkdir(HS_WORK_DIR, 0755);
  return std::string(HS_WORK_DIR) + "/" + name;
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

Target::Target(const std::string& binary, const std::vector<std::string>& args, const std::vector<std::string>& env) {
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) || pipe2(from_child, O_CLOEXEC)) throw std::runtime_error("pipe");
  pid_ = fork();
  if (pid_ == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    std::vector<std::string> argv{binary};
    argv.insert(argv.end(), args.begin(), args.end());
    for (const auto& e : env) putenv(strdup(e.c_str()));
    auto a = cstrs(argv);
    execv(a[0], a.data());
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  in_ = to_child[1];
  out_ = from_child[0];
  std::string ready = read_line();
  if (ready.rfind("ready", 0) != 0) ADD_FAILURE() << binary << " did not say ready: '" << ready << "'";
}

Target::~Target() {
  kill_now();
  if (in_ >= 0) close(in_);
  if (out_ >= 0) close(out_);
}

void Target::kill_now() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -pid_;  // keep the number for messages, mark dead
  }
}

bool Target::alive() const {
  if (pid_ <= 0) return false;
  int status;
  return waitpid(pid_, &status, WNOHANG) == 0;
}

std::string Target::read_line(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char b[4096];
    ssize_t n = read(out_, b, sizeof b);
    if (n <= 0) return "";
    buf_.append(b, static_cast<size_t>(n));
  }
}

std::string Target::ask(const std::string& line, int timeout_ms) {
  std::string l = line + "\n";
  if (write(in_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) return "";
  return read_line(timeout_ms);
}

std::string Target::maps() const {
  std::ifstream f("/proc/" + std::to_string(pid_ > 0 ? pid_ : -pid_) + "/maps");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void ok(const std::vector<std::string>& args) {
  HsRun r = hotsplice(args);
  ASSERT_EQ(r.code, 0) << "hotsplice " << testing::PrintToString(args) << "\nstderr: " << r.err;
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

int count_points(const HsRun& r) {
  int n = 0;
  for (size_t at = 0; (at = r.err.find("hotsplice: fault point ", at)) != std::string::npos; at++) n++;
  return n;
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    usleep(1000);
  }
  return cond();
}

}  // namespace hs::e2e
