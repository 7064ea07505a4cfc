// The verbs of the state machine (upload, apply, revert, replace, unload,
// load), opening and closing a Session, committing its state, and
// list_state. What each verb checks and the order of its steps are here;
// the pieces they are made of live in their own files (session.h says
// which).
#include "engine/session.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "engine/code_check.h"
#include "engine/ifunc.h"
#include "engine/instrument.h"
#include "engine/placement.h"
#include "engine/record.h"
#include "process/named_memfd.h"
#include "engine/resolver.h"
#include "engine/shadow_runtime.h"
#include "engine/unwind_frames.h"
#include "engine/tls.h"
#include "payload/loader.h"
#include "payload/payload.h"
#include "process/remote_syscall.h"

namespace hs {

Result<std::unique_ptr<Session>> Session::open(pid_t pid, EngineOptions opts) {
  HS_FAULT_TARGET(pid);
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
    HS_FAULT_POINT("registry-created");
  }
  return {};
}

Result<const std::vector<MappedObject>*> Session::objects() {
  if (!objects_) objects_ = HS_TRY(mapped_objects(*proc_, opts_.debug));
  return &*objects_;
}

Result<PayloadRecord*> Session::need(std::string_view name) {
  PayloadRecord* p = state_.find(name);
  if (!p) return fail(ErrorKind::State, "no payload named '{}' in PID {}", name, proc_->pid());
  return p;
}

Status Session::upload(std::string_view name, const std::string& file) {
  if (!valid_payload_name(name))
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
  ProcessResolver symbols(*obj, objs, state_, *proc_);
  // The one thing a link may create in the target: the shadow table (shadow_runtime.h).
  ShadowResolver shadow(symbols, *proc_, *group_);
  TlsResolver resolver(shadow, *group_, *proc_, objs);  // thread-local symbols: asked of the process
  LinkedPayload linked;
  PayloadRecord rec;
  auto link_somewhere = [&]() -> Status {
    auto maps = HS_TRY(proc_->maps());
    RemoteAddr at = HS_TRY_CTX(choose_base(maps, obj->span, size), file);
    linked = HS_TRY_CTX(link_payload(payload, at, resolver), file);
    HS_CHECK_CTX(refuse_resolver_sites(*obj, linked, proc_->pid()), file);
    rec = HS_TRY(make_record(*proc_, name, file, payload, *obj, linked));
    return {};
  };
  HS_CHECK(link_somewhere());
  timer.mark("link");

  // Now the target changes. Creating the registry maps memory, and the
  // process maps memory of its own while we work: the range must still be
  // free when we map it, or we link again elsewhere.
  const bool made_registry = !registry_;
  HS_CHECK(ensure_registry());
  timer.mark("registry");
  TracedThread* t = HS_TRY(group_->stop_one());
  auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
  timer.mark("borrow");
  // A registry this upload made holds nothing else: a refused upload (a
  // seccomp filter, MDWE) takes it away again, leaving the process as it was.
  auto drop_made_registry = [&] {
    if (made_registry && state_.payloads.empty() && !state_.journal &&
        rs.munmap(registry_->base(), Registry::kCapacity))
      registry_.reset();
  };
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
    HS_FAULT_POINT("upload:journaled");
    auto got = map_named_memfd(*proc_, rs, *t, payload_mapping_name(name), linked.base, rec.size, map_prot,
                               MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (got) break;
    state_.journal.reset();
    HS_CHECK(commit());
    int err = got.error().sys_errno();
    if ((err == EPERM || err == EACCES) && (map_prot & PROT_EXEC))
      got.error().context(fmt::format("PID {} refuses executable memory (seccomp or MDWE)", proc_->pid()));
    if (err != EEXIST || attempt == 3) {
      drop_made_registry();
      return std::unexpected(got.error());
    }
    HS_CHECK(link_somewhere());
  }
  HS_FAULT_POINT("upload:mapped");
  timer.mark("map");
  // A failure from here on unmaps the image again (and then drops the
  // journal), so the process is left as it was.
  auto unmap_and_fail = [&](Error e) -> Status {
    if (rs.munmap(linked.base, rec.size)) {
      state_.journal.reset();
      (void)commit();
      drop_made_registry();
    }
    (void)rs.finish();
    (void)group_->resume_all();
    return std::unexpected(std::move(e));
  };
  if (auto st = proc_->write(linked.base, linked.image); !st) return unmap_and_fail(std::move(st.error()));
  timer.mark("write");
  HS_FAULT_POINT("upload:written");
  for (const auto& r : linked.regions) {
    if (r.prot == map_prot) continue;
    auto st = rs.mprotect(linked.base + static_cast<i64>(r.offset), r.size, r.prot);
    if (!st) return unmap_and_fail(std::move(st.error()));
  }
  // The unwinder learns the payload's table before any of its code runs
  // (engine/unwind_frames.h); if that fails, it must not know it when the
  // memory goes, so an unmap waits for a repair that can make sure.
  if (linked.unwind_block_offset != 0) {
    const RemoteAddr block = linked.base + static_cast<i64>(linked.unwind_block_offset);
    if (auto reg = settle_frames(*group_, t->tid, *proc_, objs, block, true, name); !reg) {
      if (auto undo = settle_frames(*group_, t->tid, *proc_, objs, block, false, name); !undo) {
        (void)rs.finish();
        (void)group_->resume_all();
        return std::unexpected(std::move(reg.error()).consequence(
            fmt::format("{}; the image stays mapped until the next hotsplice run on PID {} repairs it",
                        undo.error().message(), proc_->pid())));
      }
      return unmap_and_fail(std::move(reg.error()).consequence("upload rolled back"));
    }
  }
  timer.mark("unwind");
  HS_FAULT_POINT("upload:unwind-registered");
  HS_CHECK(rs.finish());
  const bool load_hooks = !rec.hooks_of("load").empty();
  if (load_hooks) HS_CHECK(run_load_hooks(rec, t->tid));  // commits the record
  HS_CHECK(group_->resume_all());
  timer.mark("protect");
  HS_FAULT_POINT("upload:protected");

  if (!load_hooks) {
    rec.upload_seq = state_.next_seq++;
    state_.payloads.push_back(std::move(rec));
  }
  state_.journal.reset();
  HS_CHECK(commit());
  timer.mark("commit");
  timer.put("bytes", static_cast<long long>(linked.image.size()));
  HS_FAULT_POINT("upload:committed");
  return {};
}

