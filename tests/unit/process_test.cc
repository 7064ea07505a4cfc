// Tests of the process layer against real processes: a small C helper
// program (tests/unit/helpers/process_child.c) runs in one of several modes, talks to the test over its stdin/stdout pipes, and the test drives
// it with Process, ThreadGroup and RemoteSyscalls.
//
// Synchronisation is by pipes and by polling /proc for a condition ("thread
// blocked in read"), never by a fixed sleep alone. A watchdog alarm turns a
// hang into a failure.
#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "process/objects.h"
#include "support/helper_program.h"

namespace hs {
namespace {

using test::task_state;

// The helper in one of its modes, without waiting for it.
std::unique_ptr<Child> spawn(std::vector<std::string> args) {
  args.insert(args.begin(), helper());
  return std::make_unique<Child>(args);
}

// A helper (c), its process opened (p) and seized (g).
struct Traced {
  std::unique_ptr<Child> c;
  std::optional<Process> p;
  std::optional<ThreadGroup> g;
};

std::unique_ptr<Child> start(std::vector<std::string> args, std::string* ready);

// Starts the helper with `args` and opens and seizes it.
void attach(Traced& t, std::vector<std::string> args) {
  t.c = start(std::move(args), nullptr);
  auto opened = Process::open(t.c->pid());
  ASSERT_OK(opened);
  t.p.emplace(std::move(*opened));
  auto seized = ThreadGroup::seize(*t.p);
  ASSERT_OK(seized);
  t.g.emplace(std::move(*seized));
}

// Started, past its "ready" line (returned in *ready).
std::unique_ptr<Child> start(std::vector<std::string> args, std::string* ready = nullptr) {
  args.insert(args.begin(), helper());
  auto c = Child::start(args);
  if (ready) *ready = c->ready();
  return c;
}

std::set<pid_t> proc_tids(pid_t pid) {
  std::set<pid_t> out;
  auto p = Process::open(pid);
  if (!p) return out;
  auto t = p->thread_ids();
  if (t) out.insert(t->begin(), t->end());
  return out;
}

// Borrows thread t of the traced helper for remote system calls, runs `body`
// with them, then finishes them.
void with_remote_syscalls(Traced& traced, TracedThread& t, const std::function<void(RemoteSyscalls&)>& body) {
  auto rs = RemoteSyscalls::create(*traced.g, t, *traced.p);
  ASSERT_OK(rs);
  ASSERT_NO_FATAL_FAILURE(body(*rs));
  ASSERT_OK(rs->finish());
}

// Resumes and detaches from the traced helper, then checks that it still
// answers and has seen no SIGUSR1.
void release_and_expect_healthy(Traced& traced) {
  ASSERT_OK(traced.g->resume_all());
  ASSERT_OK(traced.g->detach());
  traced.c->send("count\n");
  EXPECT_EQ(traced.c->line(), "count 0");
}

class ProcessTest : public test::ChildProcessTest {
 protected:
  void SetUp() override {
    ChildProcessTest::SetUp();
    ASSERT_FALSE(helper().empty());
  }
};


// ---------------------------------------------------------------------------
// Process

TEST_F(ProcessTest, OpenNonExistentPid) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);  // now it is free
  auto p = Process::open(pid);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind(), ErrorKind::NoProcess);
  EXPECT_EQ(p.error().message(), fmt::format("no process with PID {}", pid));

  auto neg = Process::open(-5);
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().message(), "no process with PID -5");
}

TEST_F(ProcessTest, OpenZombie) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(3);
  siginfo_t si{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOWAIT), 0);  // exited, not reaped
  auto p = Process::open(pid);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(p.error().message(), fmt::format("process {} has exited", pid));
  ::waitpid(pid, nullptr, 0);
}

TEST_F(ProcessTest, OpenThreadIdIsNotAProcess) {
  auto c = start({"threads", "1"});
  auto tids = proc_tids(c->pid());
  ASSERT_EQ(tids.size(), 2u);
  pid_t other = *tids.rbegin() == c->pid() ? *tids.begin() : *tids.rbegin();
  auto p = Process::open(other);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind(), ErrorKind::NoProcess);
  EXPECT_EQ(p.error().message(),
            fmt::format("no process with PID {} ({} is a thread of process {})", other, other, c->pid()));
}

TEST_F(ProcessTest, OpenWithoutPermission) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to another user";
  auto c = start({"threads", "0"});
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t k = ::fork();
  if (k == 0) {
    ::close(fds[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto p = Process::open(c->pid());
    std::string msg = p ? "opened" : fmt::format("{}|{}", kind_name(p.error().kind()), p.error().message());
    if (::write(fds[1], msg.data(), msg.size()) < 0) ::_exit(11);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int st = 0;
  ASSERT_EQ(::waitpid(k, &st, 0), k);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_EQ(msg, fmt::format("permission|not permitted to access PID {}: Permission denied", c->pid()));
}

TEST_F(ProcessTest, StatusAndThreads) {
  auto c = start({"threads", "3"});
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto st = p->status();
  ASSERT_OK(st);
  EXPECT_EQ(st->tracer_pid, 0);
  EXPECT_EQ(st->tgid, c->pid());
  EXPECT_EQ(st->threads, 4);
  EXPECT_EQ(st->name, "process_child");
  auto tids = p->thread_ids();
  ASSERT_OK(tids);
  EXPECT_EQ(tids->size(), 4u);
  EXPECT_EQ(tids->front(), c->pid());
  auto exe = p->exe_path();
  ASSERT_OK(exe);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(helper().c_str(), real), nullptr);
  EXPECT_EQ(*exe, real);
  EXPECT_TRUE(p->alive());
}

TEST_F(ProcessTest, MapsParsing) {
  // Mappings of our own: a file whose name has spaces, and a deleted file.
  char dir_tmpl[] = "/tmp/hs proc test XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  std::string dir = dir_tmpl;
  std::string spaced = dir + "/lib with  spaces.so";
  std::string deleted = dir + "/soon gone";
  for (const auto& f : {spaced, deleted}) {
    int fd = ::open(f.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 3 * 4096), 0);
    ::close(fd);
  }
  int fd1 = ::open(spaced.c_str(), O_RDONLY);
  void* m1 = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd1, 4096);
  ASSERT_NE(m1, MAP_FAILED);
  int fd2 = ::open(deleted.c_str(), O_RDWR);
  void* m2 = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
  ASSERT_NE(m2, MAP_FAILED);
  struct stat sb1, sb2;
  ::fstat(fd1, &sb1);
  ::fstat(fd2, &sb2);
  ::unlink(deleted.c_str());

  auto p = Process::open(::getpid());
  ASSERT_OK(p);
  auto maps = p->maps();
  ASSERT_OK(maps);
  const MapEntry* e1 = nullptr;
  const MapEntry* e2 = nullptr;
  bool stack = false;
  for (const auto& m : *maps) {
    if (m.range.begin.value() == reinterpret_cast<u64>(m1)) e1 = &m;
    if (m.range.begin.value() == reinterpret_cast<u64>(m2)) e2 = &m;
    if (m.path == "[stack]") stack = true;
  }
  ASSERT_TRUE(e1 && e2);
  EXPECT_EQ(e1->path, spaced);
  EXPECT_EQ(e1->prot, PROT_READ);
  EXPECT_FALSE(e1->shared);
  EXPECT_EQ(e1->offset, 4096u);
  EXPECT_EQ(e1->inode, sb1.st_ino);
  EXPECT_EQ(e1->range.size(), 4096u);
  EXPECT_EQ(e2->path, deleted + " (deleted)");
  EXPECT_EQ(e2->prot, PROT_READ | PROT_WRITE);
  EXPECT_TRUE(e2->shared);
  EXPECT_EQ(e2->inode, sb2.st_ino);
  EXPECT_TRUE(stack);

  ::munmap(m1, 4096);
  ::munmap(m2, 8192);
  ::close(fd1);
  ::close(fd2);
  ::unlink(spaced.c_str());
  ::rmdir(dir.c_str());
}

