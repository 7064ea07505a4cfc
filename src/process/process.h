// A target process seen from outside: /proc files and its memory. Opening one
// does not stop or attach to anything; see thread_group.h for that.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"
#include "support/remote_ptr.h"

namespace hs {

struct MapEntry {
  RemoteRange range;
  int prot = 0;          // PROT_* from "rwxp"
  bool shared = false;   // 's' vs 'p'
  u64 offset = 0;
  u64 dev = 0;           // makedev(major, minor) of the file's device
  u64 inode = 0;
  std::string path;      // may be empty, "[stack]", "/memfd:name (deleted)", ...
};

struct ProcStatus {
  char state = '?';      // R, S, D, T (stopped), t (tracing stop), Z, X
  pid_t tracer_pid = 0;
  std::string name;
  pid_t tgid = 0;        // the thread group (process) this task belongs to
  int threads = 0;       // number of threads ("Threads:"); a zombie leader still counts
};

class Process {
 public:
  // Errors: NoProcess "no process with PID N", Permission
  // "not permitted to access PID N: ...", TargetGone for a zombie
  // "process N has exited".
  static Result<Process> open(pid_t pid);

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();

  pid_t pid() const { return pid_; }

  Result<ProcStatus> status() const;                 // /proc/PID/status
  // /proc/PID/task/TID/status of any thread (no open Process needed).
  static Result<ProcStatus> task_status(pid_t pid, pid_t tid);
  Result<std::vector<pid_t>> thread_ids() const;     // /proc/PID/task
  Result<std::vector<MapEntry>> maps() const;        // /proc/PID/maps
  Result<std::string> exe_path() const;              // readlink /proc/PID/exe

  // Memory through /proc/PID/mem (works on read-only mappings too, like a
  // debugger's breakpoint writes). A short read/write is an error.
  Status read(RemoteAddr addr, std::span<u8> out) const;
  Result<Bytes> read(RemoteAddr addr, size_t len) const;
  Status write(RemoteAddr addr, ByteView data) const;
  template <class T>
  Result<T> read_value(RemoteAddr addr) const {
    T v;
    HS_CHECK(read(addr, std::span<u8>(reinterpret_cast<u8*>(&v), sizeof v)));
    return v;
  }

  // True if the process still exists and is not a zombie. (A leader that
  // called pthread_exit shows state Z while its other threads run on: that
  // process is alive.)
  bool alive() const;

  // True if any thread of `pid` still runs (is not a zombie or dead).
  // Threads a tracer still holds stay zombies until it lets go, so the
  // thread count alone does not tell whether a process has died.
  static bool any_thread_running(pid_t pid);
  // The state letter of one thread in /proc/PID/task/TID/stat ('R' running
  // or runnable, 'S' sleeping, 'D' in uninterruptible wait, 't' traced, ...),
  // or 0 if it cannot be read.
  static char thread_state(pid_t pid, pid_t tid);

 private:
  explicit Process(pid_t pid, int mem_fd) : pid_(pid), mem_fd_(mem_fd) {}
  std::vector<std::string> mm_file_candidates(std::string_view name) const;
  pid_t pid_ = 0;
  int mem_fd_ = -1;
};

}  // namespace hs