Status Session::apply(std::string_view name) {
  HS_CHECK(check_code(state_, memory_of(*proc_), proc_->pid()));
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
  return switch_payload(JournalOp::Apply, *p);
}

Status Session::revert(std::string_view name) {
  HS_CHECK(check_code(state_, memory_of(*proc_), proc_->pid()));
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state != PayloadState::Applied) return fail(ErrorKind::State, "payload '{}' is not APPLIED", name);
  const PayloadRecord* top = state_.top_of_stack(p->object_path);
  if (top != p)
    return fail(ErrorKind::State, "payload '{}' is not the top of the applied stack of {}: revert '{}' first", name,
                p->object_path, top->name);
  return switch_payload(JournalOp::Revert, *p);
}

// Apply or revert of one payload whose state and place in the stack have
// been checked: plan the writes, run the pre- hook, the stop window, the
// post- hook.
Status Session::switch_payload(JournalOp op, const PayloadRecord& p) {
  const bool on = op == JournalOp::Apply;
  const std::string name = p.name;
  Overlay mem(memory_of(*proc_));
  Plan plan;
  HS_CHECK(on ? plan_apply(p, mem, plan) : plan_revert(p, mem, plan));
  const PayloadRecord* involved = &p;
  HS_CHECK(plan_call_sites(state_, std::span<const PayloadRecord* const>(&involved, 1), opts_.redirect_calls, mem));
  plan.writes = mem.take_writes();
  if (const HookRecord* h = p.hook(on ? "apply" : "revert")) plan.action_hooks.emplace_back(name, *h);
  HS_CHECK(run_pre_hook(name, on ? "preapply" : "prerevert", op));
  plan.detach_when_done = !p.hook(on ? "postapply" : "postrevert");
  HS_CHECK(execute(op, name, plan));
  HS_FAULT_POINT(on ? "apply:committed" : "revert:committed");
  return run_post_hook(name, on ? "postapply" : "postrevert");
}

Status Session::replace(std::string_view name) {
  HS_CHECK(check_code(state_, memory_of(*proc_), proc_->pid()));
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
  Overlay mem(memory_of(*proc_));
  Plan plan;
  for (const PayloadRecord* old : stack) {
    HS_CHECK(plan_revert(*old, mem, plan));
    plan.reverted.push_back(old->name);
    if (const HookRecord* h = old->hook("revert")) plan.action_hooks.emplace_back(old->name, *h);
  }
  HS_CHECK(plan_apply(*p, mem, plan));
  HS_CHECK(plan_call_sites(state_, involved, opts_.redirect_calls, mem));
  plan.writes = mem.take_writes();
  if (const HookRecord* h = p->hook("apply")) plan.action_hooks.emplace_back(p->name, *h);
  plan.detach_when_done = true;  // replace runs no post-hooks
  HS_CHECK(execute(JournalOp::Replace, name, plan));
  HS_FAULT_POINT("replace:committed");
  return {};
}

