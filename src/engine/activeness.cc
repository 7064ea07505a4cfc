// The activeness check (see activeness.h): libdw set up over a stopped
// process, each thread's stack unwound with every step re-derived from CFI,
// and the PC and return addresses compared with the guarded ranges.
#include "engine/activeness.h"

#include <elfutils/libdwfl.h>
#include <libelf.h>
#include <sys/syscall.h>

#include <array>
#include <cstdlib>
#include <unordered_map>

#include "arch/x86_64.h"
#include "engine/dwarf_expr.h"
#include "engine/placement.h"
#include "process/named_memfd.h"
#include "engine/unwind_elf.h"

namespace hs {

using PayloadCode = ActivenessChecker::PayloadCode;

// ---- libdw session -----------------------------------------------------------
//
// Modules come from /proc/PID/maps (dwfl_linux_proc_report), plus a file of
// our own for each payload. Thread state comes from us, not from libdw's
// ptrace attach: the registers ThreadGroup read at the stop, and memory
// through /proc/PID/mem. That also lets a thread start its unwind one frame
// up where its innermost frame has no CFI but its caller is known exactly
// (see clone_parent_start).

namespace {

constexpr int kDwarfRegs = x86_64::kDwarfGeneralRegs;
constexpr unsigned kDwarfSp = x86_64::kDwarfRsp;
constexpr unsigned kDwarfPc = x86_64::kDwarfReturnAddress;

// Where one thread's unwind starts.
struct ThreadStart {
  pid_t tid = 0;
  std::array<std::optional<u64>, kDwarfRegs> regs;  // [16] is the PC
  bool from_caller = false;  // regs are frame #1's: frame #0 was stepped over here
  u64 frame0_pc = 0;         // frame #0's PC then, for messages
};

std::array<std::optional<u64>, kDwarfRegs> dwarf_regs(const user_regs_struct& r) {
  return {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
          r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
}

// Target memory as the unwinder reads it: whole pages, each read once per
// check. An unwind reads a few words per frame, mostly on one or two stack
// pages; one pread per page instead of one per word is most of what makes
// the check fast. Valid while the threads stay stopped: cleared by check().
class PageCache {
 public:
  explicit PageCache(const Process& proc) : proc_(proc) {}
  void clear() { pages_.clear(); }
  std::optional<u64> u64_at(u64 addr) {
    u8 buf[8];
    for (int i = 0; i < 8; i++) {
      const Bytes* page = get(addr + i);
      if (!page) return std::nullopt;
      buf[i] = (*page)[(addr + i) & (kPage - 1)];
    }
    return load_le<u64>(buf);
  }

 private:
  static constexpr u64 kPage = x86_64::kPageSize;
  const Bytes* get(u64 addr) {
    u64 base = addr & ~(kPage - 1);
    auto it = pages_.find(base);
    if (it == pages_.end()) {
      auto bytes = proc_.read(RemoteAddr(base), kPage);
      it = pages_.emplace(base, bytes ? std::optional<Bytes>(std::move(*bytes)) : std::nullopt).first;
    }
    return it->second ? &*it->second : nullptr;
  }
  const Process& proc_;
  std::unordered_map<u64, std::optional<Bytes>> pages_;  // nullopt: unreadable
};

// What libdw's thread callbacks see (their dwfl_arg).
struct ThreadSource {
  PageCache* mem = nullptr;
  std::vector<ThreadStart> starts;  // the threads of the check under way
};

}  // namespace

struct ActivenessChecker::Dw {
  Dwfl_Callbacks callbacks{};
  Dwfl_Thread_Callbacks thread_callbacks{};
  char* debuginfo_path = nullptr;
  Dwfl* dwfl = nullptr;
  ThreadSource threads;
  std::unique_ptr<PageCache> mem;
  ~Dw() {
    if (dwfl) dwfl_end(dwfl);
  }
};

namespace {

// A payload's module carries its PayloadCode as userdata (set in prepare);
// every other module is found the standard way (files, or the vDSO from
// memory).
int find_elf(Dwfl_Module* mod, void** userdata, const char* name, Dwarf_Addr base, char** file_name, Elf** elfp) {
  if (*userdata) {
    auto* p = static_cast<PayloadCode*>(*userdata);
    *elfp = elf_memory(reinterpret_cast<char*>(p->unwind_elf.data()), p->unwind_elf.size());
    return -1;
  }
  return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

int attach_payload(Dwfl_Module*, void** userdata, const char* name, Dwarf_Addr start, void* arg) {
  for (const auto& p : *static_cast<std::vector<std::unique_ptr<PayloadCode>>*>(arg))
    if (!p->unwind_elf.empty() && start == p->range.begin.value() &&
        is_memfd_named(name, payload_mapping_name(p->name)))
      *userdata = p.get();
  return DWARF_CB_OK;
}

// Opens each object and reads its CFI now, while the process runs (the
// separate debug file only for an object without .eh_frame: see cfi_frame).
int preload(Dwfl_Module* mod, void**, const char*, Dwarf_Addr, void*) {
  Dwarf_Addr bias;
  if (dwfl_module_getelf(mod, &bias) && !dwfl_module_eh_cfi(mod, &bias)) (void)dwfl_module_dwarf_cfi(mod, &bias);
  return DWARF_CB_OK;
}

pid_t next_thread(Dwfl*, void* arg, void** thread_argp) {
  auto* dw = static_cast<ThreadSource*>(arg);
  auto* cur = static_cast<ThreadStart*>(*thread_argp);
  size_t i = cur ? static_cast<size_t>(cur - dw->starts.data()) + 1 : 0;
  if (i >= dw->starts.size()) return 0;
  *thread_argp = &dw->starts[i];
  return dw->starts[i].tid;
}

bool get_thread(Dwfl*, pid_t tid, void* arg, void** thread_argp) {
  for (auto& s : static_cast<ThreadSource*>(arg)->starts) {
    if (s.tid == tid) {
      *thread_argp = &s;
      return true;
    }
  }
  return false;
}

bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
  auto v = static_cast<ThreadSource*>(arg)->mem->u64_at(addr);
  if (!v) return false;
  *result = *v;
  return true;
}

bool set_initial_registers(Dwfl_Thread* thread, void* thread_arg) {
  const auto* s = static_cast<const ThreadStart*>(thread_arg);
  for (int r = 0; r < kDwarfRegs; r++) {
    if (!s->regs[r]) continue;
    Dwarf_Word v = *s->regs[r];
    if (!dwfl_thread_state_registers(thread, r, 1, &v)) return false;
  }
  dwfl_thread_state_register_pc(thread, s->regs[kDwarfPc].value_or(0));
  return true;
}

}  // namespace

ActivenessChecker::ActivenessChecker(const Process& proc) : proc_(proc) {}
ActivenessChecker::~ActivenessChecker() = default;

void ActivenessChecker::add_payload(const PayloadRecord& p) {
  auto code = std::make_unique<PayloadCode>();
  code->name = p.name;
  code->range = p.range();
  if (p.eh_frame_size != 0 && p.eh_frame_offset <= p.size && p.eh_frame_size <= p.size - p.eh_frame_offset) {
    code->eh_frame_offset = p.eh_frame_offset;
    code->eh_frame_size = p.eh_frame_size;
  }
  for (const auto& f : p.funcs)
    if (f.new_addr != 0 && f.new_size != 0)
      code->replacements.emplace_back(RemoteRange{RemoteAddr(f.new_addr), RemoteAddr(f.new_addr + f.new_size)},
                                      f.name);
  payloads_.push_back(std::move(code));
}

Status ActivenessChecker::prepare() {
  if (dw_) return {};
  // A payload whose .eh_frame cannot be read gets no file: frames in it then
  // count as unreliable.
  for (auto& p : payloads_) {
    if (p->eh_frame_size == 0 || !p->unwind_elf.empty()) continue;
    auto eh = proc_.read(p->range.begin + static_cast<i64>(p->eh_frame_offset), p->eh_frame_size);
    if (eh) p->unwind_elf = payload_unwind_elf(p->range.size(), p->eh_frame_offset, *eh);
  }

  elf_version(EV_CURRENT);
  auto dw = std::make_unique<Dw>();
  dw->mem = std::make_unique<PageCache>(proc_);
  dw->threads.mem = dw->mem.get();
  dw->callbacks.find_elf = find_elf;
  dw->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
  dw->callbacks.debuginfo_path = &dw->debuginfo_path;
  dw->thread_callbacks.next_thread = next_thread;
  dw->thread_callbacks.get_thread = get_thread;
  dw->thread_callbacks.memory_read = memory_read;
  dw->thread_callbacks.set_initial_registers = set_initial_registers;
  dw->dwfl = dwfl_begin(&dw->callbacks);
  if (!dw->dwfl) return fail(ErrorKind::Internal, "libdw: {}", dwfl_errmsg(-1));
  int err = dwfl_linux_proc_report(dw->dwfl, proc_.pid());
  if (err != 0 || dwfl_report_end(dw->dwfl, nullptr, nullptr) != 0)
    return fail(ErrorKind::Internal, "libdw cannot read the modules of PID {}: {}", proc_.pid(),
                err > 0 ? errno_text(err) : dwfl_errmsg(-1));
  if (dwfl_getmodules(dw->dwfl, attach_payload, &payloads_, 0) != 0)
    return fail(ErrorKind::Internal, "libdw cannot list the modules of PID {}: {}", proc_.pid(), dwfl_errmsg(-1));
  if (!dwfl_attach_state(dw->dwfl, nullptr, proc_.pid(), &dw->thread_callbacks, &dw->threads))
    return fail(ErrorKind::Internal, "libdw cannot unwind PID {}: {}", proc_.pid(), dwfl_errmsg(-1));
  // After the attach: libdw reads a "(deleted)" library (replaced on disk
  // since it was mapped) from the process's memory, which needs its PID.
  (void)dwfl_getmodules(dw->dwfl, preload, nullptr, 0);
  dw_ = std::move(dw);
  return {};
}

// ---- checking each step of the unwind -----------------------------------------
//
// libdw steps from a frame to its caller with CFI, but when that fails (no
// CFI covers the PC, or it leads to unreadable memory) it silently falls back
// to following frame pointers, which code built without them turns into
// garbage. So every step is checked: for frame k the caller's PC and stack
// pointer are computed here from frame k's CFI rules and registers, and frame
// k + 1 as libdw reports it must match. A step that cannot be computed, or
// does not match, makes the unwind unreliable.

namespace {


// Evaluates the DWARF expressions CFI uses, over one frame's registers and
// target memory.
class CfiEval {
 public:
  CfiEval(DwarfRegReader reg, PageCache& mem) : reg_(std::move(reg)), mem_(mem) {}

