// check_state (registry.h): everything a state read back from a target must
// satisfy before a verb acts on it. The registry lives in the target's own
// memory, so a target that scribbles over it (a bug, or a compromised
// service) controls every byte; the checksum only catches accidents. What a
// forged state could make hotsplice do is bounded here: names, states,
// counts, byte-string lengths, addresses (payloads disjoint, their code and
// hooks inside them), sequence numbers, and the journal, whose writes must
// each be at a patch site or a recorded call site with that site's length.
#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <set>

#include "arch/x86_64.h"
#include "engine/registry.h"
#include "support/text.h"

namespace hs {

bool valid_payload_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

namespace {

constexpr u64 kPage = 4096;
constexpr size_t kMaxExpect = 31;  // livepatch_func's expect.data
constexpr size_t kMaxImplementationName = 512;  // FuncState::implementation
constexpr std::string_view kHookKinds[] = {"load",    "unload",    "preapply", "apply",
                                           "postapply", "prerevert", "revert",   "postrevert"};

// A range [a, a + n) that does not wrap.
bool fits(u64 a, u64 n) { return a <= std::numeric_limits<u64>::max() - n; }

class Checker {
 public:
  Checker(const RegistryState& s, std::string_view who) : s_(s), who_(who) {}

  Status run() {
    std::set<std::string_view> names;
    std::set<u64> uploads, applies;
    std::vector<std::pair<u64, u64>> ranges;  // (base, end), of every payload
    for (const auto& p : s_.payloads) {
      if (!valid_payload_name(p.name)) return bad("a payload named '{}'", p.name);
      if (!names.insert(p.name).second) return bad("two payloads named '{}'", p.name);
      if (p.state != PayloadState::Checked && p.state != PayloadState::Applied)
        return bad("payload '{}' has state {}", p.name, static_cast<int>(p.state));
      if (p.base == 0 || p.size == 0 || p.base % kPage != 0 || !fits(p.base, p.size))
        return bad("payload '{}' is mapped at {:#x}+{:#x}", p.name, p.base, p.size);
      ranges.emplace_back(p.base, p.base + p.size);
      if (p.upload_seq == 0 || p.upload_seq >= s_.next_seq || !uploads.insert(p.upload_seq).second)
        return bad("payload '{}' has upload sequence {} (next {})", p.name, p.upload_seq, s_.next_seq);
      const bool applied = p.state == PayloadState::Applied;
      if (applied ? (p.apply_seq == 0 || p.apply_seq >= s_.next_seq || !applies.insert(p.apply_seq).second)
                  : p.apply_seq != 0)
        return bad("payload '{}' is {} with apply sequence {} (next {})", p.name, state_name(p.state), p.apply_seq,
                   s_.next_seq);
      if (p.eh_frame_offset > p.size || p.eh_frame_size > p.size - p.eh_frame_offset)
        return bad("payload '{}' has .eh_frame at {:#x}+{:#x} outside its {:#x} bytes", p.name, p.eh_frame_offset,
                   p.eh_frame_size, p.size);
      for (const auto& r : p.regions)
        if (r.offset > p.size || r.size > p.size - r.offset || (r.prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
          return bad("payload '{}' has a region at {:#x}+{:#x} (protection {:#x}) outside its {:#x} bytes", p.name,
                     r.offset, r.size, r.prot, p.size);
      for (const auto& [name, addr] : p.exports)
        if (addr < p.base || addr > p.base + p.size)
          return bad("payload '{}' exports '{}' at {:#x}, outside it", p.name, name, addr);
      for (const auto& h : p.hooks) {
        if (std::ranges::find(kHookKinds, h.kind) == std::end(kHookKinds))
          return bad("payload '{}' has a hook of kind '{}'", p.name, h.kind);
        if (!inside(p, h.addr, 1)) return bad("payload '{}' has its {} hook at {:#x}, outside it", p.name, h.kind, h.addr);
      }
      for (const auto& f : p.funcs) HS_CHECK(check_func(p, f));
    }
    std::ranges::sort(ranges);
    for (size_t i = 1; i < ranges.size(); i++)
      if (ranges[i].first < ranges[i - 1].second)
        return bad("payloads overlap at {:#x}", ranges[i].first);
    // Code the payloads patch is never inside a payload.
    for (const auto& p : s_.payloads)
      for (const auto& f : p.funcs) {
        if (in_a_payload(f.old_addr, f.old_size))
          return bad("payload '{}' patches function '{}' at {:#x}, inside a payload", p.name, f.name, f.old_addr);
        for (u64 c : f.call_sites)
          if (in_a_payload(c, x86_64::kBranchRel32Size))
            return bad("payload '{}' has a call site of '{}' at {:#x}, inside a payload", p.name, f.name, c);
      }
    if (s_.journal) HS_CHECK(check_journal(*s_.journal));
    return {};
  }

 private:
  template <class... A>
  Status bad(fmt::format_string<A...> f, A&&... a) const {
    // Names and kinds come from the target: escaped, so the message stays one line.
    return fail(ErrorKind::Corrupt, "{} is corrupt: {}", who_,
                escape_for_terminal(fmt::format(f, std::forward<A>(a)...)));
  }
  static bool inside(const PayloadRecord& p, u64 a, u64 n) { return a >= p.base && fits(a, n) && a + n <= p.base + p.size; }
  bool in_a_payload(u64 a, u64 n) const {
    return std::ranges::any_of(s_.payloads, [&](const PayloadRecord& p) {
      return a < p.base + p.size && p.base < a + n;
    });
  }

  Status check_func(const PayloadRecord& p, const FuncState& f) const {
    auto what = [&] { return fmt::format("payload '{}': function '{}' at {:#x}", p.name, f.name, f.old_addr); };
    if (f.old_addr == 0 || f.old_size == 0 || !fits(f.old_addr, f.old_size))
      return bad("{} has size {:#x}", what(), f.old_size);
    if (f.patch_offset != 0 && f.patch_offset != x86_64::kEndbrSize)
      return bad("{} has patch offset {}", what(), f.patch_offset);
    if (f.patch_offset > f.old_size || f.insn.size() > f.old_size - f.patch_offset)
      return bad("{}: {} patch bytes at offset {} do not fit its {:#x} bytes", what(), f.insn.size(), f.patch_offset,
                 f.old_size);
    if (f.new_addr == 0 ? f.insn.size() != f.new_size : f.insn.size() != x86_64::kJumpSize)
      return bad("{} has {} patch bytes for a {}", what(), f.insn.size(),
                 f.new_addr ? "jump" : fmt::format("NOP run of {:#x}", f.new_size));
    if (f.new_addr != 0 && !inside(p, f.new_addr, 1))
      return bad("{} is replaced by code at {:#x}, outside the payload", what(), f.new_addr);
    if (f.expect.size() > kMaxExpect) return bad("{} expects {} bytes (at most {})", what(), f.expect.size(), kMaxExpect);
    if (f.implementation.size() > kMaxImplementationName)
      return bad("{} names an implementation of {} bytes (at most {})", what(), f.implementation.size(),
                 kMaxImplementationName);
    // The saved bytes: none before its first apply, the patch's length after.
    if (f.applied ? f.undo.size() != f.insn.size() : !f.undo.empty() && f.undo.size() != f.insn.size())
      return bad("{} saved {} bytes for a {}-byte patch", what(), f.undo.size(), f.insn.size());
    if (f.applied != (p.state == PayloadState::Applied))
      return bad("{} is {}applied in a {} payload", what(), f.applied ? "" : "not ", state_name(p.state));
    for (u64 c : f.call_sites)
      if (!fits(c, x86_64::kBranchRel32Size)) return bad("{} has a call site at {:#x}", what(), c);
    for (const auto& [addr, size] : f.cold)
      if (addr == 0 || size == 0 || !fits(addr, size)) return bad("{} has a cold part at {:#x}+{:#x}", what(), addr, size);
    return {};
  }

  // A journal write at a patch site must carry that site's length and leave
  // it holding a patch or saved bytes recorded for it; one at a call site
  // (its displacement) must leave and find it calling the function or one of
  // its replacements.
  Status check_write(const JournalWrite& w) const {
    auto where = [&] { return fmt::format("journal writes {} bytes at {:#x}", w.after.size(), w.addr); };
    if (w.before.size() != w.after.size())
      return bad("{} over {} bytes", where(), w.before.size());
    bool site = false;
    for (const auto& p : s_.payloads)
      for (const auto& f : p.funcs) {
        if (f.site() == w.addr) {
          site = true;
          if (w.after.size() != f.insn.size()) continue;
          // Which bytes a write there may leave: any patch or saved bytes
          // of a function at this site.
          for (const auto& q : s_.payloads)
            for (const auto& g : q.funcs)
              if (g.site() == w.addr && (w.after == g.insn || (!g.undo.empty() && w.after == g.undo))) return {};
        }
        for (u64 c : f.call_sites) {
          if (c + 1 != w.addr) continue;
          site = true;
          const size_t disp = x86_64::kBranchRel32Size - 1;
          if (w.after.size() != disp) continue;
          if (calls_known(c, f.old_addr, w.before) && calls_known(c, f.old_addr, w.after)) return {};
        }
      }
    if (!site) return bad("{}, neither a patch site nor a call site of a payload", where());
    return bad("{}: before {} after {} do not fit that site", where(), to_hex(w.before), to_hex(w.after));
  }

  // Whether a rel32 displacement at call site `c` reaches `fn` or the
  // replacement of a function at `fn`.
  bool calls_known(u64 c, u64 fn, const Bytes& disp) const {
    const u64 to = x86_64::branch_rel32_target(c, disp);
    if (to == fn) return true;
    for (const auto& p : s_.payloads)
      for (const auto& g : p.funcs)
        if (g.old_addr == fn && g.new_addr != 0 && g.new_addr == to) return true;
    return false;
  }

  Status check_journal(const Journal& j) const {
    const u8 op = static_cast<u8>(j.op);
    if (op < static_cast<u8>(JournalOp::Upload) || op > static_cast<u8>(JournalOp::Unload))
      return bad("journal has operation {}", op);
    const PayloadRecord* p = s_.find(j.payload);
    if (j.op == JournalOp::Upload) {
      if (!valid_payload_name(j.payload)) return bad("journal uploads a payload named '{}'", j.payload);
      if (p ? (j.map_base != p->base || j.map_size != p->size)
            : (j.map_base == 0 || j.map_size == 0 || j.map_base % kPage != 0 || !fits(j.map_base, j.map_size) ||
               in_a_payload(j.map_base, j.map_size)))
        return bad("journal uploads '{}' at {:#x}+{:#x}", j.payload, j.map_base, j.map_size);
    } else {
      if (!p) return bad("journal {} names payload '{}', which is not in the registry", op_name(j.op), j.payload);
      if (j.op == JournalOp::Unload ? (j.map_base != p->base || j.map_size != p->size)
                                    : (j.map_base != 0 || j.map_size != 0))
        return bad("journal {} of '{}' names the mapping {:#x}+{:#x}", op_name(j.op), j.payload, j.map_base,
                   j.map_size);
      if (j.op == JournalOp::Unload && p->state != PayloadState::Checked)
        return bad("journal unloads '{}', which is {}", j.payload, state_name(p->state));
    }
    if ((j.op == JournalOp::Upload || j.op == JournalOp::Unload) && !j.writes.empty())
      return bad("journal {} of '{}' writes code", op_name(j.op), j.payload);
    for (const auto& w : j.writes) HS_CHECK(check_write(w));
    return {};
  }

  const RegistryState& s_;
  std::string_view who_;
};

}  // namespace

Status check_state(const RegistryState& s, std::string_view who) {
  if (s.next_seq == 0) return fail(ErrorKind::Corrupt, "{} is corrupt: next sequence number 0", who);
  return Checker(s, who).run();
}

}  // namespace hs
