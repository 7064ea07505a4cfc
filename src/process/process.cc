// The target seen through /proc: status, threads, mappings, and its memory
// through /proc/PID/mem.
//
// Every /proc read here can race with the process exiting. A file that
// vanishes (ENOENT, ESRCH) after open() succeeded means the process is gone:
// that is reported as TargetGone, never as an I/O error.
#include "process/process.h"

#include "support/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>

namespace hs {

namespace {

// Reads a whole (small, /proc) file. Returns the errno on failure.
std::expected<std::string, int> slurp(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes) return std::unexpected(bytes.error().err);
  return std::string(bytes->begin(), bytes->end());
}

bool gone_errno(int err) { return err == ENOENT || err == ESRCH; }

template <class T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

// Splits off the next space-separated field of a maps line.
std::string_view next_field(std::string_view& line) {
  size_t sp = line.find(' ');
  std::string_view f = line.substr(0, sp);
  line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  return f;
}

Result<ProcStatus> parse_status(std::string_view text, pid_t pid) {
  ProcStatus st;
  bool have_state = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view val = line.substr(colon + 1);
    // Only strip the tab after the colon for Name: a name may end in spaces.
    if (key == "Name") {
      if (!val.empty() && val.front() == '\t') val.remove_prefix(1);
      st.name = std::string(val);
      continue;
    }
    val = trim(val);
    if (key == "State") {
      if (!val.empty()) {
        st.state = val.front();
        have_state = true;
      }
    } else if (key == "TracerPid") {
      parse_num(val, st.tracer_pid);
    } else if (key == "Tgid") {
      parse_num(val, st.tgid);
    } else if (key == "Threads") {
      parse_num(val, st.threads);
    }
  }
  if (!have_state) return fail(ErrorKind::Internal, "status of PID {} has no State line", pid);
  return st;
}

// A process is gone when it is a zombie (or dead) with no thread left. A
// leader that exited on its own (pthread_exit) also shows Z, but its process
// still has other threads.
bool status_says_exited(const ProcStatus& st) {
  return (st.state == 'Z' || st.state == 'X') && st.threads <= 1;
}

Result<ProcStatus> read_status(pid_t pid, bool existed, const std::string& path) {
  auto text = slurp(path);
  if (!text) {
    if (gone_errno(text.error())) {
      if (existed) return fail(ErrorKind::TargetGone, "process {} has exited", pid);
      return fail(ErrorKind::NoProcess, "no process with PID {}", pid);
    }
    return fail_errno(kind_for_errno(text.error(), ErrorKind::Io), text.error(), "cannot read {}", path);
  }
  return parse_status(*text, pid);
}

Result<ProcStatus> read_status(pid_t pid, bool existed) {
  return read_status(pid, existed, fmt::format("/proc/{}/status", pid));
}

}  // namespace

Result<Process> Process::open(pid_t pid) {
  if (pid <= 0) return fail(ErrorKind::NoProcess, "no process with PID {}", pid);
  struct stat sb;
  if (::stat(fmt::format("/proc/{}", pid).c_str(), &sb) != 0) {
    if (gone_errno(errno)) return fail(ErrorKind::NoProcess, "no process with PID {}", pid);
    int err = errno;
    return fail_errno(kind_for_errno(err, ErrorKind::Io), err, "not permitted to access PID {}", pid);
  }
  ProcStatus st = HS_TRY(read_status(pid, false));
  // /proc/TID exists for every thread, though it is not listed: a thread ID
  // is not a process.
  if (st.tgid != 0 && st.tgid != pid)
    return fail(ErrorKind::NoProcess, "no process with PID {} ({} is a thread of process {})", pid, pid, st.tgid);
  if (status_says_exited(st)) return fail(ErrorKind::TargetGone, "process {} has exited", pid);

  int fd = ::open(fmt::format("/proc/{}/mem", pid).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && gone_errno(errno) && st.threads > 1) {
    // The leader has exited on its own (pthread_exit) and took its mm
    // reference with it; the address space is reachable through any other
    // thread, and the fd stays valid whichever thread exits later.
    if (DIR* d = ::opendir(fmt::format("/proc/{}/task", pid).c_str())) {
      while (dirent* e = ::readdir(d)) {
        pid_t tid = 0;
        if (!parse_num(std::string_view(e->d_name), tid) || tid == pid) continue;
        fd = ::open(fmt::format("/proc/{}/task/{}/mem", pid, tid).c_str(), O_RDWR | O_CLOEXEC);
        if (fd >= 0 || !gone_errno(errno)) break;
      }
      int err = errno;
      ::closedir(d);
      errno = err;
    }
  }
  if (fd < 0) {
    int err = errno;
    if (err == EACCES || err == EPERM)
      return fail_errno(ErrorKind::Permission, err, "not permitted to access PID {}", pid);
    if (gone_errno(err)) return fail(ErrorKind::TargetGone, "process {} has exited", pid);
    return fail_errno(ErrorKind::Io, err, "cannot open /proc/{}/mem", pid);
  }
  return Process(pid, fd);
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), mem_fd_(o.mem_fd_) { o.mem_fd_ = -1; }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (mem_fd_ >= 0) ::close(mem_fd_);
    pid_ = o.pid_;
    mem_fd_ = o.mem_fd_;
    o.mem_fd_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (mem_fd_ >= 0) ::close(mem_fd_);
}

