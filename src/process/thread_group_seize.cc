// Attaching to every thread of a target (ThreadGroup::seize): the leader
// first, because seizing it is hotsplice's per-process lock, then every other
// thread until a scan of /proc/PID/task finds none left; and the messages
// for a target someone else already traces (another hotsplice: Busy; a
// debugger: Permission).
#include <sys/ptrace.h>
#include <unistd.h>

#include <cstdio>

#include "process/ptrace_util.h"
#include "process/thread_group.h"

namespace hs {

namespace {

constexpr long kSeizeOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD;

// The comm of a process, or "" if it cannot be read (it exited).
std::string comm_of(pid_t pid) {
  FILE* f = std::fopen(fmt::format("/proc/{}/comm", pid).c_str(), "re");
  if (!f) return {};
  char buf[64] = {};
  std::string s = std::fgets(buf, sizeof buf, f) ? buf : "";
  std::fclose(f);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string exe_basename_of(pid_t pid) {
  char buf[4096];
  ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string s(buf, static_cast<size_t>(n));
  if (s.ends_with(" (deleted)")) s.resize(s.size() - 10);
  size_t slash = s.rfind('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

// Whether `tracer` still traces `pid` a moment later.
bool still_traced_by(pid_t pid, pid_t tracer) {
  ::usleep(2000);
  auto st = Process::task_status(pid, pid);
  return st && st->tracer_pid == tracer;
}

// The message for a target that someone else traces already. Another
// hotsplice holds the per-process lock (retry-able). So does a tracer that
// lets go a moment later: one that has exited since its PID was read, or
// the target's own parent, which TracerPid names for an instant while the
// kernel detaches the target from a tracer that has just exited (seen with
// two hotsplice racing: the loser was told its parent traced it). A
// hotsplice that has just finished looks exactly like that. A tracer that
// stays (a debugger, strace) is a permission problem the user must resolve.
std::unexpected<Error> traced_by(pid_t pid, pid_t tracer) {
  const std::string comm = comm_of(tracer);
  if (comm == "hotsplice" || exe_basename_of(tracer) == "hotsplice")
    return fail(ErrorKind::Busy, "PID {} is busy: another hotsplice (PID {}) is working on it", pid, tracer);
  if (comm.empty() || !still_traced_by(pid, tracer))
    return fail(ErrorKind::Busy, "PID {} is busy: PID {} was tracing it a moment ago; try again", pid, tracer);
  return fail(ErrorKind::Permission, "PID {} is already traced by PID {} ({})", pid, tracer, comm);
}

// Blocks SIGCHLD in the calling thread for the lifetime of the object, so
// that sigtimedwait() can use it as the "some tracee changed state" wake-up

}  // namespace

Result<ThreadGroup> ThreadGroup::seize(const Process& proc) {
  const pid_t pid = proc.pid();
  ProcStatus st = HS_TRY(proc.status());
  if (st.tracer_pid != 0) return traced_by(pid, st.tracer_pid);
  if (st.state == 'T') return fail(ErrorKind::State, "PID {} is stopped (state T); continue it first", pid);
  if (st.state == 'Z' || st.state == 'X') {
    if (st.threads <= 1) return fail(ErrorKind::TargetGone, "process {} has exited", pid);
    return fail(ErrorKind::State, "cannot attach to PID {}: its main thread has exited (state Z)", pid);
  }

  ThreadGroup g;
  g.pid_ = pid;
  // The leader first: it is the lock. Of two tracers racing here, the
  // kernel lets exactly one succeed. A refusal with no tracer left by the
  // time the status is read again means the winner has already finished:
  // the seize is tried again (a few times) before it counts as a
  // permission problem.
  for (int tries = 1; pt(PTRACE_SEIZE, pid, 0, kSeizeOptions) != 0; tries++) {
    int err = errno;
    if (err == ESRCH) return fail(ErrorKind::TargetGone, "process {} has exited", pid);
    if (err == EPERM) {
      auto again = proc.status();
      if (!again) return std::unexpected(std::move(again.error()));
      if (again->tracer_pid != 0) return traced_by(pid, again->tracer_pid);
      if (again->state == 'Z' || again->state == 'X')
        return fail(ErrorKind::TargetGone, "process {} has exited", pid);
      if (tries < 3) continue;
    }
    return fail_errno(kind_for_errno(err, ErrorKind::Internal), err, "not permitted to trace PID {}", pid);
  }
  g.attached_ = true;
  g.threads_.push_back(TracedThread{.tid = pid});

  // Then every other thread, until a scan finds none we have not seized.
  // Threads created by seized threads meanwhile are attached by the kernel
  // (TRACECLONE): our own SEIZE of those fails with EPERM and their tracer
  // is already us.
  const pid_t self = ::getpid();
  for (;;) {
    auto tids = proc.thread_ids();
    if (!tids) return std::unexpected(std::move(tids.error()));
    bool added = false;
    for (pid_t tid : *tids) {
      if (g.find(tid)) continue;
      if (pt(PTRACE_SEIZE, tid, 0, kSeizeOptions) == 0) {
        g.threads_.push_back(TracedThread{.tid = tid});
        added = true;
        continue;
      }
      int err = errno;
      if (err == ESRCH) continue;  // exited meanwhile
      if (err == EPERM) {
        auto ts = Process::task_status(pid, tid);
        if (!ts) continue;  // exited meanwhile
        if (ts->tracer_pid == self) {
          g.threads_.push_back(TracedThread{.tid = tid});
          added = true;
          continue;
        }
        if (ts->state == 'Z' || ts->state == 'X') continue;
        if (ts->tracer_pid != 0) {
          auto e = traced_by(pid, ts->tracer_pid);
          e.error().context(fmt::format("thread {}", tid));
          return e;
        }
      }
      return fail_errno(kind_for_errno(err, ErrorKind::Internal), err, "cannot attach to thread {} of PID {}", tid,
                        pid);
    }
    if (!added) break;
  }
  // Threads that stopped while we scanned (new threads, signals) go on now.
  HS_CHECK(g.poll_events());
  return g;
}

}  // namespace hs