  std::optional<u64> reg(unsigned regno) const { return reg_(regno); }
  std::optional<u64> mem(u64 addr) const { return mem_.u64_at(addr); }

  // An expression's value (dwarf_expr.h) over this frame.
  std::optional<DwarfValue> eval(const Dwarf_Op* ops, size_t nops, std::optional<u64> cfa) const {
    return eval_dwarf_expr(std::span<const Dwarf_Op>(ops, nops), cfa, reg_,
                           [this](u64 addr) { return mem(addr); });
  }

  // The CFA by the rules of `fr`.
  std::optional<u64> cfa(Dwarf_Frame* fr) const {
    Dwarf_Op* ops = nullptr;
    size_t nops = 0;
    if (dwarf_frame_cfa(fr, &ops, &nops) != 0 || nops == 0) return std::nullopt;
    auto v = eval(ops, nops, std::nullopt);
    if (!v) return std::nullopt;
    return v->value;
  }

  // The caller's value of `regno` by the rules of `fr`: nullopt if it cannot
  // be computed, `undefined` set if CFI says it is not recoverable.
  std::optional<u64> caller_reg(Dwarf_Frame* fr, int regno, u64 cfa, bool* undefined) const {
    Dwarf_Op mem_ops[3];
    Dwarf_Op* ops = nullptr;
    size_t nops = 0;
    *undefined = false;
    if (dwarf_frame_register(fr, regno, mem_ops, &ops, &nops) != 0) return std::nullopt;
    if (nops == 0) {
      if (ops == mem_ops) {
        *undefined = true;
        return std::nullopt;
      }
      return reg(static_cast<unsigned>(regno));  // same value
    }
    auto v = eval(ops, nops, cfa);
    if (!v) return std::nullopt;
    if (v->is_value) return v->value;
    return mem(v->value);
  }

