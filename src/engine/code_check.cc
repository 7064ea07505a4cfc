// Checking the bytes in the process against the registry, and what still
// refers into a payload before it is unmapped: see code_check.h.
#include "engine/code_check.h"

#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "arch/x86_64.h"
#include "engine/call_sites.h"
#include "engine/instrument.h"
#include "payload/eh_frame.h"

namespace hs {
namespace {

constexpr size_t kBranchSize = x86_64::kBranchRel32Size;

// Small ranges of target memory read with few reads: ranges less than
// kMergeGap apart are read as one (up to kMaxSpan bytes); if such a read
// fails (a hole between mappings), each range is read alone.
class Snapshot {
 public:
  static constexpr u64 kMergeGap = 2048;
  static constexpr u64 kMaxSpan = 256 << 10;

  void want(u64 addr, size_t len) {
    if (len) ranges_.emplace_back(addr, len);
  }

  Status read(const MemoryReader& reader) {
    std::ranges::sort(ranges_);
    for (size_t i = 0; i < ranges_.size();) {
      const u64 begin = ranges_[i].first;
      u64 end = begin + ranges_[i].second;
      size_t j = i + 1;
      for (; j < ranges_.size(); j++) {
        const auto [a, len] = ranges_[j];
        const u64 e = std::max(end, a + len);
        if (a > end + kMergeGap || e - begin > kMaxSpan) break;
        end = e;
      }
      if (auto all = reader(RemoteAddr(begin), end - begin)) {
        pieces_.push_back({begin, std::move(*all)});
      } else {
        for (size_t k = i; k < j; k++)
          pieces_.push_back({ranges_[k].first, HS_TRY(reader(RemoteAddr(ranges_[k].first), ranges_[k].second))});
      }
      i = j;
    }
    return {};
  }

  // The bytes of a range given to want() (empty for any other).
  ByteView at(u64 addr, size_t len) const { return const_cast<Snapshot*>(this)->at_mut(addr, len); }
  // The same, to change the copy.
  std::span<u8> at_mut(u64 addr, size_t len) {
    auto it = std::ranges::upper_bound(pieces_, addr, {}, &Piece::addr);
    while (it != pieces_.begin()) {
      --it;
      if (addr + len <= it->addr + it->bytes.size()) return std::span<u8>(it->bytes).subspan(addr - it->addr, len);
    }
    return {};
  }

 private:
  struct Piece {
    u64 addr;
    Bytes bytes;
  };
  std::vector<std::pair<u64, size_t>> ranges_;
  std::vector<Piece> pieces_;  // ascending by addr
};

// "e9 10 20 00 00"
std::string spaced_hex(ByteView b) { return fmt::format("{:02x}", fmt::join(b, " ")); }

bool starts_with(ByteView b, ByteView prefix) {
  return b.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), b.begin());
}

// One function record of one payload.
struct Claim {
  const PayloadRecord* p;
  const FuncState* f;
  bool applied() const { return p->state == PayloadState::Applied; }
  bool jumps() const { return f->new_addr != 0; }  // its insn is a jump into the payload (not NOPs)
};

// Every function record, by patch site.
std::map<u64, std::vector<Claim>> claims_by_site(const RegistryState& state) {
  std::map<u64, std::vector<Claim>> sites;
  for (const PayloadRecord& p : state.payloads)
    for (const FuncState& f : p.funcs) sites[f.site()].push_back({&p, &f});
  return sites;
}

// A replaced function and its recorded call sites.
struct Calls {
  std::string_view object;
  u64 fn;
  std::vector<u64> sites;
};

// Every replaced function of every object, with its recorded call sites.
std::vector<Calls> all_call_sites(const RegistryState& state) {
  std::set<std::string_view> objects;
  for (const PayloadRecord& p : state.payloads) objects.insert(p.object_path);
  std::vector<Calls> out;
  for (const std::string_view object : objects)
    for (auto& [fn, sites] : recorded_call_sites(state, object)) out.push_back({object, fn, std::move(sites)});
  return out;
}

