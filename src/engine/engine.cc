#include "engine/engine.h"

#include <dlfcn.h>
#include <elf.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "arch/x86_64.h"
#include "payload/loader.h"
#include "payload/payload.h"
#include "engine/remote_memfd.h"
#include "process/remote_syscall.h"

namespace hs {

// ---- fault injection ------------------------------------------------------

void fault_point(const char* name) {
  static const long target = [] {
    const char* s = std::getenv("HOTSPLICE_FAULT_STEP");
    return s ? std::atol(s) : 0L;
  }();
  static const bool list = std::getenv("HOTSPLICE_FAULT_LIST") != nullptr;
  static long reached = 0;
  reached++;
  if (list) fmt::print(stderr, "hotsplice: fault point {} {}\n", reached, name);
  if (reached == target) raise(SIGKILL);
}

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

// ---- the stop window -------------------------------------------------------

Status Session::execute(JournalOp op, std::string_view name, const Plan& plan) {
  Journal j;
  j.op = op;
  j.payload = std::string(name);
  j.tool_pid = static_cast<u64>(getpid());
  j.writes = plan.writes;
  state_.journal = std::move(j);
  HS_CHECK(commit());
  const std::vector<JournalWrite>* writes = &plan.writes;
  fault_point(op_name(op));

  ActivenessChecker checker(*proc_);
  if (!opts_.force) HS_CHECK(checker.prepare());
  auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  auto backoff = std::chrono::microseconds(200);
  for (;;) {
    HS_CHECK(group_->stop_all());
    std::optional<UnsafeThread> unsafe;
    if (!opts_.force) {
      auto r = checker.check(*group_, plan.guards);
      if (!r) {
        (void)group_->resume_all();
        return std::unexpected(r.error());
      }
      unsafe = *r;
    }
    if (!unsafe) {
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
      HS_CHECK(group_->resume_all());
      return {};
    }
    HS_CHECK(group_->resume_all());
    if (std::chrono::steady_clock::now() >= deadline) {
      state_.journal.reset();
      HS_CHECK(commit());
      return fail(ErrorKind::Timeout, "{} of '{}' is not safe after {} ms: {}", op_name(op), name,
                  opts_.timeout.count(), describe_unsafe(*unsafe));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
}

// ---- session ---------------------------------------------------------------

Result<std::unique_ptr<Session>> Session::open(pid_t pid, EngineOptions opts) {
  std::unique_ptr<Session> s(new Session());
  s->opts_ = opts;
  s->proc_ = std::make_unique<Process>(HS_TRY(Process::open(pid)));
  s->group_.emplace(HS_TRY(ThreadGroup::seize(*s->proc_)));
  auto reg = HS_TRY(Registry::find(*s->proc_));
  if (reg) {
    s->registry_ = *reg;
    s->state_ = HS_TRY(s->registry_->load());
    if (s->state_.journal) HS_CHECK(s->repair());
  }
  return s;
}

Session::~Session() { (void)close(); }

Status Session::close() {
  if (group_) {
    auto st = group_->detach();
    group_.reset();
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

// Rolls back whatever operation a killed invocation left in the journal.
Status Session::repair() {
  Journal j = *state_.journal;
  switch (j.op) {
    case JournalOp::Upload: {
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
        notes_.push_back(fmt::format("repaired: rolled back an interrupted unload of '{}' (tool PID {})", j.payload,
                                     j.tool_pid));
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
  return rec;
}

Status Session::upload(std::string_view name, const std::string& file) {
  if (!valid_name(name))
    return fail(ErrorKind::Usage, "invalid payload name '{}': use 1 to 64 of [A-Za-z0-9_.-]", name);
  if (state_.find(name))
    return fail(ErrorKind::State, "a payload named '{}' is already loaded in PID {}", name, proc_->pid());
  Payload payload = HS_TRY(Payload::open(file));
  for (const auto& p : state_.payloads)
    if (p.build_id == payload.build_id)
      return fail(ErrorKind::State, "{}: payload '{}' with the same build-id {} is already loaded in PID {}", file,
                  p.name, to_hex(p.build_id), proc_->pid());
  const auto& objs = *HS_TRY(objects());
  const MappedObject* obj = HS_TRY_CTX(find_object(objs, payload.object_depends, proc_->pid()), file);

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

  // Now the target changes. Creating the registry maps memory, and the
  // process maps memory of its own while we work: the range must still be
  // free when we map it, or we link again elsewhere.
  HS_CHECK(ensure_registry());
  TracedThread* t = HS_TRY(group_->stop_one());
  auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
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
    auto got = map_named_memfd(*proc_, rs, *t, mapping_name(name), linked.base, rec.size, PROT_READ,
                               MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (got) break;
    state_.journal.reset();
    HS_CHECK(commit());
    if (got.error().sys_errno() != EEXIST || attempt == 3) return std::unexpected(got.error());
    HS_CHECK(link_somewhere());
  }
  fault_point("upload:mapped");
  // Written through /proc/PID/mem, so the pages never need to be writable and
  // executable at once.
  HS_CHECK(proc_->write(linked.base, linked.image));
  fault_point("upload:written");
  for (const auto& r : linked.regions)
    if (r.prot != PROT_READ) HS_CHECK(rs.mprotect(linked.base + static_cast<i64>(r.offset), r.size, r.prot));
  HS_CHECK(rs.finish());
  HS_CHECK(group_->resume_all());
  fault_point("upload:protected");

  rec.upload_seq = state_.next_seq++;
  state_.payloads.push_back(std::move(rec));
  state_.journal.reset();
  HS_CHECK(commit());
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
  Overlay mem{*proc_, {}};
  Plan plan;
  HS_CHECK(plan_apply(*p, mem, plan));
  plan.writes = std::move(mem.writes);
  HS_CHECK(execute(JournalOp::Apply, name, plan));

  p = HS_TRY(need(name));
  for (auto& [pn, i, undo] : plan.applied) {
    p->funcs[i].applied = true;
    p->funcs[i].undo = undo;
  }
  p->state = PayloadState::Applied;
  p->apply_seq = state_.next_seq++;
  state_.journal.reset();
  HS_CHECK(commit());
  fault_point("apply:committed");
  return {};
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
  plan.writes = std::move(mem.writes);
  HS_CHECK(execute(JournalOp::Revert, name, plan));

  p = HS_TRY(need(name));
  for (auto& f : p->funcs) f.applied = false;
  p->state = PayloadState::Checked;
  p->apply_seq = 0;
  state_.journal.reset();
  HS_CHECK(commit());
  fault_point("revert:committed");
  return {};
}

Status Session::replace(std::string_view name) {
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state == PayloadState::Applied) return fail(ErrorKind::State, "payload '{}' is already APPLIED", name);
  if (p->depends != p->object_depends)
    return fail(ErrorKind::State,
                "payload '{}' cannot replace: it depends on build-id {}, not on the object {} (build-id {})", name,
                to_hex(p->depends), p->object_path, to_hex(p->object_depends));
  Overlay mem{*proc_, {}};
  Plan plan;
  std::vector<std::string> reverted;
  for (const PayloadRecord* old : state_.applied_stack(p->object_path)) {
    HS_CHECK(plan_revert(*old, mem, plan));
    reverted.push_back(old->name);
  }
  HS_CHECK(plan_apply(*p, mem, plan));
  plan.writes = std::move(mem.writes);
  HS_CHECK(execute(JournalOp::Replace, name, plan));

  for (const auto& rn : reverted) {
    PayloadRecord* o = HS_TRY(need(rn));
    for (auto& f : o->funcs) f.applied = false;
    o->state = PayloadState::Checked;
    o->apply_seq = 0;
  }
  p = HS_TRY(need(name));
  for (auto& [pn, i, undo] : plan.applied) {
    p->funcs[i].applied = true;
    p->funcs[i].undo = undo;
  }
  p->state = PayloadState::Applied;
  p->apply_seq = state_.next_seq++;
  state_.journal.reset();
  HS_CHECK(commit());
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

  std::vector<GuardedRange> guards{{p->range(), fmt::format("payload '{}'", name)}};
  ActivenessChecker checker(*proc_);
  if (!opts_.force) HS_CHECK(checker.prepare());
  auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  auto backoff = std::chrono::microseconds(200);
  for (;;) {
    HS_CHECK(group_->stop_all());
    std::optional<UnsafeThread> unsafe;
    if (!opts_.force) unsafe = HS_TRY(checker.check(*group_, guards));
    if (!unsafe) {
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
      HS_CHECK(group_->resume_all());
      break;
    }
    HS_CHECK(group_->resume_all());
    if (std::chrono::steady_clock::now() >= deadline) {
      state_.journal.reset();
      HS_CHECK(commit());
      return fail(ErrorKind::Timeout, "unload of '{}' is not safe after {} ms: {}", name, opts_.timeout.count(),
                  describe_unsafe(*unsafe));
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::microseconds(20000));
  }
  std::erase_if(state_.payloads, [&](const PayloadRecord& r) { return r.name == name; });
  state_.journal.reset();
  HS_CHECK(commit());
  fault_point("unload:committed");
  return {};
}

Status Session::load(std::string_view name, const std::string& file) {
  HS_CHECK(upload(name, file));
  auto st = apply(name);
  if (!st) {
    auto un = unload(name);
    if (!un) st.error().context(fmt::format("(and unloading it again failed: {})", un.error().message()));
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
