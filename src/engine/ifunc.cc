// Finding the implementation an IFUNC resolved to in a live process, naming
// it, and refusing patches over resolvers: see ifunc.h.
#include "engine/ifunc.h"

#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <optional>

#include <Zydis/Zydis.h>

#include "arch/x86_64.h"
#include "elf/eh_frame.h"

namespace hs {
namespace {

std::string_view basename_of(std::string_view p) {
  const size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// A GOT slot of the process that should hold the implementation.
struct Slot {
  u64 addr = 0;          // runtime address of the slot
  const MappedObject* in = nullptr;
  const char* kind = "";  // "IRELATIVE", "JUMP_SLOT", ...
};

const char* reloc_kind(u32 type) {
  switch (type) {
    case R_X86_64_IRELATIVE: return "IRELATIVE";
    case R_X86_64_JUMP_SLOT: return "JUMP_SLOT";
    case R_X86_64_GLOB_DAT: return "GLOB_DAT";
    case R_X86_64_64: return "R_X86_64_64";
    default: return "";
  }
}

// The dynamic relocation sections of an object (SHT_RELA, SHF_ALLOC).
template <class F>
void for_each_dynamic_rela(const MappedObject& o, F&& each) {
  if (!o.elf) return;
  const auto& shdrs = o.elf->sections();
  for (size_t i = 1; i < shdrs.size(); ++i) {
    if (shdrs[i].sh_type != SHT_RELA || !(shdrs[i].sh_flags & SHF_ALLOC)) continue;
    auto relas = o.elf->relocations(i);
    if (!relas) continue;  // an object we cannot read tells us nothing
    each(i, *relas);
  }
}

// The object's IRELATIVE slots for the resolver at link-time address `resolver`.
std::vector<Slot> irelative_slots(const MappedObject& obj, u64 resolver) {
  std::vector<Slot> out;
  for_each_dynamic_rela(obj, [&](size_t, const std::vector<Elf64_Rela>& relas) {
    for (const Elf64_Rela& r : relas)
      if (ELF64_R_TYPE(r.r_info) == R_X86_64_IRELATIVE && static_cast<u64>(r.r_addend) == resolver)
        out.push_back({obj.bias.value() + r.r_offset, &obj, "IRELATIVE"});
  });
  return out;
}

// Every object's slots bound by name to `name` (its references, not its
// own definition).
std::vector<Slot> named_slots(const std::vector<MappedObject>& objs, std::string_view name) {
  std::vector<Slot> out;
  for (const MappedObject& o : objs) {
    std::map<size_t, std::vector<ElfSymbol>> tables;
    for_each_dynamic_rela(o, [&](size_t i, const std::vector<Elf64_Rela>& relas) {
      const size_t link = o.elf->sections()[i].sh_link;
      auto t = tables.find(link);
      if (t == tables.end()) {
        auto syms = o.elf->symbols(link);
        t = tables.emplace(link, syms ? std::move(*syms) : std::vector<ElfSymbol>{}).first;
      }
      for (const Elf64_Rela& r : relas) {
        const u32 type = ELF64_R_TYPE(r.r_info), si = ELF64_R_SYM(r.r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64) continue;
        if (si == 0 || si >= t->second.size()) continue;
        const ElfSymbol& s = t->second[si];
        if (s.defined() || s.name != name) continue;
        out.push_back({o.bias.value() + r.r_offset, &o, reloc_kind(type)});
      }
    });
  }
  return out;
}

// What a slot holds, if it is an implementation: an address in `obj`'s
// executable mappings other than the resolver.
std::optional<u64> slot_value(const Process& proc, const MappedObject& obj, const Slot& s, u64 resolver_addr) {
  auto v = proc.read_value<u64>(RemoteAddr(s.addr));
  if (!v || *v == resolver_addr || !obj.span.contains(RemoteAddr(*v))) return std::nullopt;
  for (const MapEntry& m : obj.maps)
    if ((m.prot & PROT_EXEC) && m.range.contains(RemoteAddr(*v))) return *v;
  return std::nullopt;
}

// The bytes of `elf` at link-time address [vaddr, vaddr + len), if they lie
// in one section with contents.
std::optional<ByteView> bytes_at(const ElfFile& elf, u64 vaddr, u64 len) {
  for (size_t i = 1; i < elf.sections().size(); ++i) {
    const Elf64_Shdr& s = elf.sections()[i];
    if (!(s.sh_flags & SHF_ALLOC) || s.sh_type == SHT_NOBITS) continue;
    if (vaddr < s.sh_addr || vaddr - s.sh_addr >= s.sh_size) continue;
    const ByteView d = elf.section_data(i);
    const u64 off = vaddr - s.sh_addr;
    if (off > d.size() || len > d.size() - off) return std::nullopt;
    return d.subspan(off, len);
  }
  return std::nullopt;
}

// A relative branch of `elf`'s code that lands strictly inside
// (site, site + len): where it is. The code searched is every FDE within a
// rel8's reach of the site (the functions glibc's assembler lays out next to
// each other), decoded from each FDE's start.
std::optional<u64> branch_into(const ElfFile& elf, u64 site, u64 len) {
  ZydisDecoder dec;
  if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64))) return std::nullopt;
  constexpr u64 kReach = 128;
  for (const FdeRange& r : fdes_overlapping(elf, site > kReach ? site - kReach : 0, site + len + kReach)) {
    const auto code = bytes_at(elf, r.begin, r.size);
    if (!code) continue;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    for (u64 off = 0; off < code->size(); off += insn.length) {
      if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code->data() + off, code->size() - off, &insn, ops))) break;
      if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_NONE || insn.operand_count_visible == 0) continue;
      const ZydisDecodedOperand& op = ops[0];
      if (op.type != ZYDIS_OPERAND_TYPE_IMMEDIATE || !op.imm.is_relative) continue;
      ZyanU64 dest = 0;
      if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &op, r.begin + off, &dest))) continue;
      if (dest > site && dest < site + len) return r.begin + off;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string implementation_name(const MappedObject& obj, RemoteAddr addr) {
  if (auto syms = obj.symbols(); syms && (*syms)->source() != "dynsym" && (*syms)->source() != "none")
    if (auto s = (*syms)->symbolize(addr); s && s->second.addr == addr) return ElfFile::printable(s->first);
  return fmt::format("{}+{:#x}", ElfFile::printable(basename_of(obj.path)), addr.value() - obj.bias.value());
}

