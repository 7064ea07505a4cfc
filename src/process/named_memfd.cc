// Named memfds in a target, made with remote system calls on a borrowed
// thread: the registry, every payload image and the recovery trampoline are
// such mappings, and their names are how a later invocation knows them.
#include "process/named_memfd.h"

#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace hs {

Result<RemoteAddr> map_named_memfd(const Process& proc, RemoteSyscalls& rs, const TracedThread& t,
                                   std::string_view name, RemoteAddr hint, u64 size, int prot, int flags) {
  // The name goes on the borrowed thread's stack, well below its red zone:
  // memory the thread is not using (a signal frame would land there).
  RemoteAddr name_at((t.regs.rsp - 1024) & ~u64{15});
  std::string z(name);
  HS_CHECK(proc.write(name_at, ByteView(reinterpret_cast<const u8*>(z.c_str()), z.size() + 1)));
  // Executable memfds must say so on kernels that know MFD_EXEC (6.3+).
  unsigned flags_mfd = MFD_CLOEXEC | (prot & PROT_EXEC ? MFD_EXEC : 0);
  long fd = HS_TRY(rs.syscall(SYS_memfd_create, name_at.value(), flags_mfd));
  if (fd == -EINVAL && (flags_mfd & MFD_EXEC)) fd = HS_TRY(rs.syscall(SYS_memfd_create, name_at.value(), MFD_CLOEXEC));
  if (fd < 0) return std::unexpected(rs.failure(fd, fmt::format("memfd_create in PID {} failed", proc.pid())));
  // From here the fd is closed whatever happens (a call the seccomp filter
  // refuses is an error like any other), and a mapping made is undone if
  // the fd cannot be closed: nothing half-made stays in the process.
  auto map = [&]() -> Result<RemoteAddr> {
    long r = HS_TRY(rs.syscall(SYS_ftruncate, fd, size));
    if (r < 0) return std::unexpected(rs.failure(r, fmt::format("ftruncate of a memfd in PID {} failed", proc.pid())));
    return rs.mmap(hint, size, prot, flags, static_cast<int>(fd), 0);
  };
  Result<RemoteAddr> mapped = map();
  if (!mapped && mapped.error().kind() == ErrorKind::TargetGone) return mapped;
  auto closed = rs.syscall(SYS_close, fd);
  if (!closed) {
    if (mapped) (void)rs.syscall(SYS_munmap, mapped->value(), size);
    return std::unexpected(std::move(closed.error()).consequence(fmt::format("fd {} stays open in PID {}", fd, proc.pid())));
  }
  return mapped;
}

bool is_memfd_named(std::string_view path, std::string_view name) {
  if (!path.starts_with("/memfd:")) return false;
  path.remove_prefix(7);
  if (path.ends_with(" (deleted)")) path.remove_suffix(10);
  return path == name;
}

}  // namespace hs
