#include "engine/engine.h"

#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "arch/x86_64.h"
#include "payload/loader.h"
#include "payload/payload.h"
#include "engine/call_sites.h"
#include "process/named_memfd.h"
#include "process/remote_call.h"
#include "process/remote_syscall.h"

namespace hs {

// ---- fault injection ------------------------------------------------------

namespace {

pid_t fault_target_pid = 0;  // the process of the last Session::open

// HOTSPLICE_FAULT_KILL_TARGET: SIGKILLs the target, then waits (at most 5 s)
// until none of its threads runs any more, so that what the tool does next
// meets a dead process every time, not one still dying.
void kill_target(pid_t pid) {
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 5000 && Process::any_thread_running(pid); i++) ::usleep(1000);
}

}  // namespace

void fault_point(const char* name) {
  static const long target = [] {
    const char* s = std::getenv("HOTSPLICE_FAULT_STEP");
    return s ? std::atol(s) : 0L;
  }();
  static const long kill_at = [] {
    const char* s = std::getenv("HOTSPLICE_FAULT_KILL_TARGET");
    return s ? std::atol(s) : 0L;
  }();
  static const bool list = std::getenv("HOTSPLICE_FAULT_LIST") != nullptr;
  static long reached = 0;
  reached++;
  if (list) fmt::print(stderr, "hotsplice: fault point {} {}\n", reached, name);
  if (reached == target) raise(SIGKILL);
  if (reached == kill_at && fault_target_pid > 0) kill_target(fault_target_pid);
}

// ---- phase timings (HOTSPLICE_TIMING=1, read by bench/) -------------------

namespace {

// Prints "hotsplice: timing WHAT name=ns ..." on stderr when it goes out of
// scope, if HOTSPLICE_TIMING is set. A name marked twice (a retry) keeps its
// last value for readers that use a map.

}  // namespace

// Phase timings of one operation, printed to stderr with HOTSPLICE_TIMING=1
// (used by bench/ to see where the time goes).
class PhaseTimer {
 public:
  explicit PhaseTimer(const char* what) : what_(what), last_(now()) {}
  ~PhaseTimer() {
    if (enabled()) fmt::print(stderr, "hotsplice: timing {}{}\n", what_, line_);
  }
  static bool enabled() {
    static const bool on = std::getenv("HOTSPLICE_TIMING") != nullptr;
    return on;
  }
  static long long now() {  // CLOCK_MONOTONIC ns
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  long long last() const { return last_; }
  void mark(const char* name) {  // name = time since the previous mark
    long long t = now();
    put(name, t - last_);
    last_ = t;
  }
  void put(const char* name, long long v) {
    if (enabled()) line_ += fmt::format(" {}={}", name, v);
  }

 private:
  const char* what_;
  long long last_;
  std::string line_;
};

// ---- symbol resolution against a live process -----------------------------

namespace {

// An indirect function's symbol is its resolver, which picks an
// implementation for this CPU. The tool runs on the same machine: if it has
// the same library (same build-id) loaded, the implementation its own dynamic
// linker picked sits at the same offset in the target's copy.
Result<TargetSymbol> resolve_ifunc(const MappedObject& obj, std::string_view name, const TargetSymbol& sym) {
  static const auto self = []() -> std::optional<std::vector<MappedObject>> {
    auto me = Process::open(getpid());
    if (!me) return std::nullopt;
    auto objs = mapped_objects(*me);
    if (!objs) return std::nullopt;
    return std::move(*objs);
  }();
  if (self) {
    for (const auto& mine : *self) {
      if (mine.build_id != obj.build_id) continue;
      void* impl = dlsym(RTLD_DEFAULT, std::string(name).c_str());
      RemoteAddr at(reinterpret_cast<u64>(impl));
      if (impl && mine.span.contains(at)) {
        TargetSymbol out = sym;
        out.addr = obj.bias + (at - mine.bias);
        out.type = STT_FUNC;
        return out;
      }
    }
  }
  return fail(ErrorKind::BadTarget,
              "symbol '{}' in {} is an indirect function (STT_GNU_IFUNC) and hotsplice cannot resolve it (the tool "
              "does not have the same {} loaded)",
              name, obj.path, obj.path);
}

class ProcessResolver final : public SymbolResolver {
 public:
  ProcessResolver(const MappedObject& target, const std::vector<MappedObject>& objs, const RegistryState& state)
      : target_(target), objs_(objs), state_(state) {}

  Result<TargetSymbol> resolve_function(std::string_view name) override {
    auto syms = HS_TRY(target_.symbols());
    return syms->lookup(name);
  }

  Result<TargetSymbol> resolve_symbol(std::string_view name) override {
    // Linux's ".klp.sym.OBJ.NAME,POS" names the object itself.
    if (name.starts_with(".klp.sym.")) {
      std::string_view rest = name.substr(9);
      for (const auto& o : objs_) {
        std::string_view base = basename(o.path);
        if (rest.starts_with(base) && rest.size() > base.size() && rest[base.size()] == '.') {
          auto syms = HS_TRY(o.symbols());
          return syms->lookup(name);
        }
      }
      return fail(ErrorKind::BadTarget, "unresolved symbol '{}': no such object is mapped", name);
    }
    // 1. the target object, locals included
    auto syms = HS_TRY(target_.symbols());
    auto own = syms->lookup(name);
    if (own && own->type == STT_GNU_IFUNC) return resolve_ifunc(target_, name, *own);
    if (own) return own;
    if (own.error().message().find("ambiguous") != std::string::npos) return own;
    // 2. globals of payloads already loaded in this process, oldest first
    for (const auto& p : state_.payloads)
      for (const auto& [n, addr] : p.exports)
        if (n == name) return TargetSymbol{RemoteAddr(addr), 0, "payload '" + p.name + "'"};
    // 3. the other objects, in link-map order
    for (const auto& o : objs_) {
      if (&o == &target_) continue;
      auto os = o.symbols();
      if (!os) continue;  // an object we cannot read cannot provide symbols
      if (auto s = (*os)->lookup_global(name)) {
        if (s->type == STT_GNU_IFUNC) return resolve_ifunc(o, name, *s);
        return *s;
      }
    }
    return fail(ErrorKind::BadTarget, "unresolved symbol '{}'", name);
  }