// A global of the forked child: at the same address in both processes.
char g_shared_buf[64] = "initial contents";

TEST_F(ProcessTest, ReadWriteMemoryOfChild) {
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(from_child), 0);
  // A read-only page, to check that writes work there too (as a debugger's).
  void* ro = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(ro, MAP_FAILED);
  pid_t pid = ::fork();
  if (pid == 0) {
    char c;
    if (::read(to_child[0], &c, 1) != 1) ::_exit(1);
    // Report what is in the buffer and the read-only page now.
    std::string out = std::string(g_shared_buf) + "|" + std::string(static_cast<const char*>(ro), 5);
    if (::write(from_child[1], out.data(), out.size()) < 0) ::_exit(1);
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  auto p = Process::open(pid);
  ASSERT_OK(p);
  auto got = p->read(RemoteAddr(reinterpret_cast<u64>(g_shared_buf)), 16);
  ASSERT_OK(got);
  EXPECT_EQ(std::string(got->begin(), got->end()), "initial contents");
  std::string msg = "written by test";
  ASSERT_OK(p->write(RemoteAddr(reinterpret_cast<u64>(g_shared_buf)),
                     ByteView(reinterpret_cast<const u8*>(msg.c_str()), msg.size() + 1)));
  ASSERT_OK(p->write(RemoteAddr(reinterpret_cast<u64>(ro)), ByteView(reinterpret_cast<const u8*>("rdonl"), 5)));
  auto v = p->read_value<u32>(RemoteAddr(reinterpret_cast<u64>(g_shared_buf)));
  ASSERT_OK(v);
  EXPECT_EQ(*v, load_le<u32>(reinterpret_cast<const u8*>("writ")));

  // An unmapped address: an error naming the address and the PID.
  auto bad = p->read(RemoteAddr(8), 4);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind(), ErrorKind::BadTarget);
  EXPECT_EQ(bad.error().message(), fmt::format("cannot read 0x4 bytes at 0x8 in PID {}: Input/output error", pid));

  ASSERT_EQ(::write(to_child[1], "x", 1), 1);
  char buf[128] = {};
  ssize_t n = 0, r;
  while ((r = ::read(from_child[0], buf + n, sizeof buf - 1 - static_cast<size_t>(n))) > 0) n += r;
  EXPECT_EQ(std::string(buf), "written by test|rdonl");
  int st;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);

  // Dead: TargetGone.
  EXPECT_FALSE(p->alive());
  auto after = p->read(RemoteAddr(reinterpret_cast<u64>(g_shared_buf)), 4);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(after.error().message(), fmt::format("process {} has exited", pid));
  auto w = p->write(RemoteAddr(reinterpret_cast<u64>(g_shared_buf)), ByteView(reinterpret_cast<const u8*>("x"), 1));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().kind(), ErrorKind::TargetGone);
  ::close(to_child[1]);
  ::close(from_child[0]);
  ::munmap(ro, 4096);
}

// ---------------------------------------------------------------------------
// ThreadGroup

void expect_all_stopped(ThreadGroup& g, pid_t pid) {
  std::set<pid_t> ours;
  for (const auto& t : g.threads()) {
    EXPECT_TRUE(t.stopped) << "thread " << t.tid;
    EXPECT_NE(t.regs.rip, 0u) << "thread " << t.tid;
    EXPECT_EQ(task_state(pid, t.tid), 't') << "thread " << t.tid;
    ours.insert(t.tid);
  }
  EXPECT_EQ(ours, proc_tids(pid)) << "every thread of the process is stopped by us";
}

TEST_F(ProcessTest, SeizeStopResumeEightThreads) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "8"}));
  auto& [c, p, g] = traced;
  EXPECT_EQ(g->threads().size(), 9u);
  EXPECT_EQ(g->threads().front().tid, c->pid());  // the leader first
  auto st = p->status();
  ASSERT_OK(st);
  EXPECT_EQ(st->tracer_pid, ::getpid());

  std::chrono::nanoseconds worst{0};
  for (int round = 0; round < 20; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(g->stop_all());
    worst = std::max(worst, std::chrono::steady_clock::now() - t0);
    ASSERT_EQ(g->threads().size(), 9u);
    expect_all_stopped(*g, c->pid());
    for (const auto& t : g->threads()) EXPECT_EQ(t.pending_signal, 0);
    ASSERT_OK(g->resume_all());
    for (const auto& t : g->threads()) EXPECT_FALSE(t.stopped);
  }
  std::printf("[          ] worst stop_all window with 9 threads: %.1f us\n", worst.count() / 1000.0);
  // Running again: no thread stays in a tracing stop.
  EXPECT_TRUE(eventually([&] {
    for (pid_t tid : proc_tids(c->pid()))
      if (task_state(c->pid(), tid) == 't') return false;
    return true;
  }));
  ASSERT_OK(g->detach());
  auto st2 = p->status();
  ASSERT_OK(st2);
  EXPECT_EQ(st2->tracer_pid, 0);
  c->send("q\n");
  int status = c->wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// stop_all(between): the threads that were blocked stop first; while