Result<ProcStatus> Process::status() const { return read_status(pid_, true); }

Result<ProcStatus> Process::task_status(pid_t pid, pid_t tid) {
  auto st = read_status(pid, true, fmt::format("/proc/{}/task/{}/status", pid, tid));
  if (!st && st.error().kind() == ErrorKind::TargetGone)
    return fail(ErrorKind::TargetGone, "thread {} of process {} has exited", tid, pid);
  return st;
}

Result<std::vector<pid_t>> Process::thread_ids() const {
  std::string dir = fmt::format("/proc/{}/task", pid_);
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    int err = errno;
    if (gone_errno(err)) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
    return fail_errno(kind_for_errno(err, ErrorKind::Io), err, "cannot list {}", dir);
  }
  std::vector<pid_t> tids;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    pid_t tid = 0;
    if (parse_num(std::string_view(e->d_name), tid) && tid > 0) tids.push_back(tid);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) {
    if (gone_errno(err)) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
    return fail_errno(kind_for_errno(err, ErrorKind::Io), err, "cannot list {}", dir);
  }
  // An empty list: the directory was there but every task is gone.
  if (tids.empty()) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
  std::sort(tids.begin(), tids.end());
  return tids;
}

// One line of /proc/PID/maps:
//   7f1c2a000000-7f1c2a022000 r-xp 00002000 fd:01 1234567    /usr/lib/x86_64-linux-gnu/libc.so.6
// Five space-separated fields, then padding, then the path to the end of the
// line. The path may contain spaces and may end in " (deleted)"; it is kept
// as the kernel prints it.
static Result<MapEntry> parse_maps_line(std::string_view line, pid_t pid) {
  auto bad = [&] { return fail(ErrorKind::Internal, "/proc/{}/maps: cannot parse line '{}'", pid, line); };
  std::string_view rest = line;
  std::string_view range = next_field(rest);
  std::string_view perms = next_field(rest);
  std::string_view offset = next_field(rest);
  std::string_view dev = next_field(rest);
  std::string_view inode = next_field(rest);
  size_t dash = range.find('-');
  if (dash == std::string_view::npos || perms.size() < 4 || dev.empty()) return bad();
  MapEntry m;
  u64 begin = 0, end = 0;
  if (!parse_num(range.substr(0, dash), begin, 16) || !parse_num(range.substr(dash + 1), end, 16) || end < begin)
    return bad();
  m.range = {RemoteAddr(begin), RemoteAddr(end)};
  if (perms[0] == 'r') m.prot |= PROT_READ;
  if (perms[1] == 'w') m.prot |= PROT_WRITE;
  if (perms[2] == 'x') m.prot |= PROT_EXEC;
  m.shared = perms[3] == 's';
  size_t colon = dev.find(':');
  unsigned major = 0, minor = 0;
  if (colon == std::string_view::npos || !parse_num(dev.substr(0, colon), major, 16) ||
      !parse_num(dev.substr(colon + 1), minor, 16))
    return bad();
  m.dev = makedev(major, minor);
  if (!parse_num(offset, m.offset, 16) || !parse_num(inode, m.inode)) return bad();
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  m.path = std::string(rest);
  return m;
}

// Files of /proc/PID that describe the address space (maps, exe) come
// from the leader's mm. A leader that exited on its own has none any more:
// then the same file of another thread of the process is used.
std::vector<std::string> Process::mm_file_candidates(std::string_view name) const {
  std::vector<std::string> out{fmt::format("/proc/{}/{}", pid_, name)};
  auto st = read_status(pid_, true);
  if (!st || st->state != 'Z' || st->threads <= 1) return out;
  auto tids = thread_ids();
  if (!tids) return out;
  for (pid_t tid : *tids)
    if (tid != pid_) out.push_back(fmt::format("/proc/{}/task/{}/{}", pid_, tid, name));
  return out;
}

