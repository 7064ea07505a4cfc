// Tests of RemoteCall against real processes: a small C helper (compiled here
// with gcc, see kHelperSource) prints the addresses of the functions the
// tests call in it, then answers commands on stdin/stdout. Its main thread
// is blocked in read() whenever the tests are not talking to it, so every
// call made on it also checks that the interrupted read() restarts.
//
// Synchronisation is by the pipes and by polling /proc; a watchdog alarm
// turns a hang into a failure.
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "process/process.h"
#include "process/remote_call.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"

namespace hs {
namespace {

constexpr const char* kHelperSource = R"C(
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig) { (void)sig; usr1_count++; }

static void say(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) { ssize_t w = write(1, buf, (size_t)n); (void)w; }
}

static int read_line(char *buf, int cap) {
  int n = 0;
  while (n < cap - 1) {
    char c;
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return n ? n : -1;
    if (c == '\n') break;
    buf[n++] = c;
  }
  buf[n] = 0;
  return n;
}

/* ---- functions the tests call ---- */

static volatile long calls, last_sum;

__attribute__((noipa)) long add6(long a, long b, long c, long d, long e, long f) {
  calls++;
  last_sum = a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
  return last_sum;
}

__attribute__((noipa)) void crash(void) { *(volatile int *)16 = 1; }

__attribute__((noipa)) void die(void) { _exit(7); }

__attribute__((noipa)) void do_abort(void) { abort(); }