// `between` runs the spinning thread is still running (its counter moves),
// then it is stopped too, marked late, and resumed first. A `between` that
// says no ends the stop with the spinner never stopped.
TEST_F(ProcessTest, StopInWavesHoldsTheRunningThreadLast) {
  std::string ready;
  auto c = start({"spinner", "4"}, &ready);
  int spin = 0;
  void* counter = nullptr;
  ASSERT_EQ(std::sscanf(ready.c_str(), "ready %d %p", &spin, &counter), 2) << ready;
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  ASSERT_EQ(g->threads().size(), 6u);
  const RemoteAddr count_at(reinterpret_cast<u64>(counter));
  // The waves follow what /proc says at the stop: wait until the workers
  // (and the main thread, in read()) are asleep again after each resume.
  auto settled = [&] {
    return eventually([&] {
      for (pid_t tid : proc_tids(c->pid()))
        if (tid != spin && task_state(c->pid(), tid) != 'S') return false;
      return true;
    });
  };
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(settled());
    int calls = 0;
    auto r = g->stop_all([&]() -> Result<bool> {
      calls++;
      for (const auto& t : g->threads()) EXPECT_EQ(t.stopped, t.tid != spin) << "thread " << t.tid;
      // (It may wait for a CPU on a busy machine: up to 20 s.)
      auto a = p->read_value<u64>(count_at);
      EXPECT_TRUE(a.has_value());
      EXPECT_TRUE(eventually([&] {
        auto b = p->read_value<u64>(count_at);
        return a && b && *b > *a;
      })) << "the spinner must run while the first wave is held";
      return true;
    });
    ASSERT_OK(r);
    EXPECT_TRUE(*r);
    EXPECT_EQ(calls, 1);
    expect_all_stopped(*g, c->pid());
    for (const auto& t : g->threads()) EXPECT_EQ(t.late, t.tid == spin) << "thread " << t.tid;
    auto a = p->read_value<u64>(count_at);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(*p->read_value<u64>(count_at), *a) << "every thread is stopped now";
    ASSERT_OK(g->resume_all());
    for (const auto& t : g->threads()) EXPECT_FALSE(t.stopped || t.late);
  }
  ASSERT_TRUE(settled());
  auto r = g->stop_all([&]() -> Result<bool> { return false; });
  ASSERT_OK(r);
  EXPECT_FALSE(*r);
  for (const auto& t : g->threads()) EXPECT_EQ(t.stopped, t.tid != spin) << "thread " << t.tid;
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  c->send("q\n");
  int status = c->wait_exit();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(ProcessTest, ThreadChurnWhileAttachedAndStopped) {
  auto c = start({"churn"});
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  for (int attach = 0; attach < 5; ++attach) {
    auto g = ThreadGroup::seize(*p);
    ASSERT_OK(g);
    for (int round = 0; round < 10; ++round) {
      ASSERT_OK(g->stop_all());
      expect_all_stopped(*g, c->pid());
      ASSERT_OK(g->resume_all());
      ASSERT_OK(g->poll_events());
    }
    ASSERT_OK(g->detach());
  }
  // Still healthy, and no longer traced.
  c->send("count\n");
  EXPECT_EQ(c->line(), "count 0");
  for (pid_t tid : proc_tids(c->pid())) {
    auto ts = Process::task_status(c->pid(), tid);
    if (ts) {
      EXPECT_EQ(ts->tracer_pid, 0) << "thread " << tid;
    }
  }
}

TEST_F(ProcessTest, BlockedPipeReadCompletesAfterRemoteSyscalls) {
  auto c = start({"pipe"});
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }));
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  ASSERT_OK(g->stop_all());
  const TracedThread& leader = g->threads().front();
  // Interrupted inside read(): the kernel wants to restart it.
  EXPECT_EQ(static_cast<long>(leader.regs.orig_rax), SYS_read);
  EXPECT_EQ(static_cast<long>(leader.regs.rax), -512);  // -ERESTARTSYS
  user_regs_struct before = leader.regs;

  auto t = g->stop_one();
  ASSERT_OK(t);
  EXPECT_EQ((*t)->tid, c->pid());
  {
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_OK(rs);
    auto a = rs->mmap(RemoteAddr(), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_OK(a);
    ASSERT_OK(rs->munmap(*a, 4096));
    auto pid_in_target = rs->syscall(SYS_getpid);
    ASSERT_OK(pid_in_target);
    EXPECT_EQ(*pid_in_target, c->pid());
    ASSERT_OK(rs->finish());
  }
  ASSERT_NO_FATAL_FAILURE(test::expect_regs_redo_the_read(*g, c->pid(), before));

  ASSERT_OK(g->resume_all());
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }))
      << "the read is restarted and blocks again";
  ASSERT_OK(g->detach());
  c->send("hello\n");
  EXPECT_EQ(c->line(), "read 6 [hello] 0");
}