 private:
  DwarfRegReader reg_;
  PageCache& mem_;
};

DwarfRegReader frame_regs(Dwfl_Frame* frame) {
  return [frame](unsigned regno) -> std::optional<u64> {
    Dwarf_Word v;
    if (dwfl_frame_reg(frame, regno, &v) != 0) return std::nullopt;
    return v;
  };
}

// What frame k's CFI says frame k + 1 is.
struct Expected {
  bool end = false;       // the return address is undefined (or 0): the outermost frame
  u64 pc = 0;
  std::optional<u64> sp;  // unknown if CFI leaves it undefined
};

std::optional<Expected> expected_caller(const CfiEval& ev, Dwarf_Frame* fr) {
  int ra = dwarf_frame_info(fr, nullptr, nullptr, nullptr);
  if (ra < 0) return std::nullopt;
  std::optional<u64> cfa = ev.cfa(fr);
  if (!cfa) return std::nullopt;
  bool undefined = false;
  std::optional<u64> pc = ev.caller_reg(fr, ra, *cfa, &undefined);
  if (undefined || (pc && *pc == 0)) return Expected{true, 0, std::nullopt};  // libdw ends here too
  if (!pc) return std::nullopt;
  Expected e{false, *pc, std::nullopt};
  e.sp = ev.caller_reg(fr, kDwarfSp, *cfa, &undefined);
  if (!e.sp && !undefined) return std::nullopt;
  return e;
}

// The CFI describing the code at `probe`, as a malloc'd frame, or null. Its
// addresses are the object's: add *bias for the process's. .eh_frame first,
// as libdw does; .debug_frame only for an object without .eh_frame (finding
// it means reading the separate debug file, often compressed: tens of
// milliseconds that must not be spent in the stop window for nothing).
Dwarf_Frame* cfi_frame(Dwfl_Module* mod, Dwarf_Addr probe, Dwarf_Addr* bias = nullptr) {
  if (!mod) return nullptr;
  Dwarf_Addr b = 0;
  Dwarf_CFI* cfi = dwfl_module_eh_cfi(mod, &b);
  if (!cfi) cfi = dwfl_module_dwarf_cfi(mod, &b);
  if (!cfi) return nullptr;
  Dwarf_Frame* frame = nullptr;
  if (dwarf_cfi_addrframe(cfi, probe - b, &frame) != 0) {
    std::free(frame);
    return nullptr;
  }
  if (bias) *bias = b;
  return frame;
}

using FramePtr = std::unique_ptr<Dwarf_Frame, decltype(&std::free)>;

// "the replacement for 'hello' in payload 'fix'", "payload 'fix'".
std::optional<std::string> payload_place(const std::vector<std::unique_ptr<PayloadCode>>& payloads, RemoteAddr a) {
  for (const auto& p : payloads) {
    if (!p->range.contains(a)) continue;
    for (const auto& [r, fn] : p->replacements)
      if (r.contains(a)) return fmt::format("the replacement for '{}' in payload '{}'", fn, p->name);
    return fmt::format("payload '{}'", p->name);
  }
  return std::nullopt;
}

// Where code is: the payload, or the function and object.
std::string code_place(const std::vector<std::unique_ptr<PayloadCode>>& payloads, Dwfl* dwfl, Dwarf_Addr probe) {
  if (auto p = payload_place(payloads, RemoteAddr(probe))) return *p;
  Dwfl_Module* mod = dwfl_addrmodule(dwfl, probe);
  if (!mod) return "memory that belongs to no mapped object";
  const char* obj = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  const char* fn = dwfl_module_addrname(mod, probe);
  std::string o = obj ? obj : "an unnamed object";
  return fn ? fmt::format("function '{}' of {}", fn, o) : o;
}

// A thread stopped where clone() returns 0 to it, before it has run an
// instruction: its stack was just given to it and holds no frames (glibc's
// clone code there has no CFI on purpose: the parent's would be wrong). Only
// its PC matters. orig_rax keeps the number of the last system call entered
// and is overwritten by any other kernel entry (an interrupt or exception
// sets -1, a system call its number), and stopping a thread takes a kernel
// entry, so with rax 0 it identifies exactly this moment.
bool is_new_thread(const user_regs_struct& r) {
  return r.rax == 0 && (r.orig_rax == SYS_clone || r.orig_rax == SYS_clone3);
}

// The thread that called clone(), stopped right after the system call
// returned to it (ThreadGroup stops it there when it reports the new
// thread). glibc ends the FDE of clone/clone3 just before the `syscall`, so
// the PC has no CFI, but the state is exactly that of the preceding
// instruction, which the FDE's last row describes: checked byte for byte
// (`mov $NR, %eax; syscall`, NR the system call orig_rax says was made). The
// unwind then starts from the caller that row gives.
std::optional<ThreadStart> clone_parent_start(const TracedThread& t, Dwfl* dwfl, const Process& proc,
                                              PageCache& mem) {
  const user_regs_struct& r = t.regs;
  constexpr u64 kCall = x86_64::kMovEaxSyscallSize;
  if (r.rax == 0 || (r.orig_rax != SYS_clone && r.orig_rax != SYS_clone3) || r.rip < kCall) return std::nullopt;
  Dwfl_Module* mod = dwfl_addrmodule(dwfl, r.rip);
  if (!mod) return std::nullopt;
  if (FramePtr at_pc(cfi_frame(mod, r.rip), &std::free); at_pc) return std::nullopt;  // CFI: the normal path
  auto code = proc.read(RemoteAddr(r.rip - kCall), kCall);
  if (!code || !x86_64::is_mov_eax_syscall(*code, r.orig_rax)) return std::nullopt;
  Dwarf_Addr bias = 0, start = 0, end = 0;
  FramePtr fr(cfi_frame(mod, r.rip - kCall, &bias), &std::free);
  if (!fr) return std::nullopt;
  if (dwarf_frame_info(fr.get(), &start, &end, nullptr) < 0 || end + bias < r.rip - x86_64::kSyscallSize)
    return std::nullopt;
  auto regs = dwarf_regs(r);
  CfiEval ev([&regs](unsigned n) { return n < regs.size() ? regs[n] : std::nullopt; }, mem);
  std::optional<u64> cfa = ev.cfa(fr.get());
  if (!cfa) return std::nullopt;
  ThreadStart s;
  s.tid = t.tid;
  s.from_caller = true;
  s.frame0_pc = r.rip;
  for (int n = 0; n < kDwarfRegs; n++) {
    bool undefined = false;
    s.regs[n] = ev.caller_reg(fr.get(), n == kDwarfPc ? dwarf_frame_info(fr.get(), nullptr, nullptr, nullptr) : n,
                              *cfa, &undefined);
    if (!s.regs[n] && !undefined) return std::nullopt;
  }
  if (!s.regs[kDwarfPc] || *s.regs[kDwarfPc] == 0) return std::nullopt;
  return s;
}

struct WalkState {
  Dwfl* dwfl;
  PageCache* mem;
  std::span<const GuardedRange> ranges;
  const std::vector<std::unique_ptr<PayloadCode>>* payloads;
  const ThreadStart* start;
  std::optional<UnsafeThread> found;
  int depth = 0;
  std::optional<Expected> expect;  // from the previous frame's CFI
  // The previous frame, for messages (named only when one is needed: naming
  // reads symbol tables, which has no place in the stop window otherwise).
  Dwarf_Addr prev_pc = 0, prev_probe = 0;
  bool prev_is_pc = false;