std::string implementation_of(const MappedObject& obj, std::string_view name, RemoteAddr addr) {
  auto syms = obj.symbols();
  if (!syms) return {};
  auto s = (*syms)->lookup(name);
  if (!s || s->type != STT_GNU_IFUNC || s->addr == addr) return {};
  return implementation_name(obj, addr);
}

Result<TargetSymbol> ifunc_implementation(const Process& proc, const std::vector<MappedObject>& objs,
                                          const MappedObject& obj, std::string_view name, const TargetSymbol& ifunc) {
  const std::string shown = ElfFile::printable(name);
  const u64 resolver = ifunc.addr.value() - obj.bias.value();
  // IRELATIVE slots first: they are the object's own, never versioned by
  // name, and filled at startup. Slots bound by name only when there are
  // none (an old binary's reference to an older version of the name, like
  // memcpy@GLIBC_2.2.5, is bound to another function).
  std::vector<Slot> slots = irelative_slots(obj, resolver);
  if (slots.empty()) slots = named_slots(objs, name);
  std::optional<u64> impl;
  const Slot* first = nullptr;
  for (const Slot& s : slots) {
    auto v = slot_value(proc, obj, s, ifunc.addr.value());
    if (!v) continue;
    if (impl && *v != *impl)
      return fail(ErrorKind::BadTarget,
                  "PID {}: the GOT slots of the indirect function '{}' of {} disagree: {} slot {:#x} ({}) holds {:#x}, "
                  "{} slot {:#x} ({}) holds {:#x}",
                  proc.pid(), shown, obj.path, first->kind, first->addr, first->in->path, *impl, s.kind, s.addr,
                  s.in->path, *v);
    impl = v;
    if (!first) first = &s;
  }
  if (!impl)
    return fail(ErrorKind::BadTarget,
                "PID {}: '{}' in {} is an indirect function (STT_GNU_IFUNC), and no GOT slot of the process holds "
                "the implementation its resolver chose yet ({} slot{} looked at), so hotsplice cannot tell which "
                "one to patch",
                proc.pid(), shown, obj.path, slots.size(), slots.size() == 1 ? "" : "s");
  const u64 link = *impl - obj.bias.value();
  const auto fde = fde_covering(*obj.elf, link);
  if (!fde || fde->begin != link)
    return fail(ErrorKind::BadTarget,
                "PID {}: the indirect function '{}' of {} resolves to {:#x} ({}), where no .eh_frame entry starts, "
                "so the size of that implementation is unknown",
                proc.pid(), shown, obj.path, *impl, implementation_name(obj, RemoteAddr(*impl)));
  TargetSymbol out;
  out.addr = RemoteAddr(*impl);
  out.size = fde->size;
  out.object = obj.path;
  out.type = STT_FUNC;
  out.implementation = implementation_name(obj, out.addr);
  return out;
}