// hotsplice, stood in for by a child process, killed while it holds c: it
// opens and seizes c, borrows a thread for remote system calls, runs
// `prepare` on them, tells the test it got that far, then runs `die`, which
// must end it by SIGKILL. The child's exit status says which step failed
// (1 open, 2 seize, 3 stop, 4 create, 5 prepare, 6 the pipe, 7 `die`
// returned). Returns once the child is dead.
void run_tool_killed(const Child& c, const std::function<bool(RemoteSyscalls&)>& prepare,
                     const std::function<void(RemoteSyscalls&)>& die) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t tool = ::fork();
  if (tool == 0) {
    auto p = Process::open(c.pid());
    if (!p) ::_exit(1);
    auto g = ThreadGroup::seize(*p);
    if (!g) ::_exit(2);
    auto t = g->stop_one();
    if (!t) ::_exit(3);
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    if (!rs) ::_exit(4);
    if (!prepare(*rs)) ::_exit(5);
    if (::write(fds[1], "1", 1) != 1) ::_exit(6);
    die(*rs);
    ::_exit(7);  // not reached
  }
  ::close(fds[1]);
  char x = 0;
  EXPECT_EQ(::read(fds[0], &x, 1), 1) << "the tool could not get ready to be killed";
  ::close(fds[0]);
  int st = 0;
  ASSERT_EQ(::waitpid(tool, &st, 0), tool);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
}

// hotsplice killed between two remote system calls: the kernel detaches the
// borrowed thread, which must carry on with its own registers.
TEST_F(ProcessTest, ToolKilledBetweenRemoteSyscallsLeavesTargetHealthy) {
  auto c = start({"pipe"});
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }));
  ASSERT_NO_FATAL_FAILURE(run_tool_killed(
      *c,
      [](RemoteSyscalls& rs) {
        return rs.mmap(RemoteAddr(), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).has_value();
      },
      [](RemoteSyscalls&) { ::raise(SIGKILL); }));
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }))
      << "the read is restarted and blocks again";
  c->send("hello\n");
  EXPECT_EQ(c->line(), "read 6 [hello] 0");
}

// hotsplice killed *during* a remote system call, at the two worst moments:
// our registers are set but the thread has not run yet (phase 0), and the
// thread is at the syscall-entry-stop (phase 1). The kernel detaches it; it
// runs the trampoline's `syscall`, then the recovery tail puts its own
// registers back, so its read() restarts and completes normally.
std::vector<pid_t> task_ids(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid)))
    out.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  return out;
}

int g_kill_phase = -1;
long g_kill_nr = SYS_getpid;

void kill_tool_at(long nr, int phase) {
  if (nr == g_kill_nr && phase == g_kill_phase) ::raise(SIGKILL);
}

int count_trampolines(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/maps", pid));
  int n = 0;
  for (std::string l; std::getline(f, l);)
    if (l.find("/memfd:hotsplice-trampoline") != std::string::npos) n++;
  return n;
}

class ToolKilledDuringRemoteSyscall : public ProcessTest, public ::testing::WithParamInterface<int> {};

TEST_P(ToolKilledDuringRemoteSyscall, TrampolineRecoversTheThread) {
  auto c = start({"pipe"});
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }));
  const int phase = GetParam();
  ASSERT_NO_FATAL_FAILURE(run_tool_killed(
      *c, [](RemoteSyscalls& rs) { return !rs.trampoline().is_null(); },
      [phase](RemoteSyscalls& rs) {
        g_kill_phase = phase;
        RemoteSyscalls::test_kill_point = kill_tool_at;
        (void)rs.syscall(SYS_getpid);
      }));
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }))
      << "the read is restarted and blocks again";
  EXPECT_EQ(count_trampolines(c->pid()), 1);

  // A later invocation finds the trampoline again instead of making another.
  {
    auto p = Process::open(c->pid());
    ASSERT_OK(p);
    auto g = ThreadGroup::seize(*p);
    ASSERT_OK(g);
    auto t = g->stop_one();
    ASSERT_OK(t);
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_OK(rs);
    EXPECT_FALSE(rs->trampoline().is_null());
    auto pid_in_target = rs->syscall(SYS_getpid);
    ASSERT_OK(pid_in_target);
    EXPECT_EQ(*pid_in_target, c->pid());
    ASSERT_OK(rs->finish());
    ASSERT_OK(g->detach());
  }
  EXPECT_EQ(count_trampolines(c->pid()), 1);

  c->send("hello\n");
  EXPECT_EQ(c->line(), "read 6 [hello] 0");
  EXPECT_EQ(c->wait_exit(), 0);
}

INSTANTIATE_TEST_SUITE_P(Phases, ToolKilledDuringRemoteSyscall, ::testing::Values(0, 1),
                         [](const auto& p) { return std::string(p.param == 0 ? "BeforeEntry" : "AtEntryStop"); });

// A thread a killed hotsplice left blocked *inside* the trampoline (here in
// a pause() it was made to run there) is not the thread the next invocation
// borrows: that invocation gives it its own registers back before it writes
// the data area, and the thread goes back to what it was doing.
TEST_F(ProcessTest, OrphanInTheTrampolineIsGivenItsStateBackByTheNextInvocation) {
  auto c = start({"threads", "3"});
  pid_t worker = 0;  // the one blocked in pthread_cond_wait
  ASSERT_TRUE(eventually([&] {
    for (pid_t tid : task_ids(c->pid()))
      if (tid != c->pid() && task_syscall(c->pid(), tid) == SYS_futex) worker = tid;
    return worker != 0;
  }));
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  user_regs_struct before{};
  {
    auto g = ThreadGroup::seize(*p);
    ASSERT_OK(g);
    ASSERT_OK(g->stop_all());
    before = g->find(worker)->regs;
    normalise_syscall_restart(before);
    ASSERT_OK(g->detach());
  }
  const pid_t tool = ::fork();
  if (tool == 0) {
    auto g = ThreadGroup::seize(*p);
    if (!g || !g->stop_all()) ::_exit(2);
    TracedThread* t = g->find(worker);
    if (!t) ::_exit(3);
    auto rs = RemoteSyscalls::create(*g, *t, *p);
    if (!rs || rs->trampoline().is_null()) ::_exit(4);
    g_kill_phase = 1;
    g_kill_nr = SYS_pause;
    RemoteSyscalls::test_kill_point = kill_tool_at;
    (void)rs->syscall(SYS_pause);
    ::_exit(7);  // not reached
  }
  int st = 0;
  ASSERT_EQ(::waitpid(tool, &st, 0), tool);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), worker) == SYS_pause; })) << "left in the trampoline";

  {
    auto g = ThreadGroup::seize(*p);
    ASSERT_OK(g);
    ASSERT_OK(g->stop_all());
    auto t = g->stop_one();
    ASSERT_OK(t);
    ASSERT_NE((*t)->tid, worker);
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_OK(rs);
    TracedThread* w = g->find(worker);
    ASSERT_NE(w, nullptr);
    ASSERT_OK(g->refresh_regs(*w));
    EXPECT_EQ(w->regs.rip, before.rip);
    EXPECT_EQ(w->regs.rsp, before.rsp);
    EXPECT_EQ(w->regs.rax, before.rax);
    EXPECT_EQ(w->regs.rdi, before.rdi);
    EXPECT_EQ(w->regs.rsi, before.rsi);
    EXPECT_EQ(w->regs.rbx, before.rbx);
    EXPECT_EQ(w->regs.rbp, before.rbp);
    EXPECT_EQ(w->regs.r12, before.r12);
    auto pid_in_target = rs->syscall(SYS_getpid);
    ASSERT_OK(pid_in_target);
    ASSERT_OK(rs->finish());
    ASSERT_OK(g->resume_all());
    ASSERT_OK(g->detach());
  }
  EXPECT_TRUE(eventually([&] { return task_syscall(c->pid(), worker) == SYS_futex; }))
      << "the worker waits on its condition variable again";
  c->send("count\n");
  EXPECT_EQ(c->line(), "count 0");
}