 private:
  static std::string_view basename(std::string_view p) {
    auto slash = p.rfind('/');
    return slash == std::string_view::npos ? p : p.substr(slash + 1);
  }
  const MappedObject& target_;
  const std::vector<MappedObject>& objs_;
  const RegistryState& state_;
};

// Where to map a payload: inside a free gap of the address space such that
// every byte of it is within a rel32 reach of every byte of the target object
// (so `jmp rel32` from the old code and PC-relative data references to the
// object's globals both reach). Below the object first: above an executable
// sits its heap, which must stay free to grow.
Result<RemoteAddr> choose_base(const std::vector<MapEntry>& maps, RemoteRange object, u64 size) {
  constexpr u64 kPage = 4096, kGuard = 16 * kPage, kReach = (1ull << 31) - kPage;
  constexpr u64 kLowest = 1ull << 20;
  std::vector<RemoteRange> used;
  for (const auto& m : maps) used.push_back(m.range);
  std::sort(used.begin(), used.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  auto fits = [&](u64 b) {
    u64 lo = std::min(b, object.begin.value()), hi = std::max(b + size, object.end.value());
    return hi - lo <= kReach;
  };
  // Gaps between mappings, as [start, end).
  std::vector<std::pair<u64, u64>> gaps;
  u64 prev = kLowest;
  for (const auto& r : used) {
    if (r.begin.value() > prev) gaps.emplace_back(prev, r.begin.value());
    prev = std::max(prev, r.end.value());
  }
  gaps.emplace_back(prev, 0x7ffffffff000ull);
  // Below the object: the highest base in a gap that ends at or below it.
  std::optional<u64> best;
  for (const auto& [g0, g1] : gaps) {
    if (g1 > object.begin.value()) continue;
    if (g1 - g0 < size + 2 * kGuard) continue;
    u64 b = (g1 - kGuard - size) & ~(kPage - 1);
    if (fits(b) && (!best || b > *best)) best = b;
  }
  if (best) return RemoteAddr(*best);
  // Above it: the top of the lowest gap that starts above it, away from
  // whatever sits at the gap's bottom (a heap grows upwards).
  for (const auto& [g0, g1] : gaps) {
    if (g0 < object.end.value()) continue;
    if (g1 - g0 < size + 2 * kGuard) continue;
    u64 top = std::min(g1, object.begin.value() + kReach);
    if (top < g0 + kGuard + size) continue;
    u64 b = (top - kGuard - size) & ~(kPage - 1);
    if (b >= g0 + kGuard && fits(b)) return RemoteAddr(b);
  }
  return fail(ErrorKind::BadTarget, "no free address range of {:#x} bytes within reach of {:#x}-{:#x}", size,
              object.begin.value(), object.end.value());
}

}  // namespace

// The memfd name of a payload's mapping: "/memfd:hotsplice:NAME" in maps.
static std::string mapping_name(std::string_view payload) { return fmt::format("hotsplice:{}", payload); }

// ---- planning: what bytes change, computed before anything stops ---------

// Target memory as it will be after the writes planned so far.
struct Overlay {
  const Process& proc;
  std::vector<JournalWrite> writes;

