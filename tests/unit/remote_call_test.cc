// Tests of RemoteCall against real processes: a small C helper
// (tests/unit/helpers/remote_call_child.c) prints the addresses of the functions the
// tests call in it, then answers commands on stdin/stdout. Its main thread
// is blocked in read() whenever the tests are not talking to it, so every
// call made on it also checks that the interrupted read() restarts.
//
// Synchronisation is by the pipes and by polling /proc; a watchdog alarm
// turns a hang into a failure.
#include <sys/ptrace.h>
#include <sys/uio.h>

#include <cstring>
#include <map>

#include "arch/x86_64.h"
#include "process/remote_call.h"
#include "process/trampoline.h"
#include "support/helper_program.h"

namespace hs {
namespace {

// The helper in one of its modes, past its "ready" line, which gives the
// addresses of the functions the tests call in it ("add6=0x...") and thread
// ids ("rz_tid=...").
std::unique_ptr<Child> start(const std::string& mode = "plain") { return Child::start({helper(), mode}); }

RemoteAddr fn(const Child& c, const std::string& name) { return RemoteAddr(c.ready_number(name)); }

bool blocked_in_read(const Child& c) {
  return eventually([&] { return task_syscall(c.pid(), c.pid()) == SYS_read; });
}

// The XSAVE area (or FXSAVE area) of a stopped thread.
std::vector<u8> vector_state(pid_t tid) {
  std::vector<u8> buf(64 * 1024);
  iovec iov{buf.data(), buf.size()};
  if (::ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) != 0) {
    iov = {buf.data(), sizeof(user_fpregs_struct)};
    if (::ptrace(PTRACE_GETREGSET, tid, reinterpret_cast<void*>(NT_PRFPREG), &iov) != 0) return {};
  }
  buf.resize(iov.iov_len);
  return buf;
}

void expect_same_regs(const user_regs_struct& a, const user_regs_struct& b) {
#define HS_SAME(r) EXPECT_EQ(a.r, b.r) << #r
  HS_SAME(rip);
  HS_SAME(rsp);
  HS_SAME(rbp);
  HS_SAME(rax);
  HS_SAME(rbx);
  HS_SAME(rcx);
  HS_SAME(rdx);
  HS_SAME(rsi);
  HS_SAME(rdi);
  HS_SAME(r8);
  HS_SAME(r9);
  HS_SAME(r10);
  HS_SAME(r11);
  HS_SAME(r12);
  HS_SAME(r13);
  HS_SAME(r14);
  HS_SAME(r15);
  HS_SAME(eflags);
  HS_SAME(fs_base);
  HS_SAME(gs_base);
  HS_SAME(cs);
  HS_SAME(ss);
#undef HS_SAME
}

class RemoteCallTest : public test::ChildProcessTest {
 protected:
  void SetUp() override {
    ChildProcessTest::SetUp();
    ASSERT_FALSE(helper().empty());
  }

  enum Wait { kRunning, kBlocked };
  // Starts the helper in `mode` (c), once its main thread waits in read()
  // with kBlocked, and opens (p) and seizes (g) its process (only opens it
  // when not `seized`).
  void attach(const std::string& mode, Wait wait, bool seized = true) {
    c = start(mode);
    ASSERT_TRUE(c);
    if (wait == kBlocked) {
      ASSERT_TRUE(blocked_in_read(*c));
    }
    auto opened = Process::open(c->pid());
    ASSERT_OK(opened);
    p.emplace(std::move(*opened));
    if (!seized) return;
    ASSERT_NO_FATAL_FAILURE(seize());
  }
  // Seizes p again (after a detach).
  void seize() {
    g.reset();
    auto seized = ThreadGroup::seize(*p);
    ASSERT_OK(seized);
    g.emplace(std::move(*seized));
  }