TEST_F(ProcessTest, NanosleepSleepsItsFullTime) {
  auto c = start({"sleep", "700"});
  ASSERT_TRUE(eventually([&] {
    long s = task_syscall(c->pid(), c->pid());
    return s == SYS_clock_nanosleep || s == SYS_nanosleep;
  }));
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  {
    auto g = ThreadGroup::seize(*p);
    ASSERT_OK(g);
    ASSERT_OK(g->stop_all());
    EXPECT_EQ(static_cast<long>(g->threads().front().regs.rax), -516);  // -ERESTART_RESTARTBLOCK
    auto t = g->stop_one();
    ASSERT_OK(t);
    {
      auto rs = RemoteSyscalls::create(*g, **t, *p);
      ASSERT_OK(rs);
      for (int i = 0; i < 3; ++i) {
        auto a = rs->mmap(RemoteAddr(), 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_OK(a);
        ASSERT_OK(rs->munmap(*a, 8192));
      }
    }  // finish() by the destructor
    ASSERT_OK(g->resume_all());
  }  // detach by the destructor
  std::string l = c->line();
  int r = -1, e = -1;
  long ms = 0;
  ASSERT_EQ(std::sscanf(l.c_str(), "slept %d %d %ld", &r, &e, &ms), 3) << l;
  EXPECT_EQ(r, 0) << "nanosleep must not fail (errno " << e << ")";
  EXPECT_GE(ms, 699);
}

TEST_F(ProcessTest, RedZoneIsPreservedAcrossRemoteSyscalls) {
  std::string ready;
  auto c = start({"redzone"}, &ready);
  int tid = 0;
  unsigned long lo = 0, hi = 0;
  ASSERT_EQ(std::sscanf(ready.c_str(), "ready %d %lx %lx", &tid, &lo, &hi), 3) << ready;
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  for (int round = 0; round < 5; ++round) {
    ASSERT_OK(g->stop_all());
    TracedThread* t = g->find(tid);
    ASSERT_NE(t, nullptr);
    EXPECT_GE(t->regs.rip, lo);
    EXPECT_LT(t->regs.rip, hi);
    user_regs_struct before = t->regs;
    {
      auto rs = RemoteSyscalls::create(*g, *t, *p);
      ASSERT_OK(rs);
      auto a = rs->mmap(RemoteAddr(), 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      ASSERT_OK(a);
      ASSERT_OK(rs->mprotect(*a, 4096, PROT_READ));
      ASSERT_OK(rs->munmap(*a, 4096));
      ASSERT_OK(rs->finish());
    }
    t = g->find(tid);
    ASSERT_OK(g->refresh_regs(*t));
    // Not in a syscall: everything but orig_rax comes back exactly.
    EXPECT_EQ(t->regs.rip, before.rip);
    EXPECT_EQ(t->regs.rcx, before.rcx);
    EXPECT_EQ(t->regs.r11, before.r11);
    EXPECT_EQ(t->regs.rax, before.rax);
    EXPECT_EQ(t->regs.rdx, before.rdx);
    EXPECT_EQ(t->regs.eflags, before.eflags);
    ASSERT_OK(g->resume_all());
  }
  ASSERT_OK(g->detach());
  c->send("stop\n");
  EXPECT_EQ(c->line(), "redzone 0");
}

// After a signal was sent to a seized process and it was resumed: the
// thread that dequeues it sits in a signal-delivery-stop until we look.
bool some_thread_in_tracing_stop(pid_t pid) {
  return eventually([&] {
    for (pid_t tid : proc_tids(pid))
      if (task_state(pid, tid) == 't') return true;
    return false;
  });
}

int query_count(Child& c) {
  c.send("count\n");
  int n = -1;
  std::string l = c.line();
  std::sscanf(l.c_str(), "count %d", &n);
  return n;
}

// The helper got exactly one SIGUSR1, eventually.
void expect_one_usr1(Child& c) {
  ASSERT_TRUE(eventually([&] { return query_count(c) >= 1; }));
  EXPECT_EQ(query_count(c), 1);
}

// Sends SIGUSR1 to the stopped helper and lets it run until a thread
// dequeues it; stopped again, that thread is in a signal-delivery-stop.
void stop_with_usr1_dequeued(Traced& traced) {
  ASSERT_EQ(::kill(traced.c->pid(), SIGUSR1), 0);
  ASSERT_OK(traced.g->resume_all());
  // Some thread dequeues it and stops for us to decide: stop_all sees it.
  ASSERT_TRUE(some_thread_in_tracing_stop(traced.c->pid()));
  ASSERT_OK(traced.g->stop_all());
}

TEST_F(ProcessTest, SignalSentWhileStoppedIsDeliveredOnceAfterResume) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "2"}));
  auto& [c, p, g] = traced;
  ASSERT_OK(g->stop_all());
  ASSERT_NO_FATAL_FAILURE(stop_with_usr1_dequeued(traced));
  int with_signal = 0;
  for (const auto& t : g->threads())
    if (t.pending_signal == SIGUSR1) {
      ++with_signal;
      EXPECT_EQ(t.stop, StopKind::Signal);
    }
  EXPECT_EQ(with_signal, 1);
  expect_all_stopped(*g, c->pid());
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  ASSERT_NO_FATAL_FAILURE(expect_one_usr1(*c));
}