  // "pc 0x... in function 'f' of /bin/x"
  std::string frame_text(Dwarf_Addr pc, Dwarf_Addr probe, bool is_pc) const {
    return fmt::format("{} {:#x} in {}", is_pc ? "pc" : "return address", pc, code_place(*payloads, dwfl, probe));
  }
  std::string prev_text() const { return frame_text(prev_pc, prev_probe, prev_is_pc); }
};

int unreliable(WalkState* w, RemoteAddr addr, bool is_pc, std::string where, std::string why) {
  w->found = UnsafeThread{w->start->tid, addr, is_pc, std::move(where), w->depth, std::move(why)};
  return DWARF_CB_ABORT;
}

int on_frame(Dwfl_Frame* frame, void* arg) {
  auto* w = static_cast<WalkState*>(arg);
  Dwarf_Addr pc;
  bool activation = false;
  const bool is_pc = w->depth == 0;
  if (!dwfl_frame_pc(frame, &pc, &activation))
    return unreliable(w, RemoteAddr(), is_pc, "",
                      fmt::format("libdw cannot read frame #{} ({})", w->depth, dwfl_errmsg(-1)));
  if (w->start->from_caller && w->expect == std::nullopt && w->depth == 1) activation = false;  // a return address
  // The step that led here must be the one CFI describes.
  if (w->expect) {
    Dwarf_Word sp = 0;
    bool sp_ok = !w->expect->sp || (dwfl_frame_reg(frame, kDwarfSp, &sp) == 0 && sp == *w->expect->sp);
    if (w->expect->end || pc != w->expect->pc || !sp_ok)
      return unreliable(w, RemoteAddr(pc), is_pc, "",
                        fmt::format("cannot find the caller of frame #{} ({}) through its unwind information",
                                    w->depth - 1, w->prev_text()));
  }
  // A return address points after the call; the call itself is at pc - 1
  // (which matters when the call is a function's last instruction).
  Dwarf_Addr probe = activation ? pc : pc - 1;
  for (const auto& g : w->ranges) {
    if (g.range.contains(RemoteAddr(probe))) {
      w->found = UnsafeThread{w->start->tid, RemoteAddr(pc), is_pc,
                              payload_place(*w->payloads, RemoteAddr(probe)).value_or(g.what), w->depth, ""};
      return DWARF_CB_ABORT;
    }
  }
  if (w->depth + 1 >= ActivenessChecker::kMaxFrames)
    return unreliable(w, RemoteAddr(), false, "",
                      fmt::format("it is more than {} frames deep", ActivenessChecker::kMaxFrames));
  // The caller of this frame is only as good as the CFI that finds it.
  FramePtr fr(cfi_frame(dwfl_addrmodule(w->dwfl, probe), probe), &std::free);
  if (!fr)
    return unreliable(w, RemoteAddr(pc), is_pc, code_place(*w->payloads, w->dwfl, probe),
                      fmt::format("no unwind information for frame #{} ({})", w->depth,
                                  w->frame_text(pc, probe, is_pc)));
  w->expect = expected_caller(CfiEval(frame_regs(frame), *w->mem), fr.get());
  if (!w->expect)
    return unreliable(w, RemoteAddr(pc), is_pc, code_place(*w->payloads, w->dwfl, probe),
                      fmt::format("cannot find the caller of frame #{} ({}) through its unwind information", w->depth,
                                  w->frame_text(pc, probe, is_pc)));
  w->prev_pc = pc;
  w->prev_probe = probe;
  w->prev_is_pc = is_pc;
  w->depth++;
  return DWARF_CB_OK;
}

}  // namespace

Result<std::optional<UnsafeThread>> ActivenessChecker::check(ThreadGroup& group,
                                                              std::span<const GuardedRange> ranges,
                                                              std::vector<pid_t>* checked) {
  auto skip = [&](const TracedThread& t) {
    return !t.stopped || (checked && std::ranges::find(*checked, t.tid) != checked->end());
  };
  // The PC check needs no unwinding: do it first for every thread.
  for (const auto& t : group.threads()) {
    if (skip(t)) continue;
    RemoteAddr pc(t.regs.rip);
    for (const auto& g : ranges)
      if (g.range.contains(pc))
        return UnsafeThread{t.tid, pc, true, payload_place(payloads_, pc).value_or(g.what), 0, ""};
  }
  HS_CHECK(prepare());
  // Memory may have changed since the last check (in a stop in waves, the
  // second wave was running during the first one's).
  dw_->mem->clear();
  dw_->threads.starts.clear();
  std::vector<pid_t> now;
  for (const auto& t : group.threads()) {
    if (skip(t)) continue;
    now.push_back(t.tid);
    if (is_new_thread(t.regs)) continue;
    if (auto s = clone_parent_start(t, dw_->dwfl, proc_, *dw_->mem)) {
      dw_->threads.starts.push_back(std::move(*s));
      continue;
    }
    ThreadStart s;
    s.tid = t.tid;
    s.regs = dwarf_regs(t.regs);
    dw_->threads.starts.push_back(std::move(s));
  }
  for (const auto& s : dw_->threads.starts) {
    WalkState w{dw_->dwfl, dw_->mem.get(), ranges, &payloads_, &s, std::nullopt};
    if (s.from_caller) {
      w.depth = 1;
      w.prev_pc = w.prev_probe = s.frame0_pc;
      w.prev_is_pc = true;
    }
    int r = dwfl_getthread_frames(dw_->dwfl, s.tid, on_frame, &w);
    const std::string libdw_error = r != 0 ? dwfl_errmsg(-1) : "";
    if (w.found) return w.found;
    if (r != 0)
      return UnsafeThread{s.tid, RemoteAddr(), false, "", w.depth,
                          w.depth == 0 ? fmt::format("libdw cannot unwind it ({})", libdw_error)
                                       : fmt::format("libdw stopped after frame #{} ({}): {}", w.depth - 1,
                                                     w.prev_text(), libdw_error)};
    // libdw ends a stack only where CFI says there is no caller.
    if (w.expect && !w.expect->end)
      return UnsafeThread{s.tid, RemoteAddr(), false, "", w.depth,
                          fmt::format("libdw stopped after frame #{} ({}), which has a caller", w.depth - 1,
                                      w.prev_text())};
  }
  if (checked) checked->insert(checked->end(), now.begin(), now.end());
  return std::optional<UnsafeThread>();
}

std::string describe_unsafe(const UnsafeThread& u) {
  if (!u.unreliable.empty())
    return fmt::format("the stack of thread {} cannot be unwound reliably: {}", u.tid, u.unreliable);
  return fmt::format("thread {} {} {} ({} {}, frame #{})", u.tid, u.is_pc ? "is executing in" : "will return into",
                     u.what, u.is_pc ? "pc" : "return address", u.addr, u.depth);
}

}  // namespace hs
