#include "engine/safety.h"

#include <elfutils/libdwfl.h>

namespace hs {

struct ActivenessChecker::Dw {
  Dwfl_Callbacks callbacks{};
  char* debuginfo_path = nullptr;
  Dwfl* dwfl = nullptr;
  ~Dw() {
    if (dwfl) dwfl_end(dwfl);
  }
};

ActivenessChecker::ActivenessChecker(const Process& proc) : proc_(proc) {}
ActivenessChecker::~ActivenessChecker() = default;

Status ActivenessChecker::prepare() {
  if (dw_) return {};
  auto dw = std::make_unique<Dw>();
  dw->callbacks.find_elf = dwfl_linux_proc_find_elf;
  dw->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
  dw->callbacks.debuginfo_path = &dw->debuginfo_path;
  dw->dwfl = dwfl_begin(&dw->callbacks);
  if (!dw->dwfl) return fail(ErrorKind::Internal, "libdw: {}", dwfl_errmsg(-1));
  int err = dwfl_linux_proc_report(dw->dwfl, proc_.pid());
  if (err != 0 || dwfl_report_end(dw->dwfl, nullptr, nullptr) != 0)
    return fail(ErrorKind::Internal, "libdw cannot read the modules of PID {}: {}", proc_.pid(),
                err > 0 ? errno_text(err) : dwfl_errmsg(-1));
  // The threads are already ptrace-stopped by us: libdw must not attach.
  err = dwfl_linux_proc_attach(dw->dwfl, proc_.pid(), true);
  if (err != 0)
    return fail(ErrorKind::Internal, "libdw cannot attach to PID {}: {}", proc_.pid(),
                err > 0 ? errno_text(err) : dwfl_errmsg(-1));
  dw_ = std::move(dw);
  return {};
}

namespace {

struct WalkState {
  Dwfl* dwfl;
  std::span<const GuardedRange> ranges;
  std::optional<UnsafeThread> found;
  pid_t tid;
  int depth = 0;
};

int on_frame(Dwfl_Frame* frame, void* arg) {
  auto* w = static_cast<WalkState*>(arg);
  Dwarf_Addr pc;
  bool activation = false;
  if (!dwfl_frame_pc(frame, &pc, &activation)) {
    w->found = UnsafeThread{w->tid, RemoteAddr(), w->depth == 0, fmt::format("an unreadable frame ({})", dwfl_errmsg(-1)), w->depth};
    return DWARF_CB_ABORT;
  }
  // A return address points after the call; the call itself is at pc - 1
  // (which matters when the call is a function's last instruction).
  Dwarf_Addr probe = activation ? pc : pc - 1;
  for (const auto& g : w->ranges) {
    if (g.range.contains(RemoteAddr(probe))) {
      w->found = UnsafeThread{w->tid, RemoteAddr(pc), w->depth == 0, g.what, w->depth};
      return DWARF_CB_ABORT;
    }
  }
  // Beyond this frame libdw needs CFI of the module holding pc; without a
  // module it would guess from frame pointers, which we do not trust.
  if (!dwfl_addrmodule(w->dwfl, probe)) {
    w->found = UnsafeThread{w->tid, RemoteAddr(pc), w->depth == 0,
                            "code with no unwind information (the stack beyond it cannot be checked)", w->depth};
    return DWARF_CB_ABORT;
  }
  if (++w->depth >= ActivenessChecker::kMaxFrames) {
    w->found = UnsafeThread{w->tid, RemoteAddr(pc), false,
                            fmt::format("a stack deeper than {} frames", ActivenessChecker::kMaxFrames), w->depth};
    return DWARF_CB_ABORT;
  }
  return DWARF_CB_OK;
}

}  // namespace

Result<std::optional<UnsafeThread>> ActivenessChecker::check(ThreadGroup& group,
                                                              std::span<const GuardedRange> ranges) {
  // The PC check needs no unwinding: do it first for every thread.
  for (const auto& t : group.threads()) {
    if (!t.stopped) continue;
    RemoteAddr pc(t.regs.rip);
    for (const auto& g : ranges)
      if (g.range.contains(pc)) return UnsafeThread{t.tid, pc, true, g.what, 0};
  }
  HS_CHECK(prepare());
  for (const auto& t : group.threads()) {
    if (!t.stopped) continue;
    WalkState w{dw_->dwfl, ranges, std::nullopt, t.tid};
    int r = dwfl_getthread_frames(dw_->dwfl, t.tid, on_frame, &w);
    if (w.found) return w.found;
    if (r != 0)
      return UnsafeThread{t.tid, RemoteAddr(), false, fmt::format("an unreliable stack (libdw: {})", dwfl_errmsg(-1)),
                          w.depth};
  }
  return std::optional<UnsafeThread>();
}

std::string describe_unsafe(const UnsafeThread& u) {
  if (u.addr.is_null()) return fmt::format("thread {} has {}", u.tid, u.what);
  return fmt::format("thread {} {} {} ({} {}, frame #{})", u.tid, u.is_pc ? "is executing in" : "will return into",
                     u.what, u.is_pc ? "pc" : "return address", u.addr, u.depth);
}

}  // namespace hs