TEST_F(ProcessTest, SignalPendingAtDetachIsDelivered) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "3"}));
  auto& [c, p, g] = traced;
  ASSERT_OK(g->stop_all());
  ASSERT_EQ(::kill(c->pid(), SIGUSR1), 0);
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  ASSERT_NO_FATAL_FAILURE(expect_one_usr1(*c));
}

TEST_F(ProcessTest, SignalWhileSeizedAndRunningIsPassedOnByPollEvents) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "1"}));
  auto& [c, p, g] = traced;
  ASSERT_EQ(::kill(c->pid(), SIGUSR1), 0);
  // A thread stops to let us decide about the signal ...
  ASSERT_TRUE(some_thread_in_tracing_stop(c->pid()));
  // ... and poll_events() passes it on. (/proc may show the stop a moment
  // before waitpid can report it: poll until no thread is held.)
  ASSERT_TRUE(eventually([&] {
    if (!g->poll_events()) return false;
    for (pid_t tid : proc_tids(c->pid()))
      if (task_state(c->pid(), tid) == 't') return false;
    return true;
  }));
  for (const auto& t : g->threads()) EXPECT_FALSE(t.stopped);
  ASSERT_NO_FATAL_FAILURE(expect_one_usr1(*c));
  ASSERT_OK(g->detach());
}

TEST_F(ProcessTest, StopOneWhenTheOnlyThreadHasASignalToTake) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "0"}));
  auto& [c, p, g] = traced;
  ASSERT_OK(g->stop_all());
  ASSERT_NO_FATAL_FAILURE(stop_with_usr1_dequeued(traced));
  ASSERT_EQ(g->threads().size(), 1u);
  EXPECT_EQ(g->threads().front().stop, StopKind::Signal);
  auto t = g->stop_one();
  ASSERT_OK(t);
  EXPECT_EQ((*t)->stop, StopKind::Interrupt);
  EXPECT_EQ((*t)->pending_signal, 0);
  ASSERT_NO_FATAL_FAILURE(
      with_remote_syscalls(traced, **t, [](RemoteSyscalls& rs) { ASSERT_OK(rs.syscall(SYS_getpid)); }));
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  ASSERT_NO_FATAL_FAILURE(expect_one_usr1(*c));
}

TEST_F(ProcessTest, SignalArrivingDuringRemoteSyscallsIsKept) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "0"}));
  auto& [c, p, g] = traced;
  auto t = g->stop_one();
  ASSERT_OK(t);
  ASSERT_NO_FATAL_FAILURE(with_remote_syscalls(traced, **t, [&](RemoteSyscalls& rs) {
    // Queued while the thread is stopped: it shows up as a
    // signal-delivery-stop on the way into our first call.
    ASSERT_EQ(::kill(c->pid(), SIGUSR1), 0);
    for (int i = 0; i < 3; ++i) ASSERT_OK(rs.syscall(SYS_getpid));
  }));
  EXPECT_EQ(g->find(c->pid())->pending_signal, SIGUSR1);
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  ASSERT_NO_FATAL_FAILURE(expect_one_usr1(*c));
}

std::string self_comm() {
  std::string s = slurp("/proc/self/comm");
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST_F(ProcessTest, SecondSeizeWhileHeldIsRefused) {
  auto c = start({"threads", "2"});
  auto p = Process::open(c->pid());
  ASSERT_OK(p);

  // Held by a tracer that is not hotsplice (here: this test binary).
  {
    auto g1 = ThreadGroup::seize(*p);
    ASSERT_OK(g1);
    auto g2 = ThreadGroup::seize(*p);
    ASSERT_FALSE(g2);
    EXPECT_EQ(g2.error().kind(), ErrorKind::Permission);
    EXPECT_EQ(g2.error().message(),
              fmt::format("PID {} is already traced by PID {} ({})", c->pid(), ::getpid(), self_comm()));
  }

  // Held by a process named hotsplice: Busy, exit code 2.
  int ready[2], release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  pid_t tracer = ::fork();
  if (tracer == 0) {
    ::prctl(PR_SET_NAME, "hotsplice");
    ::close(ready[0]);
    ::close(release[1]);
    auto tp = Process::open(c->pid());
    if (!tp) ::_exit(1);
    auto tg = ThreadGroup::seize(*tp);
    if (!tg) ::_exit(2);
    if (::write(ready[1], "1", 1) != 1) ::_exit(3);
    char x;
    while (::read(release[0], &x, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);  // the kernel detaches
  }
  ::close(ready[1]);
  ::close(release[0]);
  char x = 0;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  auto busy = ThreadGroup::seize(*p);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind(), ErrorKind::Busy);
  EXPECT_EQ(busy.error().message(),
            fmt::format("PID {} is busy: another hotsplice (PID {}) is working on it", c->pid(), tracer));
  EXPECT_EQ(busy.error().exit_code(), 2);
  ::close(release[1]);
  int st;
  ASSERT_EQ(::waitpid(tracer, &st, 0), tracer);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ::close(ready[0]);

  // Released with its holder's death.
  auto again = ThreadGroup::seize(*p);
  ASSERT_OK(again);
  ASSERT_OK(again->stop_all());
  ASSERT_OK(again->detach());
  c->send("count\n");
  EXPECT_EQ(c->line(), "count 0");
}

TEST_F(ProcessTest, StoppedTargetIsRefused) {
  auto c = start({"threads", "2"});
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  ASSERT_EQ(::kill(c->pid(), SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) == 'T'; }));
  auto g = ThreadGroup::seize(*p);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind(), ErrorKind::State);
  EXPECT_EQ(g.error().message(), fmt::format("PID {} is stopped (state T); continue it first", c->pid()));
  // Nothing was attached.
  auto st = p->status();
  ASSERT_OK(st);
  EXPECT_EQ(st->tracer_pid, 0);
  ASSERT_EQ(::kill(c->pid(), SIGCONT), 0);
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) != 'T'; }));
  auto g2 = ThreadGroup::seize(*p);
  ASSERT_OK(g2);
}

