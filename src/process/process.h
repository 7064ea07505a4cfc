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
  u64 inode = 0;
  std::string path;      // may be empty, "[stack]", "/memfd:name (deleted)", ...
};

struct ProcStatus {
  char state = '?';      // R, S, D, T (stopped), t (tracing stop), Z, X
  pid_t tracer_pid = 0;
  std::string name;
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

  // True if the process still exists and is not a zombie.
  bool alive() const;

 private:
  explicit Process(pid_t pid, int mem_fd) : pid_(pid), mem_fd_(mem_fd) {}
  pid_t pid_ = 0;
  int mem_fd_ = -1;
};

}  // namespace hs