  Result<Bytes> read(u64 addr, size_t len) const {
    Bytes b = HS_TRY(proc.read(RemoteAddr(addr), len));
    for (const auto& w : writes) {
      for (size_t i = 0; i < w.after.size(); i++) {
        u64 a = w.addr + i;
        if (a >= addr && a < addr + len) b[a - addr] = w.after[i];
      }
    }
    return b;
  }
  void write(u64 addr, Bytes before, Bytes after) {
    writes.push_back(JournalWrite{addr, std::move(before), std::move(after)});
  }
};

struct Session::Plan {
  std::vector<JournalWrite> writes;  // in order
  std::vector<GuardedRange> guards;
  // (payload, function index, undo bytes) for functions switched on.
  std::vector<std::tuple<std::string, size_t, Bytes>> applied;
  std::vector<std::string> reverted;  // payloads a replace switches off
  // Apply/revert hooks run in the stop window right after the writes, in
  // order: (payload, hook).
  std::vector<std::pair<std::string, HookRecord>> action_hooks;
  // Detach straight from the stop window once committed (nothing after the
  // operation needs the threads held).
  bool detach_when_done = false;
};

Status Session::plan_apply(const PayloadRecord& p, Overlay& mem, Plan& plan) {
  for (size_t i = 0; i < p.funcs.size(); i++) {
    const FuncState& f = p.funcs[i];
    size_t span = std::max<size_t>(f.patch_offset + f.insn.size(), f.expect.size());
    Bytes cur = HS_TRY(mem.read(f.old_addr, span));
    if (!f.expect.empty() && !std::equal(f.expect.begin(), f.expect.end(), cur.begin()))
      return fail(ErrorKind::BadTarget, "payload '{}': function '{}': expected bytes {} at {:#x}, found {}", p.name,
                  f.name, to_hex(f.expect), f.old_addr, to_hex(ByteView(cur).first(f.expect.size())));
    Bytes undo(cur.begin() + f.patch_offset, cur.begin() + f.patch_offset + static_cast<long>(f.insn.size()));
    if (undo == f.insn)
      return fail(ErrorKind::BadTarget, "payload '{}': function '{}' at {:#x} already holds this patch", p.name,
                  f.name, f.old_addr);
    mem.write(f.site(), undo, f.insn);
    plan.applied.emplace_back(p.name, i, undo);
    plan.guards.push_back({{RemoteAddr(f.old_addr), RemoteAddr(f.old_addr + f.old_size)},
                           fmt::format("function '{}'", f.name)});
  }
  return {};
}

Status Session::plan_revert(const PayloadRecord& p, Overlay& mem, Plan& plan) {
  for (size_t i = p.funcs.size(); i-- > 0;) {
    const FuncState& f = p.funcs[i];
    Bytes cur = HS_TRY(mem.read(f.site(), f.insn.size()));
    if (cur != f.insn)
      return fail(ErrorKind::Internal, "payload '{}': function '{}' at {:#x} holds {}, not this payload's patch {}",
                  p.name, f.name, f.site(), to_hex(cur), to_hex(f.insn));
    mem.write(f.site(), cur, f.undo);
    plan.guards.push_back({{RemoteAddr(f.site()), RemoteAddr(f.site() + f.insn.size())},
                           fmt::format("the patched entry of function '{}'", f.name)});
  }
  for (const auto& r : p.regions)
    if (r.prot & PROT_EXEC)
      plan.guards.push_back({{RemoteAddr(p.base + r.offset), RemoteAddr(p.base + r.offset + r.size)},
                             fmt::format("the code of payload '{}'", p.name)});
  return {};
}

// Direct calls. Each call site of a function points where the function's
// entry leads once `mem`'s writes are made: the replacement of the payload
// whose jump is there, else the function itself (and always the function
// itself without redirect_calls, so that a site redirected earlier is put
// back rather than left pointing at code that may be unloaded). A site whose bytes are not
// a call to the function or to one of its replacements (something else
// wrote there) is left alone, as is one lying in bytes some payload patches
// or expects at a function entry: those bytes belong to the entry patches.
Status Session::plan_call_sites(std::span<const PayloadRecord* const> involved, Overlay& mem) {
  // Function -> its call sites, as recorded at upload by any payload that
  // replaces it (one that NOPs it out records none, but may be stacked on
  // one whose sites point at its replacement).
  const std::string& object = involved.front()->object_path;
  std::map<u64, std::vector<u64>> sites;
  for (const PayloadRecord* p : involved)
    for (const FuncState& f : p->funcs) sites.try_emplace(f.old_addr);
  for (const PayloadRecord& q : state_.payloads)
    if (q.object_path == object)
      for (const FuncState& g : q.funcs)
        if (auto it = sites.find(g.old_addr); it != sites.end())
          it->second.insert(it->second.end(), g.call_sites.begin(), g.call_sites.end());

  // Every function entry's patched or expected bytes, of any payload here.
  std::vector<RemoteRange> entries;
  for (const PayloadRecord& q : state_.payloads)
    if (q.object_path == object)
      for (const FuncState& g : q.funcs)
        entries.push_back({RemoteAddr(g.old_addr),
                           RemoteAddr(g.old_addr + std::max<u64>(g.patch_offset + g.insn.size(), g.expect.size()))});

  for (auto& [fn, list] : sites) {
    std::ranges::sort(list);
    list.erase(std::unique(list.begin(), list.end()), list.end());
    u64 dest = fn;
    std::vector<u64> known{fn};
    for (const PayloadRecord& q : state_.payloads) {
      if (q.object_path != object) continue;
      for (const FuncState& g : q.funcs) {
        if (g.old_addr != fn || g.new_addr == 0) continue;
        known.push_back(g.new_addr);
        if (opts_.redirect_calls && HS_TRY(mem.read(g.site(), g.insn.size())) == g.insn) dest = g.new_addr;
      }
    }
    for (const u64 site : list) {
      const RemoteRange bytes{RemoteAddr(site), RemoteAddr(site + 5)};
      if (std::ranges::any_of(entries, [&](const RemoteRange& e) { return e.overlaps(bytes); })) continue;
      const Bytes cur = HS_TRY(mem.read(site, 5));
      if (cur[0] != 0xE8 && cur[0] != 0xE9) continue;
      i32 rel;
      std::memcpy(&rel, cur.data() + 1, sizeof rel);
      const u64 now = site + 5 + static_cast<u64>(static_cast<int64_t>(rel));
      if (now == dest || std::ranges::find(known, now) == known.end()) continue;
      const auto want = call_displacement(site, dest);
      if (!want) continue;
      Bytes after(sizeof *want);
      std::memcpy(after.data(), &*want, sizeof *want);
      mem.write(site + 1, Bytes(cur.begin() + 1, cur.end()), std::move(after));
    }
  }
  return {};
}

// ---- the stop window -------------------------------------------------------

Status Session::execute(JournalOp op, std::string_view name, const Plan& plan) {
  Journal j;
  j.op = op;
  j.payload = std::string(name);
  j.tool_pid = static_cast<u64>(getpid());
  j.writes = plan.writes;
  PhaseTimer timer(op_name(op));
  state_.journal = std::move(j);
  HS_CHECK(commit());
  timer.mark("journal");
  const std::vector<JournalWrite>* writes = &plan.writes;
  fault_point(op_name(op));

  HS_CHECK(stop_when_safe(op, name, plan.guards, timer));
  for (size_t i = 0; i < writes->size(); i++) {
    const auto& w = (*writes)[i];
    auto st = proc_->write(RemoteAddr(w.addr), w.after);
    if (!st) {
      // Put back what was written, newest first, then report.
      for (size_t k = i; k-- > 0;) (void)proc_->write(RemoteAddr((*writes)[k].addr), (*writes)[k].before);
      (void)group_->resume_all();
      state_.journal.reset();
      (void)commit();
      return st;
    }
    fault_point("write");
  }
  timer.mark("write");
  if (!plan.action_hooks.empty()) HS_CHECK(run_action_hooks(op, name, plan));
  // The new state is committed while the threads are still stopped, and
  // when nothing else needs them held (no post-hook to run), detaching
  // resumes them: the process stops once per operation, not a second time
  // for the detach.
  HS_CHECK(transition(op, name, plan));
  state_.journal.reset();
  HS_CHECK(commit());
  timer.mark("commit");
  if (plan.detach_when_done && opts_.release_when_done)
    HS_CHECK(close());
  else
    HS_CHECK(group_->resume_all());
  timer.mark("resume");
  timer.put("writes", static_cast<long long>(writes->size()));
  timer.put("t1", timer.last());
  return {};
}

// Stops every thread at a moment when none of them is in, or will return
// into, `guards`: stop, check, and if unsafe resume, back off and retry until
// --timeout. Returns with the threads stopped; on a timeout the journal the
// caller wrote is cleared again (nothing has changed).
Status Session::stop_when_safe(JournalOp op, std::string_view name, std::span<const GuardedRange> guards,
                               PhaseTimer& timer) {
  // Kept by the session, so that tearing libdw down happens after the
  // threads are running again, not inside the stop window.
  checker_ = std::make_unique<ActivenessChecker>(*proc_);
  ActivenessChecker& checker = *checker_;
  for (const auto& p : state_.payloads) checker.add_payload(p);
  if (!opts_.force) HS_CHECK(checker.prepare());
  timer.mark("prepare");
  auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  auto backoff = std::chrono::microseconds(200);
  for (int tries = 1;; tries++) {
    const long long stop_at = timer.last();
    // The threads that were not running are stopped and checked first, the
    // running ones after that (ThreadGroup::stop_all): a thread doing work
    // is held for the second wave's check, the writes and the commit only.
    std::optional<UnsafeThread> unsafe;
    std::vector<pid_t> checked;
    auto check_stopped = [&]() -> Result<bool> {
      if (opts_.force) return true;
      unsafe = HS_TRY(checker.check(*group_, guards, &checked));
      return !unsafe;
    };
    auto stopped = group_->stop_all(check_stopped);
    if (stopped && *stopped) timer.mark("stop");
    if (stopped && *stopped) stopped = check_stopped();
    if (!stopped) {
      (void)group_->resume_all();
      return std::unexpected(stopped.error());
    }
    timer.mark("check");
    if (!unsafe) {
      timer.put("t0", stop_at);
      timer.put("tries", tries);
      timer.put("threads", static_cast<long long>(group_->threads().size()));
      return {};
    }
    HS_CHECK(group_->resume_all());
    timer.mark("resume");
    if (std::chrono::steady_clock::now() >= deadline) {
      state_.journal.reset();
      HS_CHECK(commit());
      return fail(ErrorKind::Timeout, "{} of '{}' is not safe after {} ms: {}", op_name(op), name,
                  opts_.timeout.count(), describe_unsafe(*unsafe));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
    timer.mark("backoff");
  }
}

// ---- hooks -----------------------------------------------------------------
//
// A hook is payload code that runs inside the target, on one borrowed
// thread (RemoteCall), with a time limit. When each kind runs, and which
// threads are stopped meanwhile (docs/DESIGN.md, "Hooks", says why):
//
//   load            upload: after the image is written and protected; the
//                   other threads run. A failure fails the upload (unmapped).
//   unload          unload: before the activeness check and munmap; the
//                   other threads run. Never run twice.
//   preapply,       before the stop window, the process running; a non-zero
//   prerevert       return refuses the operation, nothing changed.
//   apply, revert   in the stop window, every thread stopped, right after
//                   the writes; a non-zero return or a failure rolls the
//                   writes back. (Xen's action hooks replace the default
//                   action; in user space a hook cannot call the engine, so
//                   here they run after it, as the spec's "write ..., run
//                   hooks, resume" says.)
//   postapply,      after the operation is committed, the process running;
//   postrevert      a failure is a warning, the operation stays done.
//
// Crash safety. Hooks are not idempotent, so a repair never runs one, and
// what a hook did is committed as soon as it has returned: the record of an
// upload (after its first load hook), the new states of an apply/revert/
// replace (after its first action hook), the unload_hooks_started mark
// (after the first unload hook). A repair then goes forward from a committed
// hook and back from anything else. (A tool killed while a hook runs leaves
// the thread on the call's registers, and the target dies when the hook
// returns, see remote_call.h; only the instant between a hook's return and
// that commit is ambiguous, and there a repair acts as if the hook had not
// run.)

namespace {

// A code address in a crash message: "sym+0x12" after the nearest hook or
// exported symbol of the payload at or below it, else hex.
std::string describe_code(const PayloadRecord& p, u64 pc) {
  if (!p.range().contains(RemoteAddr(pc))) return fmt::format("{:#x}", pc);
  const std::string* best = nullptr;
  u64 best_addr = 0;
  auto consider = [&](const std::string& n, u64 a) {
    if (a <= pc && (!best || a > best_addr)) {
      best = &n;
      best_addr = a;
    }
  };
  for (const auto& h : p.hooks) consider(h.name, h.addr);
  for (const auto& [n, a] : p.exports) consider(n, a);
  if (!best) return fmt::format("payload '{}'+{:#x}", p.name, pc - p.base);
  return fmt::format("{}+{:#x}", *best, pc - best_addr);
}

// "MESSAGE; what", keeping the error's kind.
std::unexpected<Error> then(const Error& e, std::string_view what) {
  return std::unexpected(Error(e.kind(), fmt::format("{}; {}", e.message(), what), e.sys_errno()));
}

// An int hook's result (eax, sign-extended).
int int_result(u64 rax) { return static_cast<int>(static_cast<u32>(rax)); }

}  // namespace

Result<u64> Session::call_hook(const PayloadRecord& p, const HookRecord& h, pid_t tid, bool stop_window) {
  TracedThread* t = group_->find(tid);
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "process {} exited during the operation", proc_->pid());
  auto rc = HS_TRY(RemoteCall::create(*group_, *t, *proc_));
  // Threads a hook creates in the stop window stay stopped until it ends.
  rc.keep_new_threads_stopped(stop_window);
  rc.set_describer([&p](u64 pc) { return describe_code(p, pc); });
  // The argument is Xen's `struct payload *`, reserved here: NULL. Load and
  // unload hooks take none and ignore it.
  auto r = rc.call(RemoteAddr(h.addr), u64{0});
  auto fin = rc.finish();
  if (!r) {
    const Error& e = r.error();
    if (e.kind() == ErrorKind::TargetGone)
      return fail(ErrorKind::TargetGone, "payload '{}': {} hook '{}': {}", p.name, h.kind, h.name, e.message());
    return std::unexpected(
        Error(e.kind(), fmt::format("payload '{}': {} hook '{}' {}", p.name, h.kind, h.name, e.message()),
              e.sys_errno()));
  }
  HS_CHECK(fin);
  return *r;
}

// One hook with the process running: one thread is stopped for it.
Result<u64> Session::call_hook_running(const PayloadRecord& p, const HookRecord& h) {
  TracedThread* t = HS_TRY(group_->stop_one());
  auto r = call_hook(p, h, t->tid);
  auto resumed = group_->resume_all();
  if (!r) return r;
  HS_CHECK(resumed);
  return r;
}

// The thread for hooks in the stop window: the leader unless it has a
// signal to take, else another thread without one, else any.
pid_t Session::stopped_hook_thread() const {
  pid_t other = 0, any = 0;
  for (const auto& t : group_->threads()) {
    if (t.gone || !t.stopped) continue;
    if (!any) any = t.tid;
    if (t.stop == StopKind::Signal || t.pending_signal != 0) continue;
    if (t.tid == proc_->pid()) return t.tid;
    if (!other) other = t.tid;
  }
  return other ? other : any;
}

Status Session::run_pre_hook(std::string_view name, std::string_view kind, JournalOp op) {
  const PayloadRecord* p = HS_TRY(need(name));
  const HookRecord* h = p->hook(kind);
  if (!h) return {};
  auto r = call_hook_running(*p, *h);
  if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
  if (!r) return then(r.error(), fmt::format("{} refused", op_name(op)));
  if (int v = int_result(*r); v != 0)
    return fail(ErrorKind::BadTarget, "payload '{}': {} hook '{}' returned {}; {} refused", p->name, kind, h->name, v,
                op_name(op));
  return {};
}

Status Session::run_post_hook(std::string_view name, std::string_view kind) {
  const PayloadRecord* p = state_.find(name);
  const HookRecord* h = p ? p->hook(kind) : nullptr;
  if (!h) return {};
  auto r = call_hook_running(*p, *h);
  if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
  if (!r) notes_.push_back(fmt::format("warning: {}; the payload stays {}", r.error().message(), state_name(p->state)));
  return {};
}

// The registry states `plan` leads to. Idempotent: run_action_hooks() makes
// the transition before the hooks run, and the operation makes it again.
Status Session::transition(JournalOp op, std::string_view name, const Plan& plan) {
  auto switch_off = [](PayloadRecord& r) {
    for (auto& f : r.funcs) f.applied = false;
    r.state = PayloadState::Checked;
    r.apply_seq = 0;
  };
  for (const auto& rn : plan.reverted) switch_off(*HS_TRY(need(rn)));
  PayloadRecord* p = HS_TRY(need(name));
  if (op == JournalOp::Revert) {
    switch_off(*p);
    return {};
  }
  if (p->state == PayloadState::Applied) return {};
  for (const auto& [pn, i, undo] : plan.applied) {
    if (pn != p->name) continue;
    p->funcs[i].applied = true;
    p->funcs[i].undo = undo;
  }
  p->state = PayloadState::Applied;
  p->apply_seq = state_.next_seq++;
  return {};
}

// In the stop window, every thread stopped and the writes done. Once the
// first hook has returned 0, the new states are committed with the journal
// kept: a repair from then on completes the operation instead of undoing
// it. A hook that fails undoes everything: the old states are committed
// again (a repair would now roll back), the writes are undone, the process
// resumes. Hooks that had completed are not compensated.
Status Session::run_action_hooks(JournalOp op, std::string_view name, const Plan& plan) {
  const RegistryState before = state_;
  auto undo = [&](std::unexpected<Error> e) -> Status {
    state_ = before;
    (void)commit();
    for (size_t k = plan.writes.size(); k-- > 0;)
      (void)proc_->write(RemoteAddr(plan.writes[k].addr), plan.writes[k].before);
    (void)group_->resume_all();
    state_.journal.reset();
    (void)commit();
    return e;
  };
  fault_point("hooks:action");
  const pid_t tid = stopped_hook_thread();
  const std::string rolled_back = fmt::format("{} rolled back", op_name(op));
  bool committed = false;
  for (const auto& [pname, h] : plan.action_hooks) {
    const PayloadRecord* p = state_.find(pname);
    if (!p) return undo(fail(ErrorKind::Internal, "payload '{}' is missing from the registry", pname));
    auto r = call_hook(*p, h, tid, /*stop_window=*/true);
    if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
    if (!r) return undo(then(r.error(), rolled_back));
    if (int v = int_result(*r); v != 0)
      return undo(fail(ErrorKind::BadTarget, "payload '{}': {} hook '{}' returned {}; {}", pname, h.kind, h.name, v,
                       rolled_back));
    if (!committed) {
      if (auto st = transition(op, name, plan); !st) return undo(std::unexpected(std::move(st.error())));
      if (auto st = commit(); !st) return undo(std::unexpected(std::move(st.error())));
      committed = true;
      fault_point("hooks:action-committed");
    }
  }
  return {};
}

// Upload, the image written and protected, thread `tid` borrowed (the others
// run). Once the first load hook has returned, the record is committed with
// the Upload journal kept: from then on a repair keeps the payload (the
// hook may have left pointers into it) rather than unmapping it. A failing
// hook fails the upload: the record is dropped (a repair would now unmap),
// then the image is unmapped. Hooks that had completed are not compensated.
Status Session::run_load_hooks(PayloadRecord rec, pid_t tid) {
  const std::string name = rec.name;
  rec.upload_seq = state_.next_seq++;
  state_.payloads.push_back(std::move(rec));  // not committed yet
  fault_point("upload:hooks");
  bool committed = false;
  for (const HookRecord* h : HS_TRY(need(name))->hooks_of("load")) {
    auto r = call_hook(*HS_TRY(need(name)), *h, tid);
    if (r) {
      if (!committed) {
        HS_CHECK(commit());
        committed = true;
        fault_point("upload:hooks-committed");
      }
      continue;
    }
    const Error e = r.error();
    if (e.kind() == ErrorKind::TargetGone) return std::unexpected(e);
    const Journal j = *state_.journal;
    std::erase_if(state_.payloads, [&](const PayloadRecord& q) { return q.name == name; });
    if (committed) HS_CHECK(commit());
    TracedThread* t = group_->find(tid);
    if (!t) return fail(ErrorKind::TargetGone, "process {} exited during the operation", proc_->pid());
    {
      auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
      HS_CHECK(rs.munmap(RemoteAddr(j.map_base), j.map_size));
      HS_CHECK(rs.finish());
    }
    HS_CHECK(group_->resume_all());
    state_.journal.reset();
    HS_CHECK(commit());
    return then(e, "upload rolled back");
  }
  return {};
}

// Unload, journaled: the unload hooks run before the activeness check and
// munmap, with the process running. unload_hooks_started is committed once
// the first one has returned (or one has failed), so they never run twice:
// not in a retried unload (after a failing hook or an activeness timeout),
// not in a repair.
Status Session::run_unload_hooks(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->unload_hooks_started || p->hooks_of("unload").empty()) return {};
  fault_point("unload:hooks");
  TracedThread* t = HS_TRY(group_->stop_one());
  const pid_t tid = t->tid;
  for (const HookRecord* h : p->hooks_of("unload")) {
    auto r = call_hook(*p, *h, tid);
    if (!r && r.error().kind() == ErrorKind::TargetGone) return std::unexpected(std::move(r.error()));
    const bool first = !p->unload_hooks_started;
    p->unload_hooks_started = true;
    if (r) {
      if (first) {
        HS_CHECK(commit());
        fault_point("unload:hooks-committed");
      }
      continue;
    }
    const Error e = r.error();
    (void)group_->resume_all();
    state_.journal.reset();
    HS_CHECK(commit());
    return then(e, "the payload stays loaded (its unload hooks will not run again)");
  }
  return group_->resume_all();
}

// ---- session ---------------------------------------------------------------

Result<std::unique_ptr<Session>> Session::open(pid_t pid, EngineOptions opts) {
  fault_target_pid = pid;
  PhaseTimer timer("open");
  std::unique_ptr<Session> s(new Session());
  s->opts_ = opts;
  s->proc_ = std::make_unique<Process>(HS_TRY(Process::open(pid)));
  s->group_.emplace(HS_TRY(ThreadGroup::seize(*s->proc_)));
  timer.mark("seize");
  auto reg = HS_TRY(Registry::find(*s->proc_));
  if (reg) {
    s->registry_ = *reg;
    s->state_ = HS_TRY(s->registry_->load());
    if (s->state_.journal) HS_CHECK(s->repair());
  }
  timer.mark("registry");
  return s;
}

Session::~Session() { (void)close(); }

Status Session::close() {
  if (group_) {
    PhaseTimer timer("close");
    auto st = group_->detach();
    group_.reset();
    timer.mark("detach");
    return st;
  }
  return {};
}

Status Session::commit() {
  HS_CHECK(ensure_registry());
  return registry_->commit(state_);
}

Status Session::ensure_registry() {
  if (!registry_) {
    registry_ = HS_TRY(Registry::create(*proc_, *group_));
    fault_point("registry-created");
  }
  return {};
}

Result<const std::vector<MappedObject>*> Session::objects() {
  if (!objects_) objects_ = HS_TRY(mapped_objects(*proc_));
  return &*objects_;
}

Result<PayloadRecord*> Session::need(std::string_view name) {
  PayloadRecord* p = state_.find(name);
  if (!p) return fail(ErrorKind::State, "no payload named '{}' in PID {}", name, proc_->pid());
  return p;
}

// Whether the journal's payload mapping exists: a mapping at its address
// that is our named memfd (never a mapping of the target's own).
Result<bool> Session::payload_mapped(const Journal& j) {
  auto maps = HS_TRY(proc_->maps());
  return std::any_of(maps.begin(), maps.end(), [&](const MapEntry& m) {
    return m.range.begin.value() == j.map_base && is_memfd_named(m.path, mapping_name(j.payload));
  });
}

// Repairs what a killed invocation left in the journal: rolls it back, or
// forward where a hook of it had already run (see the hooks section).
Status Session::repair() {
  Journal j = *state_.journal;
  switch (j.op) {
    case JournalOp::Upload: {
      if (state_.find(j.payload)) {
        // Killed among the load hooks, after the first had returned (the
        // record is committed then, see run_load_hooks): they may have left
        // pointers into the payload, so it is kept, never unmapped.
        notes_.push_back(fmt::format(
            "repaired: completed an interrupted upload of '{}' (tool PID {}): a load hook of it had run",
            j.payload, j.tool_pid));
        break;
      }
      if (HS_TRY(payload_mapped(j))) {
        TracedThread* t = HS_TRY(group_->stop_one());
        {
          auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
          HS_CHECK(rs.munmap(RemoteAddr(j.map_base), j.map_size));
          HS_CHECK(rs.finish());
        }
        HS_CHECK(group_->resume_all());
      }
      notes_.push_back(fmt::format("repaired: rolled back an interrupted upload of '{}' (tool PID {})", j.payload,
                                   j.tool_pid));
      break;
    }
    case JournalOp::Apply:
    case JournalOp::Revert:
    case JournalOp::Replace: {
      // Killed among the apply/revert hooks, after the first had returned
      // (the new states are committed then, see run_action_hooks): the
      // operation is completed (its writes made again, they are
      // idempotent), never undone.
      const PayloadRecord* target = state_.find(j.payload);
      if (target && target->state == (j.op == JournalOp::Revert ? PayloadState::Checked : PayloadState::Applied)) {
        HS_CHECK(group_->stop_all());
        for (const auto& w : j.writes) {
          auto st = proc_->write(RemoteAddr(w.addr), w.after);
          if (!st) {
            (void)group_->resume_all();
            return st;
          }
        }
        HS_CHECK(group_->resume_all());
        notes_.push_back(fmt::format(
            "repaired: completed an interrupted {} of '{}' (tool PID {}): {} hook had run", op_name(j.op),
            j.payload, j.tool_pid,
            j.op == JournalOp::Apply ? "its apply" : j.op == JournalOp::Revert ? "its revert" : "an apply or revert"));
        break;
      }
      // Writing each change's `before`, newest first, restores every byte to
      // what it was before the first change touched it, however many of the
      // writes had happened.
      HS_CHECK(group_->stop_all());
      for (size_t k = j.writes.size(); k-- > 0;) {
        auto st = proc_->write(RemoteAddr(j.writes[k].addr), j.writes[k].before);
        if (!st) {
          (void)group_->resume_all();
          return st;
        }
      }
      HS_CHECK(group_->resume_all());
      notes_.push_back(fmt::format("repaired: rolled back an interrupted {} of '{}' (tool PID {})", op_name(j.op),
                                   j.payload, j.tool_pid));
      break;
    }
    case JournalOp::Unload: {
      if (!HS_TRY(payload_mapped(j))) {
        std::erase_if(state_.payloads, [&](const PayloadRecord& p) { return p.name == j.payload; });
        notes_.push_back(fmt::format("repaired: completed an interrupted unload of '{}' (tool PID {})", j.payload,
                                     j.tool_pid));
      } else {
        const PayloadRecord* q = state_.find(j.payload);
        notes_.push_back(fmt::format("repaired: rolled back an interrupted unload of '{}' (tool PID {}){}", j.payload,
                                     j.tool_pid,
                                     q && q->unload_hooks_started
                                         ? "; its unload hooks have run and will not run again"
                                         : ""));
      }
      break;
    }
    case JournalOp::None: break;
  }
  state_.journal.reset();
  return commit();
}

static bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
}