Result<std::vector<MapEntry>> Process::maps() const {
  auto text = slurp(fmt::format("/proc/{}/maps", pid_));
  if (text && text->empty()) {
    auto paths = mm_file_candidates("maps");
    for (size_t i = 1; i < paths.size(); ++i) {
      auto t = slurp(paths[i]);
      if (t && !t->empty()) {
        text = std::move(t);
        break;
      }
    }
  }
  if (!text) {
    if (gone_errno(text.error())) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
    return fail_errno(kind_for_errno(text.error(), ErrorKind::Io), text.error(), "cannot read /proc/{}/maps", pid_);
  }
  // A zombie's maps file is empty.
  if (text->empty() && !alive()) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
  std::vector<MapEntry> out;
  std::string_view all(*text);
  while (!all.empty()) {
    size_t nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
    if (line.empty()) continue;
    out.push_back(HS_TRY(parse_maps_line(line, pid_)));
  }
  return out;
}

static std::expected<std::string, int> read_link(const std::string& link) {
  std::string buf(4096, '\0');
  for (;;) {
    ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
    if (n < 0) return std::unexpected(errno);
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

Result<std::string> Process::exe_path() const {
  std::string link = fmt::format("/proc/{}/exe", pid_);
  auto r = read_link(link);
  if (!r && gone_errno(r.error())) {
    auto paths = mm_file_candidates("exe");
    for (size_t i = 1; i < paths.size() && !r; ++i) r = read_link(paths[i]);
  }
  if (!r) {
    if (gone_errno(r.error())) return fail(ErrorKind::TargetGone, "process {} has exited", pid_);
    return fail_errno(kind_for_errno(r.error(), ErrorKind::Io), r.error(), "cannot read {}", link);
  }
  return *r;
}

// The loop of read and write: `len` bytes at `addr`, `op(done, offset)`
// (pread or pwrite on /proc/PID/mem) moving those from `done` on; `verb`
// names it in the error.
template <class Op>
static Status mem_transfer(const Process& proc, RemoteAddr addr, size_t len, std::string_view verb, Op&& op) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = op(done, static_cast<off_t>(addr.value() + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A process without an address space (exited) reads as end-of-file.
      int err = n < 0 ? errno : EIO;
      if (!proc.alive()) return fail(ErrorKind::TargetGone, "process {} has exited", proc.pid());
      return fail_errno(kind_for_errno(err, ErrorKind::BadTarget), err, "cannot {} {:#x} bytes at {} in PID {}", verb,
                        len, addr, proc.pid());
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status Process::read(RemoteAddr addr, std::span<u8> out) const {
  return mem_transfer(*this, addr, out.size(), "read", [&](size_t done, off_t off) {
    return ::pread(mem_fd_, out.data() + done, out.size() - done, off);
  });
}

Result<Bytes> Process::read(RemoteAddr addr, size_t len) const {
  Bytes b(len);
  HS_CHECK(read(addr, std::span<u8>(b)));
  return b;
}

Status Process::write(RemoteAddr addr, ByteView data) const {
  return mem_transfer(*this, addr, data.size(), "write", [&](size_t done, off_t off) {
    return ::pwrite(mem_fd_, data.data() + done, data.size() - done, off);
  });
}

bool Process::alive() const {
  auto st = read_status(pid_, true);
  return st && !status_says_exited(*st);
}

namespace {

// "tid (comm) S ...": the state follows the last ')'.
char state_in_stat(std::string_view stat) {
  const auto paren = stat.rfind(')');
  return paren != std::string_view::npos && paren + 2 < stat.size() ? stat[paren + 2] : 0;
}

}  // namespace

bool Process::any_thread_running(pid_t pid) {
  DIR* d = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (!d) return false;
  bool running = false;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto stat = slurp(fmt::format("/proc/{}/task/{}/stat", pid, e->d_name));
    if (!stat) continue;
    const char s = state_in_stat(*stat);
    if (s != 0 && s != 'Z' && s != 'X') running = true;
  }
  ::closedir(d);
  return running;
}

char Process::thread_state(pid_t pid, pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];  // the state is within the first ~30 bytes after comm (at most 64 bytes)
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  return n > 0 ? state_in_stat(std::string_view(buf, static_cast<size_t>(n))) : 0;
}

}  // namespace hs