TEST_F(ProcessTest, StoppedByJobControlWhileAttached) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "2"}));
  auto& [c, p, g] = traced;
  ASSERT_EQ(::kill(c->pid(), SIGSTOP), 0);
  ASSERT_OK(g->stop_all());
  ASSERT_OK(g->resume_all());  // passes SIGSTOP on: the group stops
  ASSERT_OK(g->stop_all());
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  // It is stopped as job control wants, and continues on SIGCONT.
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) == 'T'; }));
  ASSERT_EQ(::kill(c->pid(), SIGCONT), 0);
  c->send("count\n");
  EXPECT_EQ(c->line(), "count 0");
}

TEST_F(ProcessTest, LeaderThatExitedIsRefused) {
  auto c = start({"leaderexit"});
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) == 'Z'; }));
  auto p = Process::open(c->pid());
  ASSERT_OK(p);  // the process lives on
  EXPECT_TRUE(p->alive());
  // Its memory is still readable (through another thread's mm).
  auto maps = p->maps();
  ASSERT_OK(maps);
  ASSERT_FALSE(maps->empty());
  ASSERT_OK(p->read(maps->front().range.begin, 4));
  auto g = ThreadGroup::seize(*p);
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().kind(), ErrorKind::State);
  EXPECT_EQ(g.error().message(), fmt::format("cannot attach to PID {}: its main thread has exited (state Z)", c->pid()));
}

TEST_F(ProcessTest, LeaderExitingWhileAttached) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"leaderexit-later"}));
  auto& [c, p, g] = traced;
  ASSERT_OK(g->stop_all());
  ASSERT_EQ(g->threads().size(), 2u);
  ASSERT_OK(g->resume_all());
  ASSERT_EQ(::kill(c->pid(), SIGUSR2), 0);
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) == 'Z'; }));
  // The leader is gone, the process is not: the other thread is stopped.
  ASSERT_OK(g->stop_all());
  ASSERT_EQ(g->threads().size(), 1u);
  EXPECT_NE(g->threads().front().tid, c->pid());
  EXPECT_TRUE(g->threads().front().stopped);
  ASSERT_OK(g->resume_all());
  auto t = g->stop_one();
  ASSERT_OK(t);
  ASSERT_NO_FATAL_FAILURE(with_remote_syscalls(traced, **t, [&](RemoteSyscalls& rs) {
    auto r = rs.syscall(SYS_getpid);
    ASSERT_OK(r);
    EXPECT_EQ(*r, c->pid());
  }));
  release_and_expect_healthy(traced);
}

TEST_F(ProcessTest, RemoteMmapIsVisibleInMaps) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "3"}));
  auto& [c, p, g] = traced;
  auto t = g->stop_one();
  ASSERT_OK(t);
  EXPECT_EQ((*t)->tid, c->pid());
  // Only that thread is stopped.
  for (const auto& th : g->threads()) EXPECT_EQ(th.stopped, th.tid == c->pid());
  ASSERT_NO_FATAL_FAILURE(with_remote_syscalls(traced, **t, [&](RemoteSyscalls& rs) {
    auto a = rs.mmap(RemoteAddr(), 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_OK(a);
    auto find = [&]() -> std::optional<MapEntry> {
      auto maps = p->maps();
      if (!maps) return std::nullopt;
      for (const auto& m : *maps)
        if (m.range.contains(*a)) return m;
      return std::nullopt;
    };
    auto m = find();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->range.begin, *a);
    EXPECT_GE(m->range.end.value(), a->value() + 3 * 4096);
    EXPECT_EQ(m->prot, PROT_READ | PROT_WRITE);
    std::string data = "remote data";
    ASSERT_OK(p->write(*a, ByteView(reinterpret_cast<const u8*>(data.data()), data.size())));
    auto back = p->read(*a, data.size());
    ASSERT_OK(back);
    EXPECT_EQ(std::string(back->begin(), back->end()), data);
    ASSERT_OK(rs.mprotect(*a, 3 * 4096, PROT_READ));
    m = find();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->prot, PROT_READ);
    // Errors come back as errors naming the call.
    auto bad = rs.mprotect(RemoteAddr(a->value() + 1), 4096, PROT_READ);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(),
              fmt::format("mprotect of 0x1000 bytes at {:#x} to 0x1 in PID {} failed: Invalid argument",
                          a->value() + 1, c->pid()));
    ASSERT_OK(rs.munmap(*a, 3 * 4096));
    EXPECT_FALSE(find());
  }));
  release_and_expect_healthy(traced);
}

TEST_F(ProcessTest, TargetKilledWhileStopped) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "4"}));
  auto& [c, p, g] = traced;
  ASSERT_OK(g->stop_all());
  auto t = g->stop_one();
  ASSERT_OK(t);
  auto rs = RemoteSyscalls::create(*g, **t, *p);
  ASSERT_OK(rs);
  ASSERT_EQ(::kill(c->pid(), SIGKILL), 0);
  auto r = rs->syscall(SYS_getpid);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(r.error().message(), fmt::format("process {} exited during the operation", c->pid()));
  auto fin = rs->finish();
  EXPECT_FALSE(fin);
  auto st = g->stop_all();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::TargetGone);
  EXPECT_FALSE(g->detach());
}

TEST_F(ProcessTest, TargetKilledWhileRunning) {
  Traced traced;
  ASSERT_NO_FATAL_FAILURE(attach(traced, {"threads", "4"}));
  auto& [c, p, g] = traced;
  ASSERT_EQ(::kill(c->pid(), SIGKILL), 0);
  auto st = g->stop_all();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(st.error().message(), fmt::format("process {} exited during the operation", c->pid()));
}