// The registry record of a payload linked at `linked.base`: where each
// function is patched (after an endbr64) and the bytes that go there.
static Result<PayloadRecord> make_record(const Process& proc, std::string_view name, const std::string& file,
                                         const Payload& payload, const MappedObject& obj,
                                         const LinkedPayload& linked) {
  PayloadRecord rec;
  rec.name = std::string(name);
  rec.file = file;
  rec.build_id = payload.build_id;
  rec.depends = payload.depends;
  rec.object_depends = payload.object_depends;
  rec.object_path = obj.path;
  rec.base = linked.base.value();
  rec.size = linked.image.size();
  for (const auto& r : linked.regions) rec.regions.push_back({r.offset, r.size, r.prot});
  for (const auto& [n, a] : linked.exports) rec.exports.emplace_back(n, a.value());
  rec.modinfo = payload.modinfo;
  rec.eh_frame_offset = linked.eh_frame_offset;
  rec.eh_frame_size = linked.eh_frame_size;
  // Hooks: the linked addresses, named after the symbols their slots point at.
  auto add_hooks = [&](const char* kind, const std::vector<RemoteAddr>& addrs, auto name_of) {
    for (size_t i = 0; i < addrs.size(); i++)
      if (!addrs[i].is_null()) rec.hooks.push_back({kind, name_of(i), addrs[i].value()});
  };
  auto array_names = [](const std::vector<SymRef>& refs) {
    return [&refs](size_t i) { return i < refs.size() ? refs[i].display : std::string("?"); };
  };
  auto single_name = [](const std::optional<SymRef>& ref) {
    return [&ref](size_t) { return ref ? ref->display : std::string("?"); };
  };
  const LinkedHooks& lh = linked.hooks;
  add_hooks("load", lh.load, array_names(payload.load_hooks));
  add_hooks("unload", lh.unload, array_names(payload.unload_hooks));
  add_hooks("preapply", {lh.preapply}, single_name(payload.preapply));
  add_hooks("apply", {lh.apply}, single_name(payload.apply));
  add_hooks("postapply", {lh.postapply}, single_name(payload.postapply));
  add_hooks("prerevert", {lh.prerevert}, single_name(payload.prerevert));
  add_hooks("revert", {lh.revert}, single_name(payload.revert));
  add_hooks("postrevert", {lh.postrevert}, single_name(payload.postrevert));
  for (const auto& lf : linked.funcs) {
    FuncState f;
    f.name = lf.name;
    f.old_addr = lf.old_addr.value();
    f.old_size = lf.old_size;
    f.new_addr = lf.new_addr.value();
    f.new_size = lf.new_size;
    f.expect = lf.expect;
    Bytes head = HS_TRY(proc.read(lf.old_addr, std::min<u32>(lf.old_size, 4)));
    f.patch_offset = static_cast<u32>(x86_64::patch_offset(head));
    u64 room = lf.old_size - std::min<u64>(lf.old_size, f.patch_offset);
    if (lf.new_addr.is_null()) {
      if (lf.new_size > room)
        return fail(ErrorKind::BadPayload,
                    "{}: function '{}': cannot NOP out {:#x} bytes, it has {:#x} after offset {:#x}", file, lf.name,
                    lf.new_size, room, f.patch_offset);
      f.insn = x86_64::make_nops(lf.new_size);
    } else {
      if (room < x86_64::kJumpSize)
        return fail(ErrorKind::BadPayload,
                    "{}: function '{}' is too short to patch: {:#x} bytes, a jump needs {:#x}{}", file, lf.name,
                    lf.old_size, f.patch_offset + x86_64::kJumpSize, f.patch_offset ? " after endbr64" : "");
      f.insn = HS_TRY_CTX(x86_64::make_jump(RemoteAddr(f.site()), lf.new_addr),
                          fmt::format("{}: function '{}'", file, lf.name));
    }
    rec.funcs.push_back(std::move(f));
  }
  // The direct calls to each replaced function (not to NOPped ones: their
  // callers must still run the rest of the function).
  std::vector<u64> replaced;
  for (const FuncState& f : rec.funcs)
    if (f.new_addr != 0) replaced.push_back(f.old_addr);
  const auto sites = HS_TRY(find_call_sites(obj, replaced));
  for (FuncState& f : rec.funcs)
    if (auto it = sites.find(f.old_addr); it != sites.end() && f.new_addr != 0)
      for (const CallSite& c : it->second) f.call_sites.push_back(c.addr);
  return rec;
}

