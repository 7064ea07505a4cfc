// Issue 9, defect 1 (fork): each process has its own state. A pre-forking
// server (targets/prefork.c) is patched in its master, forks workers that
// inherit the patched code, and then one worker reverts, another stacks a
// second payload, a third execs; every process's `list` is checked against
// what that process answers, and the master's code and state must not move
// when a worker's do (and the other way round).
#include <fstream>
#include <regex>
#include <sstream>

#include "harness.h"

namespace hs::e2e {
namespace {

using nlohmann::json;

json list_of(pid_t pid) {
  HsRun r = hotsplice({"list", std::to_string(pid), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  return json::parse(r.out.empty() ? "{}" : r.out, nullptr, false);
}

std::string maps_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The mappings hotsplice made in a process ("/memfd:hotsplice..." lines).
std::vector<std::string> hotsplice_mappings(pid_t pid) {
  std::vector<std::string> out;
  std::istringstream lines(maps_of(pid));
  for (std::string l; std::getline(lines, l);)
    if (l.find("/memfd:hotsplice") != std::string::npos) out.push_back(l);
  return out;
}

class PreforkServer {
 public:
  PreforkServer() : master(target_bin("prefork")) {}

  // Forks a worker; returns its PID.
  pid_t fork_worker() {
    std::string a = master.ask("fork");
    std::smatch m;
    std::regex re("worker (\\d+) pid=(\\d+)");
    EXPECT_TRUE(std::regex_match(a, m, re)) << a;
    if (m.empty()) return -1;
    pids.push_back(static_cast<pid_t>(std::stol(m[2])));
    return pids.back();
  }

  // What worker i's answer() returns (computed in that worker).
  std::string ask(size_t i) {
    std::string a = master.ask("ask " + std::to_string(i));
    std::string want = "worker " + std::to_string(i) + " pid=" + std::to_string(pids[i]) + " answer=";
    EXPECT_EQ(a.rfind(want, 0), 0u) << a;
    return a.substr(std::min(a.size(), want.size()));
  }

  // What the master's answer() returns.
  std::string call() {
    std::string a = master.ask("call");
    return a.rfind("answer=", 0) == 0 ? a.substr(7) : a;
  }

  Target master;
  std::vector<pid_t> pids;
};

// The payload names in `list`, with their states: {"fix:APPLIED", ...}.
std::vector<std::string> states(pid_t pid) {
  std::vector<std::string> v;
  json l = list_of(pid);
  for (const auto& p : l["payloads"]) v.push_back(p["name"].get<std::string>() + ":" + p["state"].get<std::string>());
  return v;
}

using V = std::vector<std::string>;

TEST(Fork, PreforkingServerEachProcessHasItsOwnState) {
  const std::string v2 = build("answer_v2.c", target_bin("prefork"), "fork_answer_v2.lp");
  const std::string v3 = build("answer_v3.c", target_bin("prefork"), "fork_answer_v3.lp", v2);
  PreforkServer s;
  const pid_t master = s.master.pid();
  const std::string M = std::to_string(master);
  OK({"load", M, v2, "--name", "fix"});
  ASSERT_EQ(s.call(), "2");

  // Workers forked after the patch run the patched code, and say so.
  for (int i = 0; i < 3; i++) s.fork_worker();
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(s.ask(i), "2") << "worker " << i;
    EXPECT_EQ(states(s.pids[i]), V{"fix:APPLIED"}) << "worker " << i;
  }
  // Its registry is the worker's own copy (a private mapping).
  int registries = 0;
  for (const auto& l : hotsplice_mappings(s.pids[0])) {
    if (l.find("hotsplice-registry") == std::string::npos) continue;
    registries++;
    EXPECT_NE(l.find(" rw-p "), std::string::npos) << l;
  }
  EXPECT_EQ(registries, 1);

  const std::string A = std::to_string(s.pids[0]), B = std::to_string(s.pids[1]), C = std::to_string(s.pids[2]);

  // Worker A reverts: A alone runs the old code and says CHECKED.
  OK({"revert", A, "fix"});
  EXPECT_EQ(s.ask(0), "1");
  EXPECT_EQ(states(s.pids[0]), V{"fix:CHECKED"});
  EXPECT_EQ(s.call(), "2");
  EXPECT_EQ(states(master), V{"fix:APPLIED"});
  EXPECT_EQ(s.ask(1), "2");
  EXPECT_EQ(s.ask(2), "2");

  // Worker B stacks a second payload: B alone runs it.
  OK({"load", B, v3, "--name", "fix3"});
  EXPECT_EQ(s.ask(1), "3");
  EXPECT_EQ(states(s.pids[1]), (V{"fix:APPLIED", "fix3:APPLIED"}));
  EXPECT_EQ(states(master), V{"fix:APPLIED"});
  EXPECT_EQ(s.call(), "2");
  EXPECT_EQ(s.ask(0), "1");
  EXPECT_EQ(s.ask(2), "2");

  // Worker A unloads: its mapping goes, the master's stays and keeps running.
  OK({"unload", A, "fix"});
  EXPECT_EQ(states(s.pids[0]), V{});
  for (const auto& l : hotsplice_mappings(s.pids[0])) {
    EXPECT_EQ(l.find("hotsplice:fix"), std::string::npos) << l;
  }
  EXPECT_EQ(s.ask(0), "1");
  EXPECT_EQ(s.call(), "2");
  EXPECT_EQ(states(master), V{"fix:APPLIED"});

  // The master reverts and unloads: the workers keep their own patched code.
  OK({"revert", M, "fix"});
  EXPECT_EQ(s.call(), "1");
  OK({"unload", M, "fix"});
  EXPECT_EQ(states(master), V{});
  EXPECT_EQ(s.call(), "1");
  EXPECT_EQ(s.ask(1), "3");
  EXPECT_EQ(s.ask(2), "2");
  EXPECT_EQ(states(s.pids[1]), (V{"fix:APPLIED", "fix3:APPLIED"}));
  EXPECT_EQ(states(s.pids[2]), V{"fix:APPLIED"});

  // A worker forked now inherits the master's state: nothing.
  s.fork_worker();
  EXPECT_EQ(s.ask(3), "1");
  EXPECT_EQ(states(s.pids[3]), V{});

  // Worker C, still patched, reverts and unloads on its own.
  OK({"revert", C, "fix"});
  EXPECT_EQ(s.ask(2), "1");
  OK({"unload", C, "fix"});
  EXPECT_EQ(s.ask(2), "1");
  EXPECT_EQ(s.ask(1), "3");
}

TEST(Fork, ExecLeavesNothingStale) {
  const std::string v2 = build("answer_v2.c", target_bin("prefork"), "fork_exec_v2.lp");
  PreforkServer s;
  OK({"load", P(s.master), v2, "--name", "fix"});
  pid_t w = s.fork_worker();
  ASSERT_EQ(s.ask(0), "2");
  ASSERT_FALSE(hotsplice_mappings(w).empty());

  EXPECT_EQ(s.master.ask("exec 0"), "worker 0 pid=" + std::to_string(w) + " exec");
  EXPECT_EQ(s.ask(0), "1");  // the same PID, a fresh image
  EXPECT_EQ(states(w), V{});
  EXPECT_EQ(hotsplice_mappings(w), V{});
  // It can be patched again from scratch, and the master is unaffected.
  OK({"load", std::to_string(w), v2, "--name", "again"});
  EXPECT_EQ(s.ask(0), "2");
  EXPECT_EQ(states(w), V{"again:APPLIED"});
  EXPECT_EQ(states(s.master.pid()), V{"fix:APPLIED"});
  EXPECT_EQ(s.call(), "2");
}

}  // namespace
}  // namespace hs::e2e
