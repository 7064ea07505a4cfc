// `hotsplice recover`: rebuilding the registry of a process from its payload
// mappings and patch sites, and optionally reverting every patch (see
// recover.h for what is read, decided and written).
#include "engine/recover.h"

#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "arch/x86_64.h"
#include "engine/call_sites.h"
#include "engine/ifunc.h"
#include "engine/func_parts.h"
#include "engine/placement.h"
#include "engine/plan.h"
#include "engine/unwind_frames.h"
#include "payload/descriptor.h"
#include "payload/payload.h"
#include "process/named_memfd.h"
#include "process/objects.h"
#include "process/process.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"

namespace hs {
namespace {

constexpr u64 kMaxNameLen = 1024;       // as Payload::parse allows
constexpr size_t kDescriptorReadMax = 1024;  // a descriptor is at most 192 + 3 + 3 * 255 bytes

// One payload mapping found in /proc/PID/maps.
struct Mapping {
  std::string name;
  u64 base = 0, size = 0;
  std::vector<MapEntry> entries;
};

std::optional<std::string> payload_name_of(std::string_view path) {
  const std::string prefix = "/memfd:" + payload_mapping_name("");
  if (!path.starts_with(prefix)) return std::nullopt;
  path.remove_prefix(prefix.size());
  if (path.ends_with(" (deleted)")) path.remove_suffix(10);
  return std::string(path);
}

std::vector<Mapping> payload_mappings(const std::vector<MapEntry>& maps) {
  std::map<std::pair<std::string, u64>, Mapping> by;
  for (const MapEntry& m : maps) {
    auto name = payload_name_of(m.path);
    if (!name || m.offset > m.range.begin.value()) continue;
    const u64 base = m.range.begin.value() - m.offset;
    Mapping& g = by[{*name, base}];
    g.name = *name;
    g.base = base;
    g.size = std::max(g.size, m.range.end.value() - base);
    g.entries.push_back(m);
  }
  std::vector<Mapping> out;
  for (auto& [k, g] : by) out.push_back(std::move(g));
  std::ranges::sort(out, [](const Mapping& a, const Mapping& b) { return a.base < b.base; });
  return out;
}

// The bytes of the object's file at runtime address [addr, addr + len), if a
// PT_LOAD of the file holds them whole.
std::optional<Bytes> file_bytes(const MappedObject& obj, u64 addr, size_t len) {
  if (!obj.elf || addr < obj.bias.value()) return std::nullopt;
  const u64 vaddr = addr - obj.bias.value();
  const ByteView file = obj.elf->bytes();
  for (const auto& ph : obj.elf->program_headers()) {
    if (ph.p_type != PT_LOAD) continue;
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) continue;
    if (vaddr < ph.p_vaddr || vaddr - ph.p_vaddr > ph.p_filesz || len > ph.p_filesz - (vaddr - ph.p_vaddr)) continue;
    const ByteView b = file.subspan(ph.p_offset + (vaddr - ph.p_vaddr), len);
    return Bytes(b.begin(), b.end());
  }
  return std::nullopt;
}

// A recovered payload with what recover needs beside its record.
struct Found {
  RecoveredPayload out;
  const MappedObject* obj = nullptr;
};

// The original bytes at f's patch site: the object's file, else the
// payload's expectation where it covers the site.
std::optional<Bytes> original_at(const Found& p, const FuncState& f, u64 addr, size_t len) {
  if (auto b = file_bytes(*p.obj, addr, len)) return b;
  const u64 from = addr - f.old_addr;
  if (addr >= f.old_addr && from + len <= f.expect.size())
    return Bytes(f.expect.begin() + static_cast<long>(from), f.expect.begin() + static_cast<long>(from + len));
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> parse_modinfo(ByteView b) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (i < b.size()) {
    size_t j = i;
    while (j < b.size() && b[j] != 0) j++;
    std::string s(b.begin() + static_cast<long>(i), b.begin() + static_cast<long>(j));
    if (auto eq = s.find('='); eq != std::string::npos && eq > 0) out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
    i = j + 1;
  }
  std::ranges::stable_sort(out, {}, &std::pair<std::string, std::string>::first);
  return out;
}

// The record of the payload mapped at `m`, from its image descriptor.
// nullopt (with a note) when it has none or its object is not mapped.
Result<std::optional<Found>> read_payload(const Process& proc, const std::vector<MappedObject>& objs, const Mapping& m,
                                          std::vector<std::string>& notes) {
  const std::string where = fmt::format("payload mapping '{}' at {:#x}", m.name, m.base);
  std::optional<ImageDescriptor> desc;
  for (const MapEntry& e : m.entries) {
    Bytes head = HS_TRY_CTX(proc.read(e.range.begin, std::min<u64>(kDescriptorReadMax, e.range.size())), where);
    desc = HS_TRY_CTX(parse_descriptor(head, m.size), where);
    if (desc) break;
  }
  if (!desc) {
    notes.push_back(fmt::format("{}: no image descriptor (uploaded by an older hotsplice?); left as it is", where));
    return std::optional<Found>();
  }
  Found f;
  PayloadRecord& rec = f.out.record;
  rec.name = m.name;
  rec.build_id = desc->build_id;
  rec.depends = desc->depends;
  rec.object_depends = desc->object_depends;
  auto obj = find_object(objs, rec.object_depends, proc.pid());
  if (!obj) {
    notes.push_back(fmt::format("{}: {}; left as it is", where, obj.error().message()));
    return std::optional<Found>();
  }
  f.obj = *obj;
  rec.object_path = f.obj->path;
  rec.base = m.base;
  rec.size = m.size;
  for (const MapEntry& e : m.entries) rec.regions.push_back({e.range.begin.value() - m.base, e.range.size(), e.prot});
  rec.eh_frame_offset = desc->eh_frame.offset;
  rec.eh_frame_size = desc->eh_frame.count;
  if (desc->modinfo.count)
    rec.modinfo = parse_modinfo(HS_TRY(proc.read(RemoteAddr(m.base + desc->modinfo.offset), desc->modinfo.count)));
  for (size_t k = 0; k < kHookKinds.size(); k++) {
    const ImageSpan& h = desc->hooks[k];
    if (!h.count) continue;
    Bytes slots = HS_TRY(proc.read(RemoteAddr(m.base + h.offset), h.count * kHookSlotSize));
    for (u64 i = 0; i < h.count; i++)
      if (u64 a = load_le<u64>(slots.data() + i * kHookSlotSize))
        rec.hooks.push_back({std::string(kHookKinds[k]), fmt::format("{:#x}", a), a});
  }

  const RemoteRange image{RemoteAddr(m.base), RemoteAddr(m.base + m.size)};
  Bytes entries = HS_TRY(proc.read(RemoteAddr(m.base + desc->funcs.offset), desc->funcs.count * kFuncSize));
  for (u64 i = 0; i < desc->funcs.count; i++) {
    const u8* e = entries.data() + i * kFuncSize;
    const std::string ctx = fmt::format("{}: function #{}", where, i);
    FuncState fs;
    const u64 name_at = load_le<u64>(e + kFuncNameOff);
    if (!image.contains(RemoteAddr(name_at)))
      return fail(ErrorKind::Corrupt, "{}: name pointer {:#x} is outside the mapping", ctx, name_at);
    Bytes name = HS_TRY(proc.read(RemoteAddr(name_at), std::min<u64>(kMaxNameLen + 1, m.base + m.size - name_at)));
    auto nul = std::ranges::find(name, 0);
    if (nul == name.end()) return fail(ErrorKind::Corrupt, "{}: its name is not NUL-terminated", ctx);
    fs.name.assign(name.begin(), nul);
    fs.new_addr = load_le<u64>(e + kFuncNewAddrOff);
    fs.old_addr = load_le<u64>(e + kFuncOldAddrOff);
    fs.new_size = load_le<u32>(e + kFuncNewSizeOff);
    fs.old_size = load_le<u32>(e + kFuncOldSizeOff);
    const u8 bits = e[kFuncExpectOff];  // enabled:1, len:5, rsv:2
    if (bits & 1) {
      const size_t len = std::min<size_t>((bits >> 1) & 0x1f, kMaxExpectLen);
      fs.expect.assign(e + kFuncExpectOff + kExpectDataOff, e + kFuncExpectOff + kExpectDataOff + len);
    }
    if (!f.obj->span.contains(RemoteAddr(fs.old_addr)))
      return fail(ErrorKind::Corrupt, "{} ('{}'): old_addr {:#x} is outside {}", ctx, fs.name, fs.old_addr,
                  f.obj->path);
    if (fs.new_addr && !image.contains(RemoteAddr(fs.new_addr)))
      return fail(ErrorKind::Corrupt, "{} ('{}'): new_addr {:#x} is outside the mapping", ctx, fs.name, fs.new_addr);
    fs.implementation = implementation_of(*f.obj, fs.name, RemoteAddr(fs.old_addr));  // an IFUNC's (engine/ifunc.h)
    // Where the patch goes: after an endbr64 the original function starts with.
    const size_t head_len = std::min<u64>(fs.old_size, x86_64::kEndbrSize);
    auto head = file_bytes(*f.obj, fs.old_addr, head_len);
    if (!head) head = HS_TRY(proc.read(RemoteAddr(fs.old_addr), head_len));
    fs.patch_offset = static_cast<u32>(x86_64::patch_offset(*head));
    if (fs.new_addr == 0) {
      if (fs.new_size == 0 || fs.new_size > fs.old_size)
        return fail(ErrorKind::Corrupt, "{} ('{}'): NOP size {:#x}", ctx, fs.name, fs.new_size);
      fs.insn = x86_64::make_nops(fs.new_size);
    } else {
      fs.insn = HS_TRY_CTX(x86_64::make_jump(RemoteAddr(fs.site()), RemoteAddr(fs.new_addr)), ctx);
    }
    describe_function_parts(fs, *f.obj);
    rec.funcs.push_back(std::move(fs));
  }
  // The direct calls to each replaced function, found again in the file.
  std::vector<u64> replaced;
  for (const FuncState& fs : rec.funcs)
    if (fs.new_addr) replaced.push_back(fs.old_addr);
  if (rec.funcs.empty())
    notes.push_back(fmt::format("payload '{}' patches no function, so the code cannot say whether it was applied: "
                                "recovered as CHECKED",
                                m.name));
  const auto sites = HS_TRY(find_call_sites(*f.obj, replaced));
  // Calls are only found inside functions the symbols name: a stripped
  // object read without its debug file may hide calls an upload that had it
  // pointed at a replacement.
  if (auto syms = f.obj->symbols(); !replaced.empty() && syms && !(*syms)->stripped().empty())
    notes.push_back(fmt::format("payload '{}': {} is {}, so direct calls from its local functions were not looked "
                                "for; if it was uploaded with --debug-dir, recover with the same",
                                m.name, f.obj->path, (*syms)->stripped()));
  for (FuncState& fs : rec.funcs)
    if (auto it = sites.find(fs.old_addr); it != sites.end() && fs.new_addr)
      for (const CallSite& c : it->second) fs.call_sites.push_back(c.addr);
  return std::optional<Found>(std::move(f));
}

bool overlaps(u64 a, size_t alen, u64 b, size_t blen) { return a < b + blen && b < a + alen; }

// Decides every payload's state from the bytes `mem` shows (see recover.h),
// fills in states, undo bytes and apply order, and says per function what is
// at its site. An inconsistency is an error naming the function and address.
Status decide(std::vector<Found>& ps, const Overlay& mem, pid_t pid, u64& seq) {
  const std::string hint = fmt::format("; `hotsplice recover {} --revert-all` puts the original bytes back", pid);
  // Showing: a patch site holds its patch, or a direct call is pointed at
  // one of its replacements (a payload whose entry jump is gone but whose
  // calls are still redirected is in use, and half-applied).
  std::vector<bool> shows(ps.size());
  for (size_t i = 0; i < ps.size(); i++)
    for (const FuncState& f : ps[i].out.record.funcs) {
      if (HS_TRY(mem.read(f.site(), f.insn.size())) == f.insn) shows[i] = true;
      for (u64 cs : f.call_sites) {
        const Bytes b = HS_TRY(mem.read(cs, x86_64::kBranchRel32Size));
        if (x86_64::is_branch_rel32_opcode(b[0]) && x86_64::branch_rel32_target(cs, ByteView(b).subspan(1)) == f.new_addr)
          shows[i] = true;
      }
    }

  std::map<std::string, std::vector<size_t>> by_object;
  for (size_t i = 0; i < ps.size(); i++) by_object[ps[i].out.record.object_path].push_back(i);
  for (auto& [object, members] : by_object) {
    auto rec = [&](size_t i) -> PayloadRecord& { return ps[i].out.record; };
    // Applied: showing, or below an applied one in its depends chain.
    std::vector<bool> applied(ps.size());
    std::vector<size_t> todo;
    for (size_t i : members)
      if (shows[i]) {
        applied[i] = true;
        todo.push_back(i);
      }
    while (!todo.empty()) {
      const size_t i = todo.back();
      todo.pop_back();
      if (rec(i).depends == rec(i).object_depends) continue;
      auto below = std::ranges::find_if(members, [&](size_t j) { return rec(j).build_id == rec(i).depends; });
      if (below == members.end())
        return fail(ErrorKind::Corrupt,
                    "payload '{}' is applied in PID {}, but no payload mapped there has the build-id it depends on ({}){}",
                    rec(i).name, pid, to_hex(rec(i).depends), hint);
      if (!applied[*below]) {
        applied[*below] = true;
        todo.push_back(*below);
      }
    }
    // The stack, oldest first, along the depends chain from the object.
    std::vector<size_t> stack;
    Bytes cur = rec(members.front()).object_depends;
    for (;;) {
      std::vector<size_t> next;
      for (size_t j : members)
        if (applied[j] && rec(j).depends == cur && std::ranges::find(stack, j) == stack.end()) next.push_back(j);
      if (next.empty()) break;
      if (next.size() > 1)
        return fail(ErrorKind::Corrupt, "payloads '{}' and '{}' are both applied in PID {} on build-id {}{}",
                    rec(next[0]).name, rec(next[1]).name, pid, to_hex(cur), hint);
      stack.push_back(next[0]);
      cur = rec(next[0]).build_id;
    }
    for (size_t i : members)
      if (applied[i] && std::ranges::find(stack, i) == stack.end())
        return fail(ErrorKind::Corrupt, "payload '{}' is applied in PID {} but does not stack on {}{}", rec(i).name, pid,
                    object, hint);

    // Every site of every payload: who should be there, and the undo bytes.
    for (size_t i : members) {
      const auto pos = std::ranges::find(stack, i);
      PayloadRecord& r = rec(i);
      for (FuncState& f : r.funcs) {
        const Bytes now = HS_TRY(mem.read(f.site(), f.insn.size()));
        // The payload whose patch should be at this site: the highest applied one writing it.
        const PayloadRecord* owner = nullptr;
        const FuncState* owner_f = nullptr;
        for (size_t j : stack)
          for (const FuncState& g : rec(j).funcs)
            if (g.site() == f.site()) {
              owner = &rec(j);
              owner_f = &g;
            }
        if (pos != stack.end() && owner && now != owner_f->insn)
          return fail(ErrorKind::Corrupt, "payload '{}' is applied in PID {}, but function '{}' at {:#x} holds {}, not {}{}",
                      owner->name, pid, f.name, f.site(), to_hex(now), to_hex(owner_f->insn), hint);
        if (pos != stack.end()) {
          // What reverting it gives back: the original, with the patches of
          // the payloads below it laid over.
          auto undo = original_at(ps[i], f, f.site(), f.insn.size());
          if (!undo)
            return fail(ErrorKind::Corrupt,
                        "payload '{}' is applied in PID {}, but the original bytes of function '{}' at {:#x} are not "
                        "known (not in the object's file, not in its expectation)",
                        r.name, pid, f.name, f.site());
          for (auto lower = stack.begin(); lower != pos; ++lower)
            for (const FuncState& g : rec(*lower).funcs)
              if (overlaps(g.site(), g.insn.size(), f.site(), f.insn.size()))
                for (size_t b = 0; b < g.insn.size(); b++)
                  if (g.site() + b >= f.site() && g.site() + b < f.site() + f.insn.size())
                    (*undo)[g.site() + b - f.site()] = g.insn[b];
          f.undo = *undo;
          f.applied = true;
        } else {
          f.applied = false;
          f.undo.clear();
        }
      }
      r.state = pos != stack.end() ? PayloadState::Applied : PayloadState::Checked;
      r.apply_seq = 0;
    }
    for (size_t i : stack) rec(i).apply_seq = seq++;
  }
  return {};
}

// What is at each function's patch site now, for the report; a site holding
// bytes that are neither the original nor a payload's patch is noted
// (`note_foreign`: --revert-all notes it itself).
Status describe_sites(std::vector<Found>& ps, const Overlay& mem, bool note_foreign,
                      std::vector<std::string>& notes) {
  for (Found& p : ps) {
    p.out.sites.clear();
    for (const FuncState& f : p.out.record.funcs) {
      RecoveredSite s{.func = f.name, .site = f.site()};
      const Bytes now = HS_TRY(mem.read(f.site(), f.insn.size()));
      for (const Found& q : ps)
        for (const FuncState& g : q.out.record.funcs)
          if (s.found.empty() && g.site() == f.site() && g.insn == now)
            s.found = &q == &p ? std::string("its patch") : fmt::format("the patch of payload '{}'", q.out.record.name);
      if (s.found.empty()) {
        auto o = original_at(p, f, f.site(), f.insn.size());
        s.found = o && *o == now ? "the original bytes" : fmt::format("bytes {}", to_hex(now));
        if (note_foreign && !(o && *o == now))
          notes.push_back(fmt::format("payload '{}': function '{}' at {:#x} holds {}, neither {} nor a payload's patch; "
                                      "left as it is",
                                      p.out.record.name, f.name, f.site(), to_hex(now),
                                      o ? "its original bytes " + to_hex(*o) : std::string("its original bytes")));
      }
      p.out.sites.push_back(std::move(s));
    }
  }
  return {};
}

// --revert-all: the writes that put the original bytes back at every patch
// site holding a known patch, and at every call site redirected into a
// payload. What cannot be done is noted per site.
Status plan_revert_all(std::vector<Found>& ps, Overlay& mem, std::vector<std::string>& notes) {
  std::vector<u64> targets;  // every replacement a call may have been pointed at
  for (const Found& p : ps)
    for (const FuncState& f : p.out.record.funcs)
      if (f.new_addr) targets.push_back(f.new_addr);
  for (Found& p : ps) {
    PayloadRecord& r = p.out.record;
    for (size_t k = 0; k < r.funcs.size(); k++) {
      const FuncState& f = r.funcs[k];
      RecoveredSite& s = p.out.sites[k];
      const Bytes now = HS_TRY(mem.read(f.site(), f.insn.size()));
      const auto orig = original_at(p, f, f.site(), f.insn.size());
      if (orig && now == *orig) continue;
      bool known_patch = false;
      for (const Found& q : ps)
        for (const FuncState& g : q.out.record.funcs)
          if (g.site() == f.site() && g.insn == now) known_patch = true;
      if (!known_patch) {
        s.restored = fmt::format("left as it is: it holds {}, which no payload here wrote", to_hex(now));
        notes.push_back(fmt::format("payload '{}': function '{}' at {:#x}: {}", r.name, f.name, f.site(), s.restored));
      } else if (!orig) {
        s.restored = "left as it is: its original bytes are not known (not in the object's file, not in the "
                     "payload's expectation)";
        notes.push_back(fmt::format("payload '{}': function '{}' at {:#x}: {}", r.name, f.name, f.site(), s.restored));
      } else {
        mem.write(f.site(), now, *orig);
        s.restored = fmt::format("original bytes {} put back", to_hex(*orig));
      }
    }
    for (const FuncState& f : r.funcs)
      for (u64 cs : f.call_sites) {
        const Bytes now = HS_TRY(mem.read(cs, x86_64::kBranchRel32Size));
        const auto orig = file_bytes(*p.obj, cs, x86_64::kBranchRel32Size);
        if (!orig || now == *orig || now[0] != (*orig)[0]) continue;
        const u64 to = x86_64::branch_rel32_target(cs, ByteView(now).subspan(1));
        if (std::ranges::find(targets, to) == targets.end()) continue;
        mem.write(cs + 1, Bytes(now.begin() + 1, now.end()), Bytes(orig->begin() + 1, orig->end()));
      }
  }
  return {};
}

// Every registry mapping of the process, whatever it holds.
std::vector<RemoteRange> registry_mappings(const std::vector<MapEntry>& maps) {
  std::vector<RemoteRange> out;
  for (const MapEntry& m : maps)
    if (is_memfd_named(m.path, Registry::kMemfdName)) out.push_back(m.range);
  return out;
}

}  // namespace