Status Session::upload(std::string_view name, const std::string& file) {
  if (!valid_name(name))
    return fail(ErrorKind::Usage, "invalid payload name '{}': use 1 to 64 of [A-Za-z0-9_.-]", name);
  if (state_.find(name))
    return fail(ErrorKind::State, "a payload named '{}' is already loaded in PID {}", name, proc_->pid());
  PhaseTimer timer("upload");
  Payload payload = HS_TRY(Payload::open(file));
  timer.mark("parse");
  for (const auto& p : state_.payloads)
    if (p.build_id == payload.build_id)
      return fail(ErrorKind::State, "{}: payload '{}' with the same build-id {} is already loaded in PID {}", file,
                  p.name, to_hex(p.build_id), proc_->pid());
  const auto& objs = *HS_TRY(objects());
  const MappedObject* obj = HS_TRY_CTX(find_object(objs, payload.object_depends, proc_->pid()), file);
  timer.mark("objects");

  // Link before touching the target: every bad symbol or relocation is
  // found while the process is still untouched.
  u64 size = HS_TRY_CTX(image_size(payload), file);
  ProcessResolver resolver(*obj, objs, state_);
  LinkedPayload linked;
  PayloadRecord rec;
  auto link_somewhere = [&]() -> Status {
    auto maps = HS_TRY(proc_->maps());
    RemoteAddr at = HS_TRY_CTX(choose_base(maps, obj->span, size), file);
    linked = HS_TRY_CTX(link_payload(payload, at, resolver), file);
    rec = HS_TRY(make_record(*proc_, name, file, payload, *obj, linked));
    return {};
  };
  HS_CHECK(link_somewhere());
  timer.mark("link");

  // Now the target changes. Creating the registry maps memory, and the
  // process maps memory of its own while we work: the range must still be
  // free when we map it, or we link again elsewhere.
  HS_CHECK(ensure_registry());
  timer.mark("registry");
  TracedThread* t = HS_TRY(group_->stop_one());
  auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
  timer.mark("borrow");
  // The image is mapped with the text's protection (RX) and the other
  // regions are narrowed afterwards: a process under MDWE (PR_SET_MDWE) may
  // map new memory executable but not make memory executable later. It is
  // written through /proc/PID/mem, so no page is ever writable and executable
  // at once.
  int map_prot = PROT_READ;
  for (const auto& r : linked.regions) map_prot |= r.prot & PROT_EXEC;
  for (int attempt = 0;; attempt++) {
    Journal j;
    j.op = JournalOp::Upload;
    j.payload = rec.name;
    j.tool_pid = static_cast<u64>(getpid());
    j.map_base = rec.base;
    j.map_size = rec.size;
    state_.journal = j;
    HS_CHECK(commit());
    fault_point("upload:journaled");
    auto got = map_named_memfd(*proc_, rs, *t, mapping_name(name), linked.base, rec.size, map_prot,
                               MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (got) break;
    state_.journal.reset();
    HS_CHECK(commit());
    int err = got.error().sys_errno();
    if ((err == EPERM || err == EACCES) && (map_prot & PROT_EXEC))
      got.error().context(fmt::format("PID {} refuses executable memory (seccomp or MDWE)", proc_->pid()));
    if (err != EEXIST || attempt == 3) return std::unexpected(got.error());
    HS_CHECK(link_somewhere());
  }
  fault_point("upload:mapped");
  timer.mark("map");
  // A failure from here on unmaps the image again (and then drops the
  // journal), so the process is left as it was.
  auto unmap_and_fail = [&](Error e) -> Status {
    if (rs.munmap(linked.base, rec.size)) {
      state_.journal.reset();
      (void)commit();
    }
    (void)rs.finish();
    (void)group_->resume_all();
    return std::unexpected(std::move(e));
  };
  if (auto st = proc_->write(linked.base, linked.image); !st) return unmap_and_fail(std::move(st.error()));
  timer.mark("write");
  fault_point("upload:written");
  for (const auto& r : linked.regions) {
    if (r.prot == map_prot) continue;
    auto st = rs.mprotect(linked.base + static_cast<i64>(r.offset), r.size, r.prot);
    if (!st) return unmap_and_fail(std::move(st.error()));
  }
  HS_CHECK(rs.finish());
  const bool load_hooks = !rec.hooks_of("load").empty();
  if (load_hooks) HS_CHECK(run_load_hooks(rec, t->tid));  // commits the record
  HS_CHECK(group_->resume_all());
  timer.mark("protect");
  fault_point("upload:protected");

  if (!load_hooks) {
    rec.upload_seq = state_.next_seq++;
    state_.payloads.push_back(std::move(rec));
  }
  state_.journal.reset();
  HS_CHECK(commit());
  timer.mark("commit");
  timer.put("bytes", static_cast<long long>(linked.image.size()));
  fault_point("upload:committed");
  return {};
}

Status Session::apply(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state == PayloadState::Applied) return fail(ErrorKind::State, "payload '{}' is already APPLIED", name);
  const PayloadRecord* top = state_.top_of_stack(p->object_path);
  const Bytes& want = top ? top->build_id : p->object_depends;
  if (p->depends != want)
    return fail(ErrorKind::State, "payload '{}' depends on build-id {}, but the top of the applied stack of {} is {}",
                name, to_hex(p->depends), p->object_path,
                top ? fmt::format("payload '{}' (build-id {})", top->name, to_hex(top->build_id))
                    : fmt::format("the object itself (build-id {})", to_hex(p->object_depends)));
  if (p->unload_hooks_started)
    return fail(ErrorKind::State, "payload '{}' cannot be applied: its unload hooks have run; unload it", name);
  Overlay mem{*proc_, {}};
  Plan plan;
  HS_CHECK(plan_apply(*p, mem, plan));
  HS_CHECK(plan_call_sites(std::span<const PayloadRecord* const>(&p, 1), mem));
  plan.writes = std::move(mem.writes);
  if (const HookRecord* h = p->hook("apply")) plan.action_hooks.emplace_back(p->name, *h);
  HS_CHECK(run_pre_hook(name, "preapply", JournalOp::Apply));
  plan.detach_when_done = !p->hook("postapply");
  HS_CHECK(execute(JournalOp::Apply, name, plan));
  fault_point("apply:committed");
  return run_post_hook(name, "postapply");
}