// How many bytes at a patch site its records speak of.
size_t span_of(const std::vector<Claim>& claims) {
  size_t n = 0;
  for (const Claim& c : claims) n = std::max({n, c.f->insn.size(), c.f->undo.size()});
  return n;
}

// The topmost applied record among `claims` (highest apply_seq), or null.
const Claim* top_applied(const std::vector<Claim>& claims) {
  const Claim* top = nullptr;
  for (const Claim& c : claims)
    if (c.applied() && (!top || c.p->apply_seq > top->p->apply_seq)) top = &c;
  return top;
}

// The first record that lists `site` among the call sites of `fn`.
Claim recorder(const RegistryState& state, std::string_view object, u64 fn, u64 site) {
  for (const PayloadRecord& p : state.payloads)
    if (p.object_path == object)
      for (const FuncState& f : p.funcs)
        if (f.old_addr == fn && std::ranges::find(f.call_sites, site) != f.call_sites.end()) return {&p, &f};
  return {};  // unreachable: the site came from these records
}

// " in payload 'x' (CHECKED)" when addr lies in a payload's mapping.
std::string in_payload(const RegistryState& state, u64 addr) {
  for (const PayloadRecord& q : state.payloads)
    if (q.range().contains(RemoteAddr(addr))) return fmt::format(" in payload '{}' ({})", q.name, state_name(q.state));
  return "";
}

Status check_patch_site(u64 site, const std::vector<Claim>& claims, ByteView found, pid_t pid) {
  if (const Claim* top = top_applied(claims)) {
    const Bytes& want = top->f->insn;
    if (starts_with(found, want)) return {};
    return fail(
        ErrorKind::Corrupt,
        "PID {}: patch site of '{}' (payload '{}') at {:#x} holds {}, but the registry says it holds {} (APPLIED)", pid,
        top->f->name, top->p->name, site, spaced_hex(found.first(std::min(found.size(), want.size()))),
        spaced_hex(want));
  }
  // No payload is applied here: the original bytes, where a record saved
  // them (an undo that is not itself some payload's jump: a stacked
  // payload saved the jump below it), and never a payload's jump.
  std::vector<const Claim*> originals;
  for (const Claim& c : claims)
    if (!c.f->undo.empty() &&
        std::ranges::none_of(claims, [&](const Claim& d) { return d.jumps() && starts_with(c.f->undo, d.f->insn); }))
      originals.push_back(&c);
  if (std::ranges::any_of(originals, [&](const Claim* c) { return starts_with(found, c->f->undo); })) return {};
  const auto jump =
      std::ranges::find_if(claims, [&](const Claim& c) { return c.jumps() && starts_with(found, c.f->insn); });
  if (!originals.empty()) {
    const Claim& named = jump != claims.end() ? *jump : *originals.back();
    const Bytes& want = originals.back()->f->undo;
    return fail(ErrorKind::Corrupt,
                "PID {}: patch site of '{}' (payload '{}') at {:#x} holds {}, but the registry says it holds {} (the "
                "original bytes: no payload is APPLIED there)",
                pid, named.f->name, named.p->name, site, spaced_hex(found.first(std::min(found.size(), want.size()))),
                spaced_hex(want));
  }
  if (jump != claims.end())
    return fail(ErrorKind::Corrupt,
                "PID {}: patch site of '{}' (payload '{}') at {:#x} holds {}, the jump of payload '{}', but the "
                "registry says no payload is APPLIED there",
                pid, jump->f->name, jump->p->name, site, spaced_hex(found.first(jump->f->insn.size())), jump->p->name);
  return {};
}

}  // namespace