__attribute__((noipa)) long sleep_forever(void) {
  for (;;) pause();
  return 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static volatile int holding;
__attribute__((noipa)) long take_lock(void) {
  pthread_mutex_lock(&mu);
  pthread_mutex_unlock(&mu);
  return 1;
}

static void *answer(void *arg) { (void)arg; return (void *)42; }
__attribute__((noipa)) long spawn_and_join(void) {
  pthread_t t;
  void *r = 0;
  if (pthread_create(&t, 0, answer, 0) != 0) return -1;
  pthread_join(t, &r);
  return (long)r;
}

static volatile int spawned_ran;
static void *count_spawned(void *arg) {
  (void)arg;
  __atomic_add_fetch(&spawned_ran, 1, __ATOMIC_SEQ_CST);
  return 0;
}
__attribute__((noipa)) long spawn_detached(void) {
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  return pthread_create(&t, &at, count_spawned, 0);
}

/* (rsp + 8) % 16 at entry: 0 when the psABI alignment holds. */
long align_probe(void);
/* Writes every general register the psABI lets a callee change, and every
   vector register. */
long clobber(void);
__asm__(
    ".text\n"
    ".globl align_probe\n"
    ".type align_probe,@function\n"
    "align_probe:\n"
    "  lea 8(%rsp), %rax\n"
    "  and $15, %rax\n"
    "  ret\n"
    ".size align_probe, .-align_probe\n"
    ".globl clobber\n"
    ".type clobber,@function\n"
    "clobber:\n"
    "  movabs $0x1111111111111111, %rax\n"
    "  mov %rax, %rcx\n"
    "  mov %rax, %rdx\n"
    "  mov %rax, %rsi\n"
    "  mov %rax, %rdi\n"
    "  mov %rax, %r8\n"
    "  mov %rax, %r9\n"
    "  mov %rax, %r10\n"
    "  mov %rax, %r11\n"
    "  movq %rax, %xmm0\n"
    "  pshufd $0, %xmm0, %xmm0\n"
    "  movdqa %xmm0, %xmm1\n"
    "  movdqa %xmm0, %xmm2\n"
    "  movdqa %xmm0, %xmm3\n"
    "  movdqa %xmm0, %xmm4\n"
    "  movdqa %xmm0, %xmm5\n"
    "  movdqa %xmm0, %xmm6\n"
    "  movdqa %xmm0, %xmm7\n"
    "  movdqa %xmm0, %xmm8\n"
    "  movdqa %xmm0, %xmm15\n"
    "  subq $64, %rsp\n"
    "  movq $0x2222, (%rsp)\n"
    "  addq $64, %rsp\n"
    "  std\n"
    "  cld\n"
    "  mov $0x77, %eax\n"
    "  ret\n"
    ".size clobber, .-clobber\n");

/* Fills the red zone below its rsp and keeps checking it (see process_test). */
int redzone_loop(volatile int *stop, volatile int *started);
extern char redzone_loop_end[];
__asm__(
    ".text\n"
    ".globl redzone_loop\n"
    ".type redzone_loop,@function\n"
    "redzone_loop:\n"
    "  movabs $0x5a5a000000000000, %rax\n"
    "  mov $16, %ecx\n"
    "  lea -128(%rsp), %rdx\n"
    "1: mov %rax, (%rdx)\n"
    "  inc %rax\n"
    "  add $8, %rdx\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  movl $1, (%rsi)\n"
    "2: movabs $0x5a5a000000000000, %rax\n"
    "  mov $16, %ecx\n"
    "  lea -128(%rsp), %rdx\n"
    "3: cmp %rax, (%rdx)\n"
    "  jne 4f\n"
    "  inc %rax\n"
    "  add $8, %rdx\n"
    "  dec %ecx\n"
    "  jnz 3b\n"
    "  cmpl $0, (%rdi)\n"
    "  je 2b\n"
    "  xor %eax, %eax\n"
    "  ret\n"
    "4: mov $1, %eax\n"
    "  ret\n"
    ".globl redzone_loop_end\n"
    "redzone_loop_end:\n"
    ".size redzone_loop, .-redzone_loop\n");

static volatile int rz_stop, rz_started;
static volatile pid_t rz_tid;
static int rz_result = -1;
static void *redzone_thread(void *arg) {
  (void)arg;
  rz_tid = (pid_t)syscall(SYS_gettid);
  rz_result = redzone_loop(&rz_stop, &rz_started);
  return 0;
}

static volatile pid_t holder_tid;
static void *holder(void *arg) {
  (void)arg;
  holder_tid = (pid_t)syscall(SYS_gettid);
  pthread_mutex_lock(&mu);
  holding = 1;
  for (;;) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, 0);
  const char *mode = argc > 1 ? argv[1] : "";
  pthread_t t;
  if (!strcmp(mode, "redzone")) {
    pthread_create(&t, 0, redzone_thread, 0);
    while (!rz_started) sched_yield();
  } else if (!strcmp(mode, "holder")) {
    pthread_create(&t, 0, holder, 0);
    while (!holding) sched_yield();
  }
  say("ready add6=%p crash=%p die=%p abort=%p sleep=%p lock=%p spawn=%p detached=%p align=%p clobber=%p "
      "rz_tid=%d holder_tid=%d\n",
      (void *)add6, (void *)crash, (void *)die, (void *)do_abort, (void *)sleep_forever, (void *)take_lock,
      (void *)spawn_and_join, (void *)spawn_detached, (void *)align_probe, (void *)clobber, (int)rz_tid, (int)holder_tid);
  char line[128];
  for (;;) {
    if (read_line(line, sizeof line) < 0) return 0;
    if (!strcmp(line, "get")) say("calls=%ld sum=%ld usr1=%d\n", calls, last_sum, (int)usr1_count);
    else if (!strcmp(line, "stop")) {
      rz_stop = 1;
      pthread_join(t, 0);
      say("redzone %d\n", rz_result);
    } else if (!strcmp(line, "spawned")) say("spawned=%d\n", (int)spawned_ran);
    else if (!strcmp(line, "q")) return 0;
    else say("error %s\n", line);
  }
}
)C";

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

const std::string& helper() {
  static std::string path = [] {
    std::string dir = std::string(HS_BINARY_DIR) + "/remote_call_test_helper";
    ::mkdir(dir.c_str(), 0755);
    std::string src = fmt::format("{}/helper.{}.c", dir, ::getpid());
    std::string bin = fmt::format("{}/helper.{}", dir, ::getpid());
    std::ofstream(src) << kHelperSource;
    std::string out = run_command(fmt::format("gcc -O1 -g -pthread -o '{}' '{}' 2>&1", bin, src));
    struct stat sb;
    if (::stat(bin.c_str(), &sb) != 0) {
      ADD_FAILURE() << "cannot compile the helper: " << out;
      return std::string();
    }
    ::unlink(src.c_str());
    std::string final_path = dir + "/helper";
    ::rename(bin.c_str(), final_path.c_str());
    return final_path;
  }();
  return path;
}