Status Session::revert(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state != PayloadState::Applied) return fail(ErrorKind::State, "payload '{}' is not APPLIED", name);
  const PayloadRecord* top = state_.top_of_stack(p->object_path);
  if (top != p)
    return fail(ErrorKind::State, "payload '{}' is not the top of the applied stack of {}: revert '{}' first", name,
                p->object_path, top->name);
  Overlay mem{*proc_, {}};
  Plan plan;
  HS_CHECK(plan_revert(*p, mem, plan));
  HS_CHECK(plan_call_sites(std::span<const PayloadRecord* const>(&p, 1), mem));
  plan.writes = std::move(mem.writes);
  if (const HookRecord* h = p->hook("revert")) plan.action_hooks.emplace_back(p->name, *h);
  HS_CHECK(run_pre_hook(name, "prerevert", JournalOp::Revert));
  plan.detach_when_done = !p->hook("postrevert");
  HS_CHECK(execute(JournalOp::Revert, name, plan));
  fault_point("revert:committed");
  return run_post_hook(name, "postrevert");
}

Status Session::replace(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state == PayloadState::Applied) return fail(ErrorKind::State, "payload '{}' is already APPLIED", name);
  if (p->depends != p->object_depends)
    return fail(ErrorKind::State,
                "payload '{}' cannot replace: it depends on build-id {}, not on the object {} (build-id {})", name,
                to_hex(p->depends), p->object_path, to_hex(p->object_depends));
  if (p->unload_hooks_started)
    return fail(ErrorKind::State, "payload '{}' cannot be applied: its unload hooks have run; unload it", name);
  // As in Xen: pre- and post- hooks usually come in pairs that set up and
  // tear down, and one replace step cannot honour them for a whole stack.
  const auto stack = state_.applied_stack(p->object_path);
  std::vector<const PayloadRecord*> involved{p};
  involved.insert(involved.end(), stack.begin(), stack.end());
  for (const PayloadRecord* q : involved)
    for (const char* kind : {"preapply", "postapply", "prerevert", "postrevert"})
      if (q->hook(kind))
        return fail(ErrorKind::State,
                    "payload '{}' cannot replace: payload '{}' has a {} hook, and replace runs no pre- or post- hooks",
                    name, q->name, kind);
  Overlay mem{*proc_, {}};
  Plan plan;
  for (const PayloadRecord* old : stack) {
    HS_CHECK(plan_revert(*old, mem, plan));
    plan.reverted.push_back(old->name);
    if (const HookRecord* h = old->hook("revert")) plan.action_hooks.emplace_back(old->name, *h);
  }
  HS_CHECK(plan_apply(*p, mem, plan));
  HS_CHECK(plan_call_sites(involved, mem));
  plan.writes = std::move(mem.writes);
  if (const HookRecord* h = p->hook("apply")) plan.action_hooks.emplace_back(p->name, *h);
  plan.detach_when_done = true;  // replace runs no post-hooks
  HS_CHECK(execute(JournalOp::Replace, name, plan));
  fault_point("replace:committed");
  return {};
}

