// The guardian of one CLI invocation (guardian.h): forked before a verb that
// changes a process; exits when the tool says "done", and repairs the
// target at once when the tool dies without saying it.
#include "cli/guardian.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "engine/session.h"
#include "support/file.h"
#include "support/text.h"

namespace hs {

namespace {

using Clock = std::chrono::steady_clock;

// How long the guardian waits for the dead tool's ptrace hold to go (the
// kernel closes a dying process's files, which is the EOF the guardian
// sees, before it detaches the process's tracees).
constexpr auto kHoldWait = std::chrono::seconds(5);
// How long it keeps trying while the target answers busy with no tracer:
// a function the dead tool called in it (a hook) is still running, and the
// repair must wait until it has returned. The tool itself would have given
// up on the hook after 5 s (RemoteCall::kDefaultTimeout).
constexpr auto kBusyWait = std::chrono::seconds(10);

int done_fd = -1;        // the tool's end of the pipe
pid_t guardian_pid = -1;  // and its guardian
int guardian_pidfd = -1;

// atexit: the tool finished by itself, successful or not. The guardian
// exits on "done" and the tool reaps it (at most 100 ms: a guardian someone
// stopped is left to whoever adopts it), so no zombie is left to an init
// that does not reap orphans (a container's PID 1 often does not).
void tell_done() {
  if (done_fd < 0) return;
  ::signal(SIGPIPE, SIG_IGN);  // a guardian that is gone must not kill the tool now
  const char d = 'd';
  while (::write(done_fd, &d, 1) < 0 && errno == EINTR) {
  }
  ::close(done_fd);
  done_fd = -1;
  if (guardian_pidfd >= 0) {
    pollfd p{.fd = guardian_pidfd, .events = POLLIN, .revents = 0};
    while (::poll(&p, 1, 100) < 0 && errno == EINTR) {
    }
  }
  ::waitpid(guardian_pid, nullptr, WNOHANG);
}

// The parent of `pid` (field 4 of /proc/PID/stat), 0 if it cannot be read.
pid_t parent_of(pid_t pid) {
  auto stat = read_whole_file(fmt::format("/proc/{}/stat", pid));
  if (!stat) return 0;
  const std::string s(stat->begin(), stat->end());
  const size_t close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  if (std::sscanf(s.c_str() + close_paren + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

struct Guard {
  pid_t target;
  pid_t tool;

  [[noreturn]] void finish(int code, std::string_view what) const {
    fmt::print(stderr, "hotsplice: guardian: PID {}: the tool (PID {}) died; {}\n", target, tool,
               escape_for_terminal(what));
    std::fflush(stderr);
    ::_exit(code);
  }

  // The tool died without saying "done": repair the target.
  [[noreturn]] void take_over(int pidfd) const {
    const auto start = Clock::now();
    // Readable once the tool has exited, which is after the kernel has let
    // go of its tracees; the loop below also covers a kernel without pidfds
    // and the instant after, when TracerPid may still name the tool or
    // (while the kernel detaches) the target's parent.
    if (pidfd >= 0) {
      pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
      const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kHoldWait).count());
      while (::poll(&p, 1, ms) < 0 && errno == EINTR) {
      }
      ::close(pidfd);
    }
    pid_t other = 0;  // another tracer seen meanwhile
    for (;;) {
      const auto waited = Clock::now() - start;
      auto st = Process::task_status(target, target);
      if (!st || st->state == 'Z' || st->state == 'X') finish(0, fmt::format("process {} has exited", target));
      const pid_t tracer = st->tracer_pid;
      if (tracer == tool || (tracer != 0 && tracer == parent_of(target))) {
        if (waited > kHoldWait)
          finish(1, fmt::format("PID {} still traces it after {} s; not repaired: the next hotsplice operation on "
                                "it repairs it",
                                tracer, std::chrono::duration_cast<std::chrono::seconds>(kHoldWait).count()));
        ::usleep(500);
        continue;
      }
      // Another tracer got there first. A second hotsplice repairs it
      // itself (seizing is the lock), unless it is refused too (a hook
      // still running): wait until it lets go and look again.
      if (tracer != 0) {
        other = tracer;
        if (waited > kBusyWait)
          finish(1, fmt::format("PID {} traces it; not repaired: the next hotsplice operation on it repairs it",
                                tracer));
        ::usleep(2000);
        continue;
      }
      auto s = Session::open(target);
      if (s) {
        std::string what;
        for (const auto& n : (*s)->notes()) what += (what.empty() ? "" : "; ") + n;
        if (what.empty())
          what = other ? fmt::format("no operation was left half-done (PID {} traced it meanwhile)", other)
                       : "no operation was half-done";
        auto closed = (*s)->close();
        if (!closed) finish(1, what + "; " + closed.error().message());
        finish(0, what);
      }
      // Busy with no tracer left: a function the tool called in it (a hook)
      // still runs, and the repair must wait until it has returned (or
      // another tool seized it in between: the next look sees its PID).
      if (s.error().kind() == ErrorKind::Busy && waited < kBusyWait) {
        ::usleep(5000);
        continue;
      }
      finish(1, s.error().message() + "; not repaired: the next hotsplice operation on it repairs it");
    }
  }
};

// The guardian's life: wait for "done" or EOF on `rfd`.
[[noreturn]] void guard(int rfd, pid_t tool, pid_t target) {
  // Ctrl-C and a hang-up reach the terminal's whole process group, the tool
  // included: that is a tool killed mid-operation, exactly what the
  // guardian is for, so it must outlive them. SIGTERM (a deliberate kill)
  // still ends it.
  for (int sig : {SIGINT, SIGQUIT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
  // Fault injection (test builds) and phase timings are for the tool, not
  // for its guardian, which prints one line.
  for (const char* v : {"HOTSPLICE_FAULT_STEP", "HOTSPLICE_FAULT_KILL_TARGET", "HOTSPLICE_FAULT_LIST",
                        "HOTSPLICE_FAULT_STAMP", "HOTSPLICE_TIMING"})
    ::unsetenv(v);
  // Only stderr stays: a pipe reading the tool's stdout is not held open.
  if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::close(null);
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, tool, 0));
  if (pidfd >= 0 && ::getppid() != tool) {  // the tool is gone already: the PID may be another's
    ::close(pidfd);
    pidfd = -1;
  }
  char c = 0;
  ssize_t n;
  while ((n = ::read(rfd, &c, 1)) < 0 && errno == EINTR) {
  }
  if (n == 1) ::_exit(0);
  Guard{target, tool}.take_over(pidfd);
}

}  // namespace

void start_guardian(pid_t target) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    fmt::print(stderr, "hotsplice: warning: no guardian for PID {}: pipe: {}\n", target, errno_text(errno));
    return;
  }
  const pid_t tool = ::getpid();
  std::fflush(nullptr);  // nothing buffered is printed twice
  const pid_t g = ::fork();
  if (g < 0) {
    fmt::print(stderr, "hotsplice: warning: no guardian for PID {}: fork: {}\n", target, errno_text(errno));
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (g == 0) {
    ::close(fds[1]);
    guard(fds[0], tool, target);
  }
  ::close(fds[0]);
  done_fd = fds[1];
  guardian_pid = g;
  guardian_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, g, 0));
  std::atexit(tell_done);
}

}  // namespace hs