Status Session::unload(std::string_view name) {
  HS_CHECK(check_code(state_, memory_of(*proc_), proc_->pid()));
  PayloadRecord* p = HS_TRY(need(name));
  if (p->state != PayloadState::Checked)
    return fail(ErrorKind::State, "payload '{}' is {}; revert it before unloading", name, state_name(p->state));
  // Nothing may refer into it; checked again with every thread stopped.
  const auto gots = got_areas(*HS_TRY(objects()));
  HS_CHECK(check_unreferenced(state_, *p, gots, memory_of(*proc_), proc_->pid()));
  Journal j;
  j.op = JournalOp::Unload;
  j.payload = p->name;
  j.tool_pid = static_cast<u64>(getpid());
  j.map_base = p->base;
  j.map_size = p->size;
  state_.journal = j;
  HS_CHECK(commit());
  HS_FAULT_POINT("unload:journaled");
  HS_CHECK(run_unload_hooks(name));
  p = HS_TRY(need(name));
  // The unwinder forgets the payload's table before its memory goes, with
  // the process running (engine/unwind_frames.h); it learns it again if the
  // unload fails after this.
  const std::optional<RemoteAddr> block = unwind_block_of(*p);
  const auto& objs = *HS_TRY(objects());
  auto reregister = [&](Error e) -> Status {
    if (block)
      if (auto st = settle_frames_running(*group_, *proc_, objs, *block, true, name); !st)
        e.consequence(fmt::format("and it stays unknown to the unwinder: {}", st.error().message()));
    return std::unexpected(std::move(e));
  };
  if (block) {
    if (auto st = settle_frames_running(*group_, *proc_, objs, *block, false, name); !st) {
      state_.journal.reset();
      (void)commit();
      return reregister(std::move(st.error()).consequence("the payload stays loaded"));
    }
    HS_FAULT_POINT("unload:unwind-deregistered");
  }

  std::vector<GuardedRange> guards{{p->range(), fmt::format("payload '{}'", name)}};
  PhaseTimer timer("unload");
  if (auto st = enter_stop_window(JournalOp::Unload, name, guards, timer); !st) return reregister(st.error());
  if (auto st = check_unreferenced(state_, *p, gots, memory_of(*proc_), proc_->pid()); !st) {
    state_.journal.reset();
    (void)commit();
    (void)group_->resume_all();
    return reregister(st.error());
  }
  TracedThread* t = nullptr;
  for (auto& th : group_->threads())
    if (th.stopped && th.pending_signal == 0) t = &th;
  if (!t) t = &group_->threads().front();
  {
    auto rs = HS_TRY(RemoteSyscalls::create(*group_, *t, *proc_));
    HS_CHECK(rs.munmap(RemoteAddr(p->base), p->size));
    HS_CHECK(rs.finish());
  }
  HS_FAULT_POINT("unload:unmapped");
  // Committed with the threads still stopped; detaching resumes them.
  forget_patches_of(state_, *p);
  std::erase_if(state_.payloads, [&](const PayloadRecord& r) { return r.name == name; });
  state_.journal.reset();
  HS_CHECK(commit());
  HS_CHECK(opts_.release_when_done ? close() : group_->resume_all());
  HS_FAULT_POINT("unload:committed");
  return {};
}

Status Session::load(std::string_view name, const std::string& file) {
  HS_CHECK(check_code(state_, memory_of(*proc_), proc_->pid()));  // before there is anything to clean up
  HS_CHECK(upload(name, file));
  auto st = apply(name);
  if (st) return {};
  auto un = unload(name);
  if (un) return st;
  // Both failed: say what the process holds now and how to finish, from the
  // state last committed (the unload may have got part of the way).
  const PayloadRecord* p = state_.find(name);
  std::string left;
  if (!p)
    left = fmt::format("payload '{}' is no longer in PID {}", name, proc_->pid());
  else
    left = fmt::format("payload '{}' stays loaded in PID {}, {}{}; to remove it: hotsplice {} {} {}", name,
                       proc_->pid(), state_name(p->state),
                       p->unload_hooks_started ? " (its unload hooks have run and will not run again)" : "",
                       p->state == PayloadState::Applied ? "revert" : "unload", proc_->pid(), name);
  return std::unexpected(Error(st.error().kind(), fmt::format("{}; unloading it again failed too: {}; {}",
                                                              st.error().message(), un.error().message(), left)));
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
