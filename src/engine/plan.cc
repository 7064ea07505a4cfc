// Plans the writes of apply, revert and replace against an overlay of target
// memory: see plan.h.
#include "engine/plan.h"

#include <sys/mman.h>

#include <algorithm>
#include <set>

#include "arch/x86_64.h"
#include "engine/call_sites.h"
#include "process/process.h"

namespace hs {

MemoryReader memory_of(const Process& proc) {
  return [&proc](RemoteAddr addr, size_t len) { return proc.read(addr, len); };
}

Result<Bytes> Overlay::read(u64 addr, size_t len) const {
  Bytes b = HS_TRY(read_(RemoteAddr(addr), len));
  for (const auto& w : writes_) {
    for (size_t i = 0; i < w.after.size(); i++) {
      u64 a = w.addr + i;
      if (a >= addr && a < addr + len) b[a - addr] = w.after[i];
    }
  }
  return b;
}

void Overlay::write(u64 addr, Bytes before, Bytes after) {
  writes_.push_back(JournalWrite{addr, std::move(before), std::move(after)});
}

Status plan_apply(const PayloadRecord& p, Overlay& mem, Plan& plan) {
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
                           fmt::format("function {}", f.quoted())});
    // Its cold parts are the same function's code, elsewhere.
    for (const auto& [addr, size] : f.cold)
      plan.guards.push_back({{RemoteAddr(addr), RemoteAddr(addr + size)},
                             fmt::format("the cold part of function {} at {:#x}", f.quoted(), addr)});
  }
  return {};
}

Status plan_revert(const PayloadRecord& p, Overlay& mem, Plan& plan) {
  for (size_t i = p.funcs.size(); i-- > 0;) {
    const FuncState& f = p.funcs[i];
    Bytes cur = HS_TRY(mem.read(f.site(), f.insn.size()));
    if (cur != f.insn)
      return fail(ErrorKind::Internal, "payload '{}': function '{}' at {:#x} holds {}, not this payload's patch {}",
                  p.name, f.name, f.site(), to_hex(cur), to_hex(f.insn));
    mem.write(f.site(), cur, f.undo);
    plan.guards.push_back({{RemoteAddr(f.site()), RemoteAddr(f.site() + f.insn.size())},
                           fmt::format("the patched entry of function {}", f.quoted())});
  }
  for (const auto& r : p.regions)
    if (r.prot & PROT_EXEC)
      plan.guards.push_back({{RemoteAddr(p.base + r.offset), RemoteAddr(p.base + r.offset + r.size)},
                             fmt::format("the code of payload '{}'", p.name)});
  return {};
}

Status plan_call_sites(const RegistryState& state, std::span<const PayloadRecord* const> involved,
                       bool redirect_calls, Overlay& mem) {
  const std::string& object = involved.front()->object_path;
  std::set<u64> fns;
  for (const PayloadRecord* p : involved)
    for (const FuncState& f : p->funcs) fns.insert(f.old_addr);

  // Every function entry's patched or expected bytes, of any payload here.
  std::vector<RemoteRange> entries;
  for (const PayloadRecord& q : state.payloads)
    if (q.object_path == object)
      for (const FuncState& g : q.funcs)
        entries.push_back({RemoteAddr(g.old_addr),
                           RemoteAddr(g.old_addr + std::max<u64>(g.patch_offset + g.insn.size(), g.expect.size()))});

  const auto recorded = recorded_call_sites(state, object);
  for (const u64 fn : fns) {
    u64 dest = fn;
    std::vector<u64> known{fn};
    for (const PayloadRecord& q : state.payloads) {
      if (q.object_path != object) continue;
      for (const FuncState& g : q.funcs) {
        if (g.old_addr != fn || g.new_addr == 0) continue;
        known.push_back(g.new_addr);
        if (redirect_calls && HS_TRY(mem.read(g.site(), g.insn.size())) == g.insn) dest = g.new_addr;
      }
    }
    const auto it = recorded.find(fn);
    if (it == recorded.end()) continue;
    for (const u64 site : it->second) {
      const RemoteRange bytes{RemoteAddr(site), RemoteAddr(site + x86_64::kBranchRel32Size)};
      if (std::ranges::any_of(entries, [&](const RemoteRange& e) { return e.overlaps(bytes); })) continue;
      const Bytes cur = HS_TRY(mem.read(site, x86_64::kBranchRel32Size));
      const auto now = x86_64::branch_rel32_destination(site, cur);
      if (!now || *now == dest || std::ranges::find(known, *now) == known.end()) continue;
      const auto want = x86_64::branch_rel32_displacement(site, dest);
      if (!want) continue;
      Bytes after(sizeof *want);
      store_le(after.data(), *want);
      mem.write(site + 1, Bytes(cur.begin() + 1, cur.end()), std::move(after));
    }
  }
  return {};
}

}  // namespace hs