  std::unique_ptr<Child> c;
  std::optional<Process> p;
  std::optional<ThreadGroup> g;
};


// The main case: a call with six arguments on a thread blocked in read(),
// its result and side effect, and the read() going on afterwards.
TEST_F(RemoteCallTest, CallsAFunctionAndTheInterruptedReadRestarts) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked));
  auto t = g->stop_one();
  ASSERT_OK(t);
  ASSERT_EQ((*t)->tid, c->pid());
  user_regs_struct before = (*t)->regs;
  EXPECT_EQ(static_cast<long>(before.orig_rax), SYS_read);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    auto r = rc->call(fn(*c, "add6"), 1, 2, 3, 4, 5, 6);
    ASSERT_OK(r);
    EXPECT_EQ(*r, 1u + 4 + 9 + 16 + 25 + 36);
    r = rc->call(fn(*c, "add6"), -1, 0, 0, 0, 0, 10);
    ASSERT_OK(r);
    EXPECT_EQ(static_cast<i64>(*r), 59);
    r = rc->call(fn(*c, "align"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 0u) << "(rsp + 8) % 16 at the callee's entry";
    ASSERT_OK(rc->finish());
  }
  // The thread's own registers are back, normalised to "redo the read".
  ASSERT_NO_FATAL_FAILURE(test::expect_regs_redo_the_read(*g, c->pid(), before));
  EXPECT_EQ(g->find(c->pid())->pending_signal, 0);
  ASSERT_OK(g->resume_all());
  ASSERT_TRUE(blocked_in_read(*c)) << "the read is restarted and blocks again";
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=2 sum=59 usr1=0");
}

// A thread running user code (not in a system call): every register, the
// vector state and the 128-byte red zone below its stack pointer are exactly
// as they were, though the callee wrote all the caller-saved ones.
TEST_F(RemoteCallTest, RegistersVectorStateAndRedZoneArePreserved) {
  ASSERT_NO_FATAL_FAILURE(attach("redzone", kRunning));
  const pid_t rz = static_cast<pid_t>(c->ready_number("rz_tid"));
  for (int round = 0; round < 5; ++round) {
    ASSERT_OK(g->stop_all());
    TracedThread* t = g->find(rz);
    ASSERT_NE(t, nullptr);
    user_regs_struct before = t->regs;
    std::vector<u8> fp_before = vector_state(rz);
    ASSERT_FALSE(fp_before.empty());
    {
      auto rc = RemoteCall::create(*g, *t, *p);
      ASSERT_OK(rc);
      auto r = rc->call(fn(*c, "clobber"));
      ASSERT_OK(r);
      EXPECT_EQ(*r, 0x77u);
      r = rc->call(fn(*c, "align"));
      ASSERT_OK(r);
      EXPECT_EQ(*r, 0u);
    }  // finish() by the destructor
    t = g->find(rz);
    ASSERT_NE(t, nullptr);
    ASSERT_OK(g->refresh_regs(*t));
    expect_same_regs(before, t->regs);
    EXPECT_TRUE(vector_state(rz) == fp_before) << "vector registers changed";
    ASSERT_OK(g->resume_all());
  }
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("stop"), "redzone 0");
  EXPECT_EQ(c->ask("get"), "calls=0 sum=0 usr1=0");
}

// A crash in the callee: an error naming the signal, where and the fault
// address; the signal is not delivered and the thread carries on.
TEST_F(RemoteCallTest, CrashIsReportedAndSuppressed) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked));
  auto t = g->stop_one();
  ASSERT_OK(t);
  user_regs_struct before = (*t)->regs;
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    const u64 crash = c->ready_number("crash");
    rc->set_describer([crash](u64 pc) { return fmt::format("crash+{:#x}", pc - crash); });
    auto r = rc->call(fn(*c, "crash"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::BadPayload);
    EXPECT_TRUE(r.error().message().starts_with("crashed with SIGSEGV at crash+0x")) << r.error().message();
    EXPECT_TRUE(r.error().message().ends_with(" (fault address 0x10)")) << r.error().message();
    // The thread is still usable.
    auto ok = rc->call(fn(*c, "add6"), 1, 1, 1, 1, 1, 1);
    ASSERT_OK(ok);
    EXPECT_EQ(*ok, 21u);
    // abort() in the callee is a crash too, not a signal to pass on.
    r = rc->call(fn(*c, "abort"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().message().starts_with("crashed with SIGABRT at ")) << r.error().message();
    ASSERT_OK(rc->finish());
  }
  TracedThread* l = g->find(c->pid());
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->pending_signal, 0) << "the crash signal must not be delivered";
  ASSERT_OK(g->refresh_regs(*l));
  EXPECT_EQ(l->regs.rip, before.rip - 2);
  EXPECT_EQ(l->regs.rsp, before.rsp);
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=1 sum=21 usr1=0");
}