// The leader cannot be stopped (it waits, killable only, for a vfork child)
// when the process is killed: stop_all must notice, not hang.
TEST_F(ProcessTest, TargetKilledWhileWaitingForAnUnstoppableLeader) {
  auto c = spawn({"vfork"});
  std::string l = c->line();
  int vchild = 0;
  ASSERT_EQ(std::sscanf(l.c_str(), "child %d", &vchild), 1) << l;
  ASSERT_TRUE(eventually([&] { return task_state(c->pid(), c->pid()) == 'D'; }));
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  // Kill it a little later, from another process; stop_all is waiting by
  // then (and if not, the outcome must be the same).
  pid_t killer = ::fork();
  if (killer == 0) {
    ::usleep(300 * 1000);
    ::kill(c->pid(), SIGKILL);
    ::kill(vchild, SIGKILL);
    ::_exit(0);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto st = g->stop_all();
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind(), ErrorKind::TargetGone);
  EXPECT_LT(took, std::chrono::seconds(20));
  ::waitpid(killer, nullptr, 0);
  ::kill(vchild, SIGKILL);
}

// ---------------------------------------------------------------------------
// Mapped objects

TEST_F(ProcessTest, MappedObjectsInLinkMapOrder) {
  std::string ready;
  auto c = start({"threads", "1"}, &ready);
  unsigned long main_addr = 0;
  ASSERT_EQ(std::sscanf(ready.c_str(), "ready %lx", &main_addr), 1);
  auto p = Process::open(c->pid());
  ASSERT_OK(p);
  auto objs = mapped_objects(*p);
  ASSERT_OK(objs);
  ASSERT_GE(objs->size(), 4u);
  auto exe = p->exe_path();
  ASSERT_OK(exe);
  EXPECT_EQ(objs->front().path, *exe);

  auto index_of = [&](std::string_view base) -> int {
    for (size_t i = 0; i < objs->size(); ++i) {
      const std::string& path = (*objs)[i].path;
      std::string_view b = std::string_view(path).substr(path.rfind('/') + 1);
      if (b.starts_with(base)) return static_cast<int>(i);
    }
    return -1;
  };
  int libm = index_of("libm.so"), libc = index_of("libc.so"), ld = index_of("ld-linux");
  ASSERT_GE(libm, 0);
  ASSERT_GE(libc, 0);
  ASSERT_GE(ld, 0);
  // DT_NEEDED order (libm before libc), ld.so last: link-map order, which
  // address order (ld.so maps libm above libc) would not give.
  EXPECT_LT(libm, libc);
  EXPECT_LT(libc, ld);

  for (const auto& o : *objs) {
    EXPECT_FALSE(o.path.empty());
    EXPECT_NE(o.path, "[vdso]");
    ASSERT_TRUE(o.elf);
    auto file_id = ElfFile::open(o.path);
    ASSERT_OK(file_id);
    auto id = file_id->build_id();
    ASSERT_OK(id);
    EXPECT_EQ(to_hex(o.build_id), to_hex(*id)) << o.path;
    // The offset-0 mapping starts at bias + first_load_vaddr.
    auto zero = std::find_if(o.maps.begin(), o.maps.end(), [](const MapEntry& m) { return m.offset == 0; });
    ASSERT_NE(zero, o.maps.end());
    EXPECT_EQ(zero->range.begin.value(), o.bias.value() + o.elf->first_load_vaddr()) << o.path;
    EXPECT_TRUE(o.span.contains(zero->range.begin));
  }

  // Symbols with the bias applied: `main` is where the helper says it is.
  const MappedObject& e = objs->front();
  auto syms = e.symbols();
  ASSERT_OK(syms);
  auto m = (*syms)->lookup_global("main");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->addr.value(), main_addr);

  auto found = find_object(*objs, e.build_id, c->pid());
  ASSERT_OK(found);
  EXPECT_EQ(*found, &objs->front());
  Bytes unknown{0x00, 0x11};
  auto missing = find_object(*objs, unknown, c->pid());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind(), ErrorKind::BadTarget);
  EXPECT_EQ(missing.error().message(), fmt::format("no object with build-id 0011 is mapped in PID {}", c->pid()));
}

TEST_F(ProcessTest, MappedObjectsSkipsDeletedNonElfAndMemfd) {
  // In our own process: a deleted ELF copy (still readable through
  // map_files), a non-ELF file, a memfd.
  char dir_tmpl[] = "/tmp/hs-objs-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  std::string dir = dir_tmpl;
  std::string copy = dir + "/copy of helper";
  ASSERT_EQ(std::system(fmt::format("cp '{}' '{}'", helper(), copy).c_str()), 0);
  std::string text = dir + "/text";
  std::ofstream(text) << std::string(8192, 'x');
  int fd1 = ::open(copy.c_str(), O_RDONLY);
  int fd2 = ::open(text.c_str(), O_RDONLY);
  int fd3 = static_cast<int>(::syscall(SYS_memfd_create, "hs-test", 0));
  ASSERT_GE(fd1, 0);
  ASSERT_GE(fd2, 0);
  ASSERT_GE(fd3, 0);
  ASSERT_EQ(::ftruncate(fd3, 4096), 0);
  void* m1 = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd1, 0);
  void* m2 = ::mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd2, 0);
  void* m3 = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd3, 0);
  ASSERT_TRUE(m1 != MAP_FAILED && m2 != MAP_FAILED && m3 != MAP_FAILED);
  ::unlink(copy.c_str());

  auto p = Process::open(::getpid());
  ASSERT_OK(p);
  auto objs = mapped_objects(*p);
  ASSERT_OK(objs);
  bool deleted_copy = false;
  for (const auto& o : *objs) {
    EXPECT_NE(o.path, text);
    EXPECT_FALSE(o.path.starts_with("/memfd:"));
    if (o.path == copy + " (deleted)") {
      deleted_copy = true;
      EXPECT_TRUE(o.file.find("/map_files/") != std::string::npos) << o.file;
      EXPECT_FALSE(o.build_id.empty());
      EXPECT_EQ(o.bias.value(), reinterpret_cast<u64>(m1));
    }
  }
  EXPECT_TRUE(deleted_copy);
  char self_exe[PATH_MAX] = {};
  ASSERT_GT(::readlink("/proc/self/exe", self_exe, sizeof self_exe - 1), 0);
  EXPECT_EQ(objs->front().path, self_exe);

  ::munmap(m1, 4096);
  ::munmap(m2, 4096);
  ::munmap(m3, 4096);
  ::close(fd1);
  ::close(fd2);
  ::close(fd3);
  ::unlink(text.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace hs
