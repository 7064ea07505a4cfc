// Finding the direct calls to a replaced function in the target object's file
// (see call_sites.h): every E8/E9 whose rel32 lands on the function, kept
// only where Zydis decodes the whole enclosing function and finds the call at
// an instruction boundary.
#include "engine/call_sites.h"

#include <Zydis/Zydis.h>
#include <elf.h>

#include <algorithm>

#include "arch/x86_64.h"

namespace hs {
namespace {

using x86_64::is_branch_rel32_opcode;
constexpr size_t kSiteSize = x86_64::kBranchRel32Size;

struct Candidate {
  u64 addr, target;
};

// The file bytes of [vaddr, vaddr + size) if one executable PT_LOAD holds
// them whole; empty otherwise.
ByteView code_bytes(const ElfFile& elf, u64 vaddr, u64 size) {
  const ByteView file = elf.bytes();
  for (const auto& ph : elf.program_headers()) {
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) continue;
    if (vaddr < ph.p_vaddr || vaddr - ph.p_vaddr > ph.p_filesz || size > ph.p_filesz - (vaddr - ph.p_vaddr)) continue;
    return file.subspan(ph.p_offset + (vaddr - ph.p_vaddr), size);
  }
  return {};
}

// Where, in `code` (a whole function at runtime address `addr`), a 5-byte
// prefix-free CALL/JMP rel32 starts; nullopt if the function does not
// decode cleanly from its first byte to exactly its last.
std::optional<std::vector<u64>> site_starts(const ZydisDecoder& dec, ByteView code, u64 addr) {
  std::vector<u64> starts;
  ZydisDecodedInstruction insn;
  size_t off = 0;
  while (off < code.size()) {
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, nullptr, code.data() + off, code.size() - off, &insn)))
      return std::nullopt;
    if (insn.length == kSiteSize && is_branch_rel32_opcode(code[off]) &&
        (insn.mnemonic == ZYDIS_MNEMONIC_CALL || insn.mnemonic == ZYDIS_MNEMONIC_JMP))
      starts.push_back(addr + off);
    off += insn.length;
  }
  return starts;
}

}  // namespace

Result<std::map<u64, std::vector<CallSite>>> find_call_sites(const MappedObject& obj, std::span<const u64> targets) {
  std::map<u64, std::vector<CallSite>> out;
  if (targets.empty() || !obj.elf) return out;
  auto syms = obj.symbols();
  if (!syms) return out;
  std::vector<u64> want(targets.begin(), targets.end());
  std::ranges::sort(want);
  const u64 bias = obj.bias.value();
  const ElfFile& elf = *obj.elf;
  const ByteView file = elf.bytes();

  // Every E8/E9 whose rel32 lands on a target, in the executable segments.
  std::vector<Candidate> cands;
  for (const auto& ph : elf.program_headers()) {
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset) continue;
    const ByteView seg = file.subspan(ph.p_offset, ph.p_filesz);
    for (size_t i = 0; i + kSiteSize <= seg.size(); i++) {
      const u64 at = ph.p_vaddr + i + bias;
      const auto target = x86_64::branch_rel32_destination(at, seg.subspan(i, kSiteSize));
      if (target && std::ranges::binary_search(want, *target)) cands.push_back({at, *target});
    }
  }
  if (cands.empty()) return out;
  std::ranges::sort(cands, {}, &Candidate::addr);

  // Keep those that are instructions of a function that decodes cleanly.
  ZydisDecoder dec;
  if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
    return fail(ErrorKind::Internal, "cannot set up the x86-64 instruction decoder");
  u64 fn_addr = 0;
  std::optional<std::vector<u64>> starts;
  for (const Candidate& c : cands) {
    const auto fn = (*syms)->symbolize(RemoteAddr(c.addr));
    if (!fn || fn->second.size < kSiteSize) continue;
    const u64 a = fn->second.addr.value();
    if (c.addr + kSiteSize > a + fn->second.size) continue;
    if (a != fn_addr || !starts) {
      fn_addr = a;
      const ByteView code = code_bytes(elf, a - bias, fn->second.size);
      starts = code.empty() ? std::nullopt : site_starts(dec, code, a);
      if (!starts) starts.emplace();  // nothing in it is taken
    }
    if (std::ranges::binary_search(*starts, c.addr)) out[c.target].push_back({c.addr});
  }
  return out;
}

std::map<u64, std::vector<u64>> recorded_call_sites(const RegistryState& state, std::string_view object) {
  std::map<u64, std::vector<u64>> out;
  for (const PayloadRecord& q : state.payloads)
    if (q.object_path == object)
      for (const FuncState& g : q.funcs) {
        auto& sites = out[g.old_addr];
        sites.insert(sites.end(), g.call_sites.begin(), g.call_sites.end());
      }
  for (auto& [fn, sites] : out) {
    std::ranges::sort(sites);
    sites.erase(std::unique(sites.begin(), sites.end()), sites.end());
  }
  return out;
}

}  // namespace hs