Result<RecoveryReport> recover(pid_t pid, const RecoverOptions& opts) {
  auto proc = std::make_unique<Process>(HS_TRY(Process::open(pid)));
  ThreadGroup group = HS_TRY(ThreadGroup::seize(*proc));
  RecoveryReport report;

  // What the old registry was, for the report only: nothing of it is used.
  const auto maps = HS_TRY(proc->maps());
  const auto old_registries = registry_mappings(maps);
  const auto mappings = payload_mappings(maps);
  if (old_registries.empty() && mappings.empty())
    return fail(ErrorKind::State, "PID {} has nothing to recover: no payload mapping and no registry", pid);
  if (old_registries.empty()) {
    report.registry = "none";
  } else if (auto reg = Registry::find(*proc); !reg) {
    report.registry = "corrupt: " + reg.error().message();
  } else if (!*reg) {
    report.registry = "corrupt: no valid registry header";
  } else if (auto st = (*reg)->load(); !st) {
    report.registry = "corrupt: " + st.error().message();
  } else {
    report.registry = fmt::format("valid, {} payload{}", st->payloads.size(), st->payloads.size() == 1 ? "" : "s");
  }
  if (old_registries.size() > 1) report.registry += fmt::format(" ({} registry mappings)", old_registries.size());

  const auto objs = HS_TRY(mapped_objects(*proc, opts.debug));
  std::vector<Found> found;
  for (const Mapping& m : mappings)
    if (auto f = HS_TRY(read_payload(*proc, objs, m, report.notes))) found.push_back(std::move(*f));

  u64 seq = 1;
  Overlay mem(memory_of(*proc));
  HS_CHECK(describe_sites(found, mem, !opts.revert_all, report.notes));  // as they are before anything is written
  if (opts.revert_all) HS_CHECK(plan_revert_all(found, mem, report.notes));
  HS_CHECK(decide(found, mem, pid, seq));

  // The writes of --revert-all, with every thread stopped.
  if (const auto& writes = mem.writes(); !writes.empty()) {
    HS_CHECK(group.stop_all());
    for (size_t i = 0; i < writes.size(); i++) {
      if (auto st = proc->write(RemoteAddr(writes[i].addr), writes[i].after); !st) {
        for (size_t k = i; k-- > 0;) (void)proc->write(RemoteAddr(writes[k].addr), writes[k].before);
        (void)group.resume_all();
        return std::unexpected(st.error());
      }
    }
    HS_CHECK(group.resume_all());
  }

  // Every payload that stays is known to the unwinder (unwind_frames.h):
  // whatever left the registry in pieces may have left that half-done too.
  for (const Found& f : found)
    if (auto block = unwind_block_of(f.out.record)) {
      auto st = settle_frames_running(group, *proc, objs, *block, true, f.out.record.name);
      if (!st)
        report.notes.push_back(fmt::format("warning: {}", st.error().message()));
      else if (*st == FrameChange::Registered)
        report.notes.push_back(fmt::format("payload '{}': its unwind table was not known to the unwinder; registered it",
                                           f.out.record.name));
    }

  // A fresh registry, and no other.
  if (!old_registries.empty()) {
    TracedThread* t = HS_TRY(group.stop_one());
    auto rs = HS_TRY(RemoteSyscalls::create(group, *t, *proc));
    for (const RemoteRange& r : old_registries) HS_CHECK(rs.munmap(r.begin, r.size()));
    HS_CHECK(rs.finish());
    HS_CHECK(group.resume_all());
  }
  RegistryState state;
  std::vector<size_t> order(found.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  // Upload order: along the depends chains (what each stacks on first), then by address.
  auto depth = [&](size_t i) {
    size_t d = 0;
    for (const PayloadRecord* r = &found[i].out.record; r->depends != r->object_depends && d < found.size(); d++) {
      auto below = std::ranges::find_if(found, [&](const Found& f) { return f.out.record.build_id == r->depends; });
      if (below == found.end()) break;
      r = &below->out.record;
    }
    return d;
  };
  std::ranges::stable_sort(order, [&](size_t a, size_t b) { return depth(a) < depth(b); });
  for (size_t i : order) {
    found[i].out.record.upload_seq = seq++;
    state.payloads.push_back(found[i].out.record);
    report.payloads.push_back(found[i].out);
  }
  state.next_seq = seq;
  Registry reg = HS_TRY(Registry::create(*proc, group));
  HS_CHECK(reg.commit(state));
  for (const auto& r : registry_mappings(HS_TRY(proc->maps()))) report.registry_base = r.begin.value();
  HS_CHECK(group.detach());

  report.unknown = {"the payload file's path", "its exports (later payloads cannot link against its symbols)",
                    "the symbol names of its hooks (named by address)", "whether its unload hooks had run"};
  return report;
}

}  // namespace hs