// The callee waits for a lock that a thread held stopped owns: the call
// times out, the thread is put back and goes on with its own read().
TEST_F(RemoteCallTest, CallBlockedOnALockHeldByAStoppedThreadTimesOut) {
  ASSERT_NO_FATAL_FAILURE(attach("holder", kBlocked));
  ASSERT_OK(g->stop_all());
  TracedThread* t = g->find(c->pid());
  ASSERT_NE(t, nullptr);
  user_regs_struct before = t->regs;
  {
    auto rc = RemoteCall::create(*g, *t, *p);
    ASSERT_OK(rc);
    rc->set_timeout(std::chrono::milliseconds(300));
    auto t0 = std::chrono::steady_clock::now();
    auto r = rc->call(fn(*c, "lock"));
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::Timeout);
    EXPECT_EQ(r.error().message(), "did not return within 300 ms");
    EXPECT_GE(took, std::chrono::milliseconds(300));
    EXPECT_LT(took, std::chrono::seconds(5));
    // The holder is still stopped; the thread is ours again.
    EXPECT_TRUE(g->find(static_cast<pid_t>(c->ready_number("holder_tid")))->stopped);
    ASSERT_OK(rc->finish());
  }
  t = g->find(c->pid());
  ASSERT_OK(g->refresh_regs(*t));
  EXPECT_EQ(t->regs.rip, before.rip - 2);
  EXPECT_EQ(t->regs.rsp, before.rsp);
  ASSERT_OK(g->resume_all());
  ASSERT_TRUE(blocked_in_read(*c));
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=0 sum=0 usr1=0");
}

// A callee that never returns, with the rest of the process running.
TEST_F(RemoteCallTest, CallThatNeverReturnsTimesOut) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked));
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    rc->set_timeout(std::chrono::milliseconds(200));
    auto r = rc->call(fn(*c, "sleep"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::Timeout);
    // Still usable afterwards.
    auto ok = rc->call(fn(*c, "add6"), 0, 0, 0, 0, 0, 1);
    ASSERT_OK(ok);
    EXPECT_EQ(*ok, 6u);
  }
  ASSERT_OK(g->resume_all());
  ASSERT_TRUE(blocked_in_read(*c));
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=1 sum=6 usr1=0");
}

// A signal that arrives while the callee runs is kept and delivered once,
// after the thread is resumed with its own registers.
TEST_F(RemoteCallTest, SignalArrivingDuringACallIsDeliveredAfterwards) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked));
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    // Queued while the thread is stopped: it shows up as a
    // signal-delivery-stop as soon as the call starts running.
    ASSERT_EQ(::kill(c->pid(), SIGUSR1), 0);
    auto r = rc->call(fn(*c, "add6"), 1, 0, 0, 0, 0, 0);
    ASSERT_OK(r);
    EXPECT_EQ(*r, 1u);
    ASSERT_OK(rc->finish());
  }
  EXPECT_EQ(g->find(c->pid())->pending_signal, SIGUSR1);
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  // The handler ran once; SA_RESTART: the read went on.
  EXPECT_EQ(c->ask("get"), "calls=1 sum=1 usr1=1");
}

// The callee creates a thread and waits for it: the new thread is adopted
// and runs (the process is running around the call).
TEST_F(RemoteCallTest, CalleeMayCreateAndJoinAThread) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked));
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    auto r = rc->call(fn(*c, "spawn"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 42u);
  }
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=0 sum=0 usr1=0");
}

// Asked to (as in a stop window), a thread the callee creates is adopted
// stopped from its first instruction, and runs only once the group is
// resumed.
TEST_F(RemoteCallTest, ThreadCreatedByTheCalleeCanBeKeptStopped) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kRunning));
  ASSERT_OK(g->stop_all());
  {
    auto rc = RemoteCall::create(*g, *g->find(c->pid()), *p);
    ASSERT_OK(rc);
    rc->keep_new_threads_stopped(true);
    auto r = rc->call(fn(*c, "detached"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 0u);
  }
  ASSERT_EQ(g->threads().size(), 2u);
  const TracedThread& n = g->threads().back();
  EXPECT_NE(n.tid, c->pid());
  EXPECT_TRUE(n.stopped);
  EXPECT_NE(slurp(fmt::format("/proc/{}/task/{}/stat", c->pid(), n.tid)).find(") t "), std::string::npos)
      << "in a tracing stop";
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  EXPECT_TRUE(eventually([&] { return c->ask("spawned") == "spawned=1"; }));
}