// A running helper with pipes to its stdin and from its stdout, and the
// addresses from its "ready" line.
struct Child {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string buffered;
  std::map<std::string, u64> at;  // "add6" -> address, "rz_tid" -> tid, ...

  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    if (in >= 0) ::close(in);
    if (out >= 0) ::close(out);
  }

  RemoteAddr fn(const std::string& name) const { return RemoteAddr(at.at(name)); }

  void send(const std::string& s) {
    ASSERT_EQ(::write(in, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }

  std::string line(int timeout_ms = 30000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      size_t nl = buffered.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffered.substr(0, nl);
        buffered.erase(0, nl + 1);
        return l;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ADD_FAILURE() << "timed out waiting for output of helper " << pid;
        return "";
      }
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[512];
      ssize_t n = ::read(out, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ADD_FAILURE() << "helper " << pid << " closed its output";
        return "";
      }
      buffered.append(buf, static_cast<size_t>(n));
    }
  }

  std::string ask(const std::string& cmd) {
    send(cmd + "\n");
    return line();
  }

  int wait_exit() {
    int st = 0;
    pid_t r;
    while ((r = ::waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    pid = -1;
    return r < 0 ? -1 : st;
  }
};

std::unique_ptr<Child> start(const std::string& mode = "plain") {
  const std::string& bin = helper();
  if (bin.empty()) return nullptr;
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return nullptr;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execl(bin.c_str(), bin.c_str(), mode.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  auto c = std::make_unique<Child>();
  c->pid = pid;
  c->in = in[1];
  c->out = out[0];
  std::istringstream ready(c->line());
  std::string word;
  ready >> word;
  EXPECT_EQ(word, "ready");
  while (ready >> word) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) continue;
    c->at[word.substr(0, eq)] = std::stoull(word.substr(eq + 1), nullptr, 0);
  }
  return c;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The system call a thread is blocked in (/proc/.../syscall), -1 if running.
long task_syscall(pid_t pid, pid_t tid) {
  std::string s = slurp(fmt::format("/proc/{}/task/{}/syscall", pid, tid));
  if (s.empty() || s.starts_with("running")) return -1;
  return std::strtol(s.c_str(), nullptr, 10);
}

bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool blocked_in_read(const Child& c) {
  return eventually([&] { return task_syscall(c.pid, c.pid) == SYS_read; });
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

class RemoteCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    ::alarm(120);
    ASSERT_FALSE(helper().empty());
  }
  void TearDown() override { ::alarm(0); }
};

#define ASSERT_OK(expr)                                                          \
  do {                                                                           \
    const auto& hs_r_ = (expr);                                                  \
    ASSERT_TRUE(hs_r_.has_value()) << #expr << ": " << hs_r_.error().message(); \
  } while (0)

// The main case: a call with six arguments on a thread blocked in read(),
// its result and side effect, and the read() going on afterwards.
TEST_F(RemoteCallTest, CallsAFunctionAndTheInterruptedReadRestarts) {
  auto c = start();
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  ASSERT_EQ((*t)->tid, c->pid);
  user_regs_struct before = (*t)->regs;
  EXPECT_EQ(static_cast<long>(before.orig_rax), SYS_read);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    auto r = rc->call(c->fn("add6"), 1, 2, 3, 4, 5, 6);
    ASSERT_OK(r);
    EXPECT_EQ(*r, 1u + 4 + 9 + 16 + 25 + 36);
    r = rc->call(c->fn("add6"), -1, 0, 0, 0, 0, 10);
    ASSERT_OK(r);
    EXPECT_EQ(static_cast<i64>(*r), 59);
    r = rc->call(c->fn("align"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 0u) << "(rsp + 8) % 16 at the callee's entry";
    ASSERT_OK(rc->finish());
  }
  // The thread's own registers are back, normalised to "redo the read".
  TracedThread* l = g->find(c->pid);
  ASSERT_NE(l, nullptr);
  ASSERT_OK(g->refresh_regs(*l));
  EXPECT_EQ(l->regs.rip, before.rip - 2);
  EXPECT_EQ(l->regs.rax, static_cast<unsigned long long>(SYS_read));
  EXPECT_EQ(l->regs.rsp, before.rsp);
  EXPECT_EQ(l->regs.rdi, before.rdi);
  EXPECT_EQ(l->regs.rsi, before.rsi);
  EXPECT_EQ(l->regs.rdx, before.rdx);
  EXPECT_EQ(l->pending_signal, 0);
  ASSERT_OK(g->resume_all());
  ASSERT_TRUE(blocked_in_read(*c)) << "the read is restarted and blocks again";
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=2 sum=59 usr1=0");
}