Status check_entry_not_branched_into(const MappedObject& obj, std::string_view name, const TargetSymbol& impl,
                                     pid_t pid) {
  if (!obj.elf) return {};
  const u64 link = impl.addr.value() - obj.bias.value();
  const auto head = bytes_at(*obj.elf, link, x86_64::kEndbrSize);
  const u64 site = link + (head && x86_64::starts_with_endbr64(*head) ? x86_64::kEndbrSize : 0);
  const auto from = branch_into(*obj.elf, site, x86_64::kJumpSize);
  if (!from) return {};
  const RemoteAddr at(*from + obj.bias.value());
  std::string whose = implementation_name(obj, at);
  if (auto syms = obj.symbols(); syms && (*syms)->source() != "dynsym")
    if (auto s = (*syms)->symbolize(at)) whose = fmt::format("{}+{:#x}", ElfFile::printable(s->first), at - s->second.addr);
  const u64 into = [&] {
    // where the branch lands, for the message
    ZydisDecoder dec;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    ZyanU64 dest = 0;
    const auto code = bytes_at(*obj.elf, *from, 16);
    if (code && ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)) &&
        ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code->data(), code->size(), &insn, ops)))
      (void)ZydisCalcAbsoluteAddress(&insn, &ops[0], *from, &dest);
    return dest;
  }();
  return fail(ErrorKind::BadTarget,
              "PID {}: cannot replace the indirect function '{}' of {}: its implementation {} at {:#x} is also "
              "entered {} bytes in, by the branch at {:#x} ({}), which the {}-byte jump would cut in two",
              pid, ElfFile::printable(name), obj.path, impl.implementation, impl.addr.value(), into - link, at.value(),
              whose, x86_64::kJumpSize);
}

Status refuse_resolver_sites(const MappedObject& obj, const LinkedPayload& linked, pid_t pid) {
  if (!obj.elf) return {};
  std::vector<std::pair<u64, std::string>> resolvers;  // runtime address, name
  for (auto idx : {obj.elf->symtab_index(), obj.elf->dynsym_index()}) {
    if (!idx) continue;
    auto syms = obj.elf->symbols(*idx);
    if (!syms) continue;
    for (const ElfSymbol& s : *syms)
      if (s.type() == STT_GNU_IFUNC && s.defined())
        resolvers.emplace_back(s.st_value + obj.bias.value(), std::string(s.name));
  }
  for (const LinkedFunc& f : linked.funcs)
    for (const auto& [at, name] : resolvers)
      if (f.old_addr.value() == at)
        return fail(ErrorKind::BadTarget,
                    "PID {}: function '{}': {:#x} in {} is the resolver of the indirect function '{}', which calls "
                    "never reach; name '{}' to replace the implementation the process uses",
                    pid, ElfFile::printable(f.name), at, obj.path, ElfFile::printable(name),
                    ElfFile::printable(name));
  return {};
}

}  // namespace hs