// The callee ends the process: TargetGone.
TEST_F(RemoteCallTest, TargetExitingDuringTheCallIsTargetGone) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kRunning));
  auto t = g->stop_one();
  ASSERT_OK(t);
  auto rc = RemoteCall::create(*g, **t, *p);
  ASSERT_OK(rc);
  auto r = rc->call(fn(*c, "die"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(r.error().message(), fmt::format("process {} exited during the operation", c->pid()));
  EXPECT_FALSE(rc->finish());
  int st = c->wait_exit();
  if (st != -1) {
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 7) << st;
  }
}

// Killed from outside while the callee sleeps: TargetGone, no hang.
TEST_F(RemoteCallTest, TargetKilledDuringTheCallIsTargetGone) {
  ASSERT_NO_FATAL_FAILURE(attach("holder", kRunning));
  ASSERT_OK(g->stop_all());
  auto rc = RemoteCall::create(*g, *g->find(c->pid()), *p);
  ASSERT_OK(rc);
  // Whether the kill lands before or during the call, the answer is the same.
  std::thread killer([pid = c->pid()] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(pid, SIGKILL);
  });
  auto r = rc->call(fn(*c, "sleep"));
  killer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::TargetGone) << r.error().message();
}

// hotsplice killed while a thread carries a call's registers: before the
// thread is resumed into the callee (phase 0), or while the callee runs
// (phase 1). The callee returns into the recovery trampoline, which puts
// back the thread's vector state (the callee overwrote every xmm register
// and the MXCSR) and its general registers, and the thread redoes its read()
// with exactly the state it had. While the callee still runs, another
// invocation is refused as busy instead of overwriting the data area.
class ToolKilledDuringRemoteCall : public RemoteCallTest, public ::testing::WithParamInterface<int> {};

TEST_P(ToolKilledDuringRemoteCall, TheThreadGetsItsOwnStateBack) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked, false));
  user_regs_struct before{};
  std::vector<u8> fp_before;
  {
    ASSERT_NO_FATAL_FAILURE(seize());
    auto t = g->stop_one();
    ASSERT_OK(t);
    ASSERT_EQ((*t)->tid, c->pid());
    before = (*t)->regs;
    fp_before = vector_state(c->pid());
    ASSERT_FALSE(fp_before.empty());
    ASSERT_OK(g->detach());
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t tool = ::fork();
  if (tool == 0) {
    auto tool_g = ThreadGroup::seize(*p);
    if (!tool_g) ::_exit(2);
    auto t = tool_g->stop_one();
    if (!t) ::_exit(3);
    auto rc = RemoteCall::create(*tool_g, **t, *p);
    if (!rc) ::_exit(4);
    if (GetParam() == 0) RemoteCall::test_kill_point = [] { ::kill(::getpid(), SIGKILL); };
    if (::write(fds[1], "1", 1) != 1) ::_exit(6);
    (void)rc->call(fn(*c, "slow"), 1000);
    ::_exit(7);  // phase 0: not reached
  }
  ::close(fds[1]);
  char x = 0;
  EXPECT_EQ(::read(fds[0], &x, 1), 1) << "the tool could not prepare the call";
  ::close(fds[0]);
  // (Detached at a syscall stop, the thread is woken as if by a signal: its
  // sleep goes on in restart_syscall.)
  auto in_nanosleep = [&] {
    const long s = task_syscall(c->pid(), c->pid());
    return s == SYS_clock_nanosleep || s == SYS_nanosleep || s == SYS_restart_syscall;
  };
  if (GetParam() == 1) {
    ASSERT_TRUE(eventually(in_nanosleep)) << "the callee runs";
    ::kill(tool, SIGKILL);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(tool, &st, 0), tool);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << st;
  ASSERT_TRUE(eventually(in_nanosleep)) << "the callee runs without hotsplice";

  if (GetParam() == 1) {
    ASSERT_NO_FATAL_FAILURE(seize());
    auto t = g->stop_one();
    ASSERT_OK(t);
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_FALSE(rs);
    EXPECT_EQ(rs.error().kind(), ErrorKind::Busy);
    EXPECT_EQ(rs.error().message(),
              fmt::format("thread {} of PID {} is still running a function an interrupted hotsplice called in it; "
                          "try again when it returns",
                          c->pid(), c->pid()));
    ASSERT_OK(g->detach());
  }

  ASSERT_TRUE(eventually([&] { return task_syscall(c->pid(), c->pid()) == SYS_read; }))
      << "the callee returns and the thread is back in its read()";
  {
    ASSERT_NO_FATAL_FAILURE(seize());
    auto t = g->stop_one();
    ASSERT_OK(t);
    expect_same_regs(before, (*t)->regs);
    EXPECT_EQ((*t)->regs.orig_rax, before.orig_rax);
    EXPECT_TRUE(vector_state(c->pid()) == fp_before) << "vector registers or MXCSR not put back";
    // And the next call goes through the same trampoline.
    {
      auto rc = RemoteCall::create(*g, **t, *p);
      ASSERT_OK(rc);
      auto r = rc->call(fn(*c, "add6"), 1, 0, 0, 0, 0, 0);
      ASSERT_OK(r);
      EXPECT_EQ(*r, 1u);
    }
    ASSERT_OK(g->resume_all());
    ASSERT_OK(g->detach());
  }
  std::string maps = slurp(fmt::format("/proc/{}/maps", c->pid()));
  size_t n = 0;
  for (size_t at = 0; (at = maps.find("/memfd:hotsplice-trampoline", at)) != std::string::npos; ++at) n++;
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(c->ask("get"), "calls=2 sum=1 usr1=0");
}