// A thread running user code (not in a system call): every register, the
// vector state and the 128-byte red zone below its stack pointer are exactly
// as they were, though the callee wrote all the caller-saved ones.
TEST_F(RemoteCallTest, RegistersVectorStateAndRedZoneArePreserved) {
  auto c = start("redzone");
  ASSERT_TRUE(c);
  const pid_t rz = static_cast<pid_t>(c->at.at("rz_tid"));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
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
      auto r = rc->call(c->fn("clobber"));
      ASSERT_OK(r);
      EXPECT_EQ(*r, 0x77u);
      r = rc->call(c->fn("align"));
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
  auto c = start();
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  user_regs_struct before = (*t)->regs;
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    const u64 crash = c->at.at("crash");
    rc->set_describer([crash](u64 pc) { return fmt::format("crash+{:#x}", pc - crash); });
    auto r = rc->call(c->fn("crash"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::BadPayload);
    EXPECT_TRUE(r.error().message().starts_with("crashed with SIGSEGV at crash+0x")) << r.error().message();
    EXPECT_TRUE(r.error().message().ends_with(" (fault address 0x10)")) << r.error().message();
    // The thread is still usable.
    auto ok = rc->call(c->fn("add6"), 1, 1, 1, 1, 1, 1);
    ASSERT_OK(ok);
    EXPECT_EQ(*ok, 21u);
    // abort() in the callee is a crash too, not a signal to pass on.
    r = rc->call(c->fn("abort"));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().message().starts_with("crashed with SIGABRT at ")) << r.error().message();
    ASSERT_OK(rc->finish());
  }
  TracedThread* l = g->find(c->pid);
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
  auto c = start("holder");
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  ASSERT_OK(g->stop_all());
  TracedThread* t = g->find(c->pid);
  ASSERT_NE(t, nullptr);
  user_regs_struct before = t->regs;
  {
    auto rc = RemoteCall::create(*g, *t, *p);
    ASSERT_OK(rc);
    rc->set_timeout(std::chrono::milliseconds(300));
    auto t0 = std::chrono::steady_clock::now();
    auto r = rc->call(c->fn("lock"));
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::Timeout);
    EXPECT_EQ(r.error().message(), "did not return within 300 ms");
    EXPECT_GE(took, std::chrono::milliseconds(300));
    EXPECT_LT(took, std::chrono::seconds(5));
    // The holder is still stopped; the thread is ours again.
    EXPECT_TRUE(g->find(static_cast<pid_t>(c->at.at("holder_tid")))->stopped);
    ASSERT_OK(rc->finish());
  }
  t = g->find(c->pid);
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
  auto c = start();
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    rc->set_timeout(std::chrono::milliseconds(200));
    auto r = rc->call(c->fn("sleep"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind(), ErrorKind::Timeout);
    // Still usable afterwards.
    auto ok = rc->call(c->fn("add6"), 0, 0, 0, 0, 0, 1);
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
  auto c = start();
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    // Queued while the thread is stopped: it shows up as a
    // signal-delivery-stop as soon as the call starts running.
    ASSERT_EQ(::kill(c->pid, SIGUSR1), 0);
    auto r = rc->call(c->fn("add6"), 1, 0, 0, 0, 0, 0);
    ASSERT_OK(r);
    EXPECT_EQ(*r, 1u);
    ASSERT_OK(rc->finish());
  }
  EXPECT_EQ(g->find(c->pid)->pending_signal, SIGUSR1);
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  // The handler ran once; SA_RESTART: the read went on.
  EXPECT_EQ(c->ask("get"), "calls=1 sum=1 usr1=1");
}