Status Session::unload(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state != PayloadState::Checked)
    return fail(ErrorKind::State, "payload '{}' is {}; revert it before unloading", name, state_name(p->state));
  Journal j;
  j.op = JournalOp::Unload;
  j.payload = p->name;
  j.tool_pid = static_cast<u64>(getpid());
  j.map_base = p->base;
  j.map_size = p->size;
  state_.journal = j;
  HS_CHECK(commit());
  fault_point("unload:journaled");
  HS_CHECK(run_unload_hooks(name));
  p = HS_TRY(need(name));

  std::vector<GuardedRange> guards{{p->range(), fmt::format("payload '{}'", name)}};
  PhaseTimer timer("unload");
  HS_CHECK(stop_when_safe(JournalOp::Unload, name, guards, timer));
  TracedThread* t = nullptr;
  for (auto& th : group_->threads())
    if (th.stopped && th.pending_signal == 0) t = &th;
  if (!t) t = &group_->threads().front();
  {
    auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
    HS_CHECK(rs.munmap(RemoteAddr(p->base), p->size));
    HS_CHECK(rs.finish());
  }
  fault_point("unload:unmapped");
  // Committed with the threads still stopped; detaching resumes them.
  std::erase_if(state_.payloads, [&](const PayloadRecord& r) { return r.name == name; });
  state_.journal.reset();
  HS_CHECK(commit());
  HS_CHECK(opts_.release_when_done ? close() : group_->resume_all());
  fault_point("unload:committed");
  return {};
}

Status Session::load(std::string_view name, const std::string& file) {
  HS_CHECK(upload(name, file));
  auto st = apply(name);
  if (!st) {
    auto un = unload(name);
    if (!un)
      return std::unexpected(Error(st.error().kind(), fmt::format("{} (and unloading it again failed: {})",
                                                                   st.error().message(), un.error().message())));
    return st;
  }
  return {};
}

Result<ListResult> list_state(pid_t pid) {
  ListResult out;
  auto proc = HS_TRY(Process::open(pid));
  auto reg = HS_TRY(Registry::find(proc));
  if (!reg) return out;
  out.state = HS_TRY(reg->load());
  if (out.state.journal) {
    // An operation is under way, or was interrupted: repair if we can lock.
    auto s = Session::open(pid);
    if (!s) {
      if (s.error().kind() != ErrorKind::Busy) return std::unexpected(s.error());
      out.in_progress = true;
      out.state.journal.reset();
      return out;
    }
    out.state = (*s)->state();
    out.notes = (*s)->notes();
  }
  return out;
}

}  // namespace hs