Status check_code(const RegistryState& state, const MemoryReader& read, pid_t pid) {
  PhaseTimer timer("check");
  const auto sites = claims_by_site(state);
  // Per function: the record at the top of its applied stack; and the
  // bytes applied patches cover (call sites there are patch bytes).
  std::map<u64, const Claim*> top_of;
  std::vector<RemoteRange> patched;
  for (const auto& [site, claims] : sites)
    if (const Claim* top = top_applied(claims)) {
      top_of[top->f->old_addr] = top;
      patched.push_back({RemoteAddr(site), RemoteAddr(site + top->f->insn.size())});
    }
  const std::vector<Calls> calls = all_call_sites(state);

  Snapshot snap;
  for (const auto& [site, claims] : sites) snap.want(site, span_of(claims));
  for (const Calls& c : calls)
    for (const u64 at : c.sites) snap.want(at, kBranchSize);
  HS_CHECK(snap.read(read));
  timer.mark("read");

  for (const auto& [site, claims] : sites)
    HS_CHECK(check_patch_site(site, claims, snap.at(site, span_of(claims)), pid));

  for (const auto& [object, fn, list] : calls) {
    const auto it = top_of.find(fn);
    const Claim* top = it == top_of.end() || !it->second->jumps() ? nullptr : it->second;
    for (const u64 at : list) {
      const RemoteRange bytes{RemoteAddr(at), RemoteAddr(at + kBranchSize)};
      if (std::ranges::any_of(patched, [&](const RemoteRange& r) { return r.overlaps(bytes); })) continue;
      const ByteView found = snap.at(at, kBranchSize);
      const auto dest = x86_64::branch_rel32_destination(at, found);
      if (dest && (*dest == fn || (top && *dest == top->f->new_addr))) continue;
      const Claim who = recorder(state, object, fn, at);
      const std::string now = dest ? fmt::format("a {} {:#x}{}", found[0] == x86_64::kCallRel32 ? "call to" : "jump to",
                                                 *dest, in_payload(state, *dest))
                                   : std::string("not a call or jump");
      const std::string alt =
          top ? fmt::format(" or to its replacement at {:#x} in payload '{}' (APPLIED)", top->f->new_addr, top->p->name)
              : std::string();
      return fail(ErrorKind::Corrupt,
                  "PID {}: call site of '{}' (payload '{}') at {:#x} holds {}, {}, but the registry says it goes to "
                  "'{}' at {:#x}{}",
                  pid, who.f->name, who.p->name, at, spaced_hex(found), now, who.f->name, fn, alt);
    }
  }
  timer.mark("compare");
  return {};
}

Status check_writes(std::span<const JournalWrite> writes, const MemoryReader& read, pid_t pid) {
  Snapshot snap;
  for (const JournalWrite& w : writes) snap.want(w.addr, std::max(w.before.size(), w.after.size()));
  HS_CHECK(snap.read(read));
  // Each write in order against the copy, as the earlier ones leave it.
  for (const JournalWrite& w : writes) {
    const std::span<u8> now = snap.at_mut(w.addr, std::max(w.before.size(), w.after.size()));
    if (!starts_with(now, w.before))
      return fail(ErrorKind::Corrupt,
                  "PID {}: {:#x} changed while the operation was prepared: it holds {}, not {} as it did a moment "
                  "ago; nothing was written",
                  pid, w.addr, spaced_hex(now.first(std::min(now.size(), w.before.size()))), spaced_hex(w.before));
    std::ranges::copy(w.after, now.begin());
  }
  return {};
}

void forget_patches_of(RegistryState& state, const PayloadRecord& gone) {
  for (const FuncState& g : gone.funcs) {
    if (g.undo.empty()) continue;  // never applied: nothing was applied on top of it
    const size_t n = std::min(g.insn.size(), g.undo.size());
    for (PayloadRecord& q : state.payloads) {
      if (&q == &gone) continue;
      for (FuncState& f : q.funcs) {
        const auto m = static_cast<long>(std::min(n, f.undo.size()));
        if (f.site() == g.site() && m > 0 && std::equal(g.insn.begin(), g.insn.begin() + m, f.undo.begin()))
          std::copy(g.undo.begin(), g.undo.begin() + m, f.undo.begin());
      }
    }
  }
}