// The callee creates a thread and waits for it: the new thread is adopted
// and runs (the process is running around the call).
TEST_F(RemoteCallTest, CalleeMayCreateAndJoinAThread) {
  auto c = start();
  ASSERT_TRUE(c);
  ASSERT_TRUE(blocked_in_read(*c));
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  {
    auto rc = RemoteCall::create(*g, **t, *p);
    ASSERT_OK(rc);
    auto r = rc->call(c->fn("spawn"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 42u);
  }
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  EXPECT_EQ(c->ask("get"), "calls=0 sum=0 usr1=0");
}

// Asked to (as in a stop window), a thread the callee creates is adopted
// stopped, and runs only once the group is resumed.
// DISABLED: under heavy CPU load (two busy loops beside it) about 1 run in 20
// ends with the new thread running: something after the clone event lets it
// go again. Only a hook that creates a thread inside the stop window is
// affected (that thread may run while the others are stopped). Open work.
TEST_F(RemoteCallTest, DISABLED_ThreadCreatedByTheCalleeCanBeKeptStopped) {
  auto c = start();
  ASSERT_TRUE(c);
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  ASSERT_OK(g->stop_all());
  {
    auto rc = RemoteCall::create(*g, *g->find(c->pid), *p);
    ASSERT_OK(rc);
    rc->keep_new_threads_stopped(true);
    auto r = rc->call(c->fn("detached"));
    ASSERT_OK(r);
    EXPECT_EQ(*r, 0u);
  }
  ASSERT_EQ(g->threads().size(), 2u);
  const TracedThread& n = g->threads().back();
  EXPECT_NE(n.tid, c->pid);
  EXPECT_TRUE(n.stopped);
  EXPECT_NE(slurp(fmt::format("/proc/{}/task/{}/stat", c->pid, n.tid)).find(") t "), std::string::npos)
      << "in a tracing stop";
  ASSERT_OK(g->resume_all());
  ASSERT_OK(g->detach());
  EXPECT_TRUE(eventually([&] { return c->ask("spawned") == "spawned=1"; }));
}

// The callee ends the process: TargetGone.
TEST_F(RemoteCallTest, TargetExitingDuringTheCallIsTargetGone) {
  auto c = start();
  ASSERT_TRUE(c);
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  auto rc = RemoteCall::create(*g, **t, *p);
  ASSERT_OK(rc);
  auto r = rc->call(c->fn("die"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::TargetGone);
  EXPECT_EQ(r.error().message(), fmt::format("process {} exited during the operation", c->pid));
  EXPECT_FALSE(rc->finish());
  int st = c->wait_exit();
  if (st != -1) {
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 7) << st;
  }
}

// Killed from outside while the callee sleeps: TargetGone, no hang.
TEST_F(RemoteCallTest, TargetKilledDuringTheCallIsTargetGone) {
  auto c = start("holder");
  ASSERT_TRUE(c);
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  ASSERT_OK(g->stop_all());
  auto rc = RemoteCall::create(*g, *g->find(c->pid), *p);
  ASSERT_OK(rc);
  // Whether the kill lands before or during the call, the answer is the same.
  std::thread killer([pid = c->pid] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(pid, SIGKILL);
  });
  auto r = rc->call(c->fn("sleep"));
  killer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::TargetGone) << r.error().message();
}

TEST_F(RemoteCallTest, TooManyArgumentsAndFinishedObjectsAreRefused) {
  auto c = start();
  ASSERT_TRUE(c);
  auto p = Process::open(c->pid);
  ASSERT_OK(p);
  auto g = ThreadGroup::seize(*p);
  ASSERT_OK(g);
  auto t = g->stop_one();
  ASSERT_OK(t);
  auto rc = RemoteCall::create(*g, **t, *p);
  ASSERT_OK(rc);
  const u64 seven[7] = {};
  auto r = rc->call_raw(c->fn("add6"), seven);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "a remote call takes at most 6 arguments, not 7");
  ASSERT_OK(rc->finish());
  r = rc->call(c->fn("add6"), 1, 2, 3, 4, 5, 6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::Internal);
  ASSERT_OK(g->resume_all());
}

}  // namespace
}  // namespace hs