INSTANTIATE_TEST_SUITE_P(Phases, ToolKilledDuringRemoteCall, ::testing::Values(0, 1),
                         [](const auto& p) { return std::string(p.param == 0 ? "BeforeTheCallee" : "InTheCallee"); });

// The busy check does not outlive the call: a return address into the
// trampoline left in its slot (as a hotsplice killed just after it wrote
// it, before the thread was set on the call, would leave it) does not
// refuse later invocations once the thread's stack pointer is above it.
TEST_F(RemoteCallTest, StaleReturnAddressAboveTheStackPointerIsNotACallInProgress) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kBlocked, false));
  RemoteAddr tr;
  {
    ASSERT_NO_FATAL_FAILURE(seize());
    auto t = g->stop_one();
    ASSERT_OK(t);
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    auto r = rc->call(fn(*c, "add6"), 1, 0, 0, 0, 0, 0);
    ASSERT_OK(r);
    ASSERT_OK(rc->finish());
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_OK(rs);
    tr = rs->trampoline();
    ASSERT_FALSE(tr.is_null());
    ASSERT_OK(rs->finish());
    ASSERT_OK(g->detach());
  }
  // The data area still describes that call (RemoteSyscalls rewrote it with
  // vector_bytes 0: describe a call again, as after a call), and the slot
  // gets the return address back.
  auto ctx = p->read_value<x86_64::RecoveryContext>(tr + static_cast<i64>(RecoveryTrampoline::kContext));
  ASSERT_OK(ctx);
  x86_64::RecoveryContext call = *ctx;
  call.vector_bytes = 512;
  ASSERT_OK(p->write(tr + static_cast<i64>(RecoveryTrampoline::kContext),
                     ByteView(reinterpret_cast<const u8*>(&call), sizeof call)));
  const u64 slot = ((call.rsp - 128) & ~u64{15}) - 8;
  const u64 ret = tr.value() + RecoveryTrampoline::kReturnXsave;
  ASSERT_OK(p->write(RemoteAddr(slot), ByteView(reinterpret_cast<const u8*>(&ret), sizeof ret)));
  {
    ASSERT_NO_FATAL_FAILURE(seize());
    auto t = g->stop_one();
    ASSERT_OK(t);
    EXPECT_GT((*t)->regs.rsp, slot);
    auto rs = RemoteSyscalls::create(*g, **t, *p);
    ASSERT_OK(rs);
    auto pid_in_target = rs->syscall(SYS_getpid);
    ASSERT_OK(pid_in_target);
    EXPECT_EQ(*pid_in_target, c->pid());
    ASSERT_OK(rs->finish());
    ASSERT_OK(g->detach());
  }
  EXPECT_EQ(c->ask("get"), "calls=1 sum=1 usr1=0");
}

TEST_F(RemoteCallTest, TooManyArgumentsAndFinishedObjectsAreRefused) {
  ASSERT_NO_FATAL_FAILURE(attach("plain", kRunning));
  auto t = g->stop_one();
  ASSERT_OK(t);
  auto rc = RemoteCall::create(*g, **t, *p);
  ASSERT_OK(rc);
  const u64 seven[7] = {};
  auto r = rc->call_raw(fn(*c, "add6"), seven);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "a remote call takes at most 6 arguments, not 7");
  ASSERT_OK(rc->finish());
  r = rc->call(fn(*c, "add6"), 1, 2, 3, 4, 5, 6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::Internal);
  ASSERT_OK(g->resume_all());
}

}  // namespace
}  // namespace hs