std::vector<PointerArea> got_areas(std::span<const MappedObject> objs) {
  std::vector<PointerArea> out;
  for (const MappedObject& o : objs) {
    if (!o.elf) continue;
    for (const char* name : {".got", ".got.plt"}) {
      const auto idx = o.elf->find_section(name);
      if (!idx) continue;
      const auto& sh = o.elf->sections()[*idx];
      if (sh.sh_addr == 0 || sh.sh_size < 8 || sh.sh_type == SHT_NOBITS) continue;
      out.push_back({sh.sh_addr + o.bias.value(), sh.sh_size, "GOT slot", o.path});
    }
  }
  return out;
}

Status check_unreferenced(const RegistryState& state, const PayloadRecord& p, std::span<const PointerArea> areas,
                          const MemoryReader& read, pid_t pid) {
  PhaseTimer timer("unload-check");
  const RemoteRange range = p.range();
  auto refuse = [&](const std::string& what, u64 dest) -> Status {
    return fail(ErrorKind::State, "PID {}: cannot unload '{}': {} points into it at {:#x}", pid, p.name, what, dest);
  };
  const auto sites = claims_by_site(state);
  const std::vector<Calls> calls = all_call_sites(state);
  Snapshot snap;
  for (const auto& [site, claims] : sites) snap.want(site, kBranchSize);
  for (const Calls& c : calls)
    for (const u64 at : c.sites) snap.want(at, kBranchSize);
  HS_CHECK(snap.read(read));

  // The bytes at every known site, whatever the registry says they are.
  auto lands_in = [&](u64 at) -> std::optional<u64> {
    const auto dest = x86_64::branch_rel32_destination(at, snap.at(at, kBranchSize));
    if (dest && range.contains(RemoteAddr(*dest))) return dest;
    return std::nullopt;
  };
  for (const auto& [site, claims] : sites)
    if (const auto dest = lands_in(site))
      return refuse(fmt::format("the patch site of '{}' at {:#x} ({})", claims.front().f->name, site,
                                spaced_hex(snap.at(site, kBranchSize))),
                    *dest);
  for (const auto& [object, fn, list] : calls)
    for (const u64 at : list)
      if (const auto dest = lands_in(at))
        return refuse(fmt::format("the call site of '{}' at {:#x} ({})", recorder(state, object, fn, at).f->name, at,
                                  spaced_hex(snap.at(at, kBranchSize))),
                      *dest);

  for (const PayloadRecord& q : state.payloads) {
    if (&q == &p) continue;
    for (const HookRecord& h : q.hooks)
      if (range.contains(RemoteAddr(h.addr)))
        return refuse(fmt::format("the {} hook '{}' of payload '{}'", h.kind, h.name, q.name), h.addr);
  }

  // Pointers: the objects' GOTs and the other payloads' data (their GOT
  // slots, or a pointer to an export of this one).
  std::vector<PointerArea> all(areas.begin(), areas.end());
  for (const PayloadRecord& q : state.payloads)
    if (&q != &p)
      for (const RegionRecord& r : q.regions)
        if (!(r.prot & PROT_EXEC))
          all.push_back({q.base + r.offset, r.size, "pointer", fmt::format("payload '{}'", q.name)});
  for (const PointerArea& a : all) {
    auto bytes = read(RemoteAddr(a.addr), a.size);
    if (!bytes)
      return std::unexpected(std::move(
          bytes.error().context(fmt::format("PID {}: cannot unload '{}': reading {}", pid, p.name, a.owner))));
    // A payload's unwind block (payload/eh_frame.h) holds the unwinder's
    // object for its table, linked into libgcc's list: its link may point at
    // this payload's object until this one's table is deregistered.
    const bool unwind_block = bytes->size() >= kUnwindBlockSize &&
                              std::equal(kUnwindBlockMagic.begin(), kUnwindBlockMagic.end(), bytes->begin());
    for (size_t off = 0; off + 8 <= bytes->size(); off += 8) {
      if (unwind_block && off >= kUnwindBlockObjectOff && off < kUnwindBlockSize) continue;
      const u64 v = load_le<u64>(bytes->data() + off);
      if (range.contains(RemoteAddr(v)))
        return refuse(fmt::format("the {} at {:#x} of {}", a.what, a.addr + off, a.owner), v);
    }
  }
  timer.mark("pointers");
  return {};
}

}  // namespace hs
