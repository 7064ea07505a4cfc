// Filling in the sizes of .livepatch.funcs (see funcs.h): each entry's name
// and new_addr are read through the relocations gcc emits for them, the new
// function's size from the patch object's symbols, the old one's from the
// target's (ObjectSymbols, so every lookup form works), and each patch site
// is checked to hold a jmp rel32 (after an endbr64) or the NOP-out.
#include "builder/funcs.h"

#include <algorithm>

#include "payload/payload.h"

namespace hs::builder_detail {

namespace {

// Errors about the target binary are BadTarget unless the file could not be
// read at all (Io keeps its errno).
// Messages read "target PATH: reason".
Error as_target_error(Error e, std::string_view path) {
  if (e.sys_errno() == 0) e.set_kind(ErrorKind::BadTarget);
  // The reader says "PATH: ..."; that becomes "target PATH: ...".
  if (const std::string* outer = e.outer_context(); outer && *outer == path) e.drop_outer_context();
  e.context(fmt::format("target {}", path));
  return e;
}

// A relocation at a field of a livepatch_func entry.
struct FieldReloc {
  u32 type = 0;
  ElfSymbol sym;
  i64 addend = 0;
};

std::string describe_ref(const FieldReloc& r, const ElfFile& elf) {
  std::string base = !r.sym.name.empty() ? std::string(r.sym.name)
                     : r.sym.st_shndx < elf.sections().size() ? std::string(elf.section_name(r.sym.st_shndx))
                                                              : fmt::format("symbol {}", r.sym.index);
  if (r.addend == 0) return base;
  return r.addend > 0 ? fmt::format("{}+{:#x}", base, r.addend) : fmt::format("{}-{:#x}", base, -r.addend);
}

Result<std::string> read_name(const PatchObject& obj, const FieldReloc& r) {
  const ElfFile& elf = *obj.elf;
  if (!r.sym.defined() || r.sym.st_shndx >= elf.sections().size()) {
    return fail(ErrorKind::BadPayload, "name points at '{}', which is not a string in the patch", describe_ref(r, elf));
  }
  ByteView data = elf.section_data(r.sym.st_shndx);
  u64 off = r.sym.st_value + static_cast<u64>(r.addend);
  if (off >= data.size()) {
    return fail(ErrorKind::BadPayload, "name points at offset {:#x} of {}, past its end ({:#x})", off,
                elf.describe_section(r.sym.st_shndx), data.size());
  }
  auto begin = data.begin() + static_cast<ptrdiff_t>(off);
  auto nul = std::find(begin, data.end(), u8{0});
  if (nul == data.end()) {
    return fail(ErrorKind::BadPayload, "name at offset {:#x} of {} is not NUL-terminated", off,
                elf.describe_section(r.sym.st_shndx));
  }
  return std::string(begin, nul);
}

// st_size of the function a new_addr relocation points at.
Result<u64> new_function_size(const PatchObject& obj, const std::vector<ElfSymbol>& syms, const FieldReloc& r,
                              const GlobalFuncs& globals) {
  const ElfFile& elf = *obj.elf;
  if (!r.sym.defined()) {
    auto it = globals.find(r.sym.name);
    if (it == globals.end() || r.addend != 0) {
      return fail(ErrorKind::BadPayload, "new_addr refers to '{}', which no patch source defines as a function",
                  describe_ref(r, elf));
    }
    return it->second;
  }
  u64 place = r.sym.st_value + static_cast<u64>(r.addend);
  for (const ElfSymbol& s : syms) {
    if (s.type() == STT_FUNC && s.st_shndx == r.sym.st_shndx && s.st_value == place) return s.st_size;
  }
  return fail(ErrorKind::BadPayload, "new_addr points at '{}', which is not the start of a function",
              describe_ref(r, elf));
}

}  // namespace

Result<Target> open_target(const std::string& path) {
  Target t;
  t.path = path;
  auto elf = ElfFile::open(path);
  if (!elf) return std::unexpected(as_target_error(std::move(elf.error()), path));
  t.elf.emplace(std::move(*elf));
  u16 type = t.elf->header().e_type;
  if (type != ET_EXEC && type != ET_DYN) {
    return fail(ErrorKind::BadTarget, "target {}: e_type {:#x} is not an executable or shared object", path, type);
  }
  auto id = t.elf->build_id();
  if (!id) return std::unexpected(as_target_error(std::move(id.error()), path));
  t.build_id.assign(id->begin(), id->end());
  return t;
}

Status fill_section(PatchObject& obj, size_t funcs_index, Target* target, const GlobalFuncs& globals,
                    std::vector<BuiltFunc>& out) {
  const ElfFile& elf = *obj.elf;
  const Elf64_Shdr& sh = elf.sections()[funcs_index];
  const std::string where = elf.describe_section(funcs_index);
  if (sh.sh_type == SHT_NOBITS) return fail(ErrorKind::BadPayload, "{} has no contents (SHT_NOBITS)", where);
  if (sh.sh_size % kFuncSize != 0) {
    return fail(ErrorKind::BadPayload, "{}: size {:#x} is not a multiple of {}", where, sh.sh_size, kFuncSize);
  }
  const size_t count = sh.sh_size / kFuncSize;

  // The relocations of this section, by offset.
  std::map<u64, FieldReloc> relocs;
  std::vector<ElfSymbol> syms;
  const auto& shdrs = elf.sections();
  for (size_t i = 1; i < shdrs.size(); ++i) {
    if (shdrs[i].sh_type != SHT_RELA || shdrs[i].sh_info != funcs_index) continue;
    syms = HS_TRY(elf.symbols(shdrs[i].sh_link));
    for (const Elf64_Rela& r : HS_TRY(elf.relocations(i))) {
      u32 sym_index = ELF64_R_SYM(r.r_info);
      if (sym_index >= syms.size()) {
        return fail(ErrorKind::BadPayload, "{}: relocation at {:#x}: symbol index {} is out of range ({})",
                    elf.describe_section(i), r.r_offset, sym_index, syms.size());
      }
      relocs[r.r_offset] = FieldReloc{static_cast<u32>(ELF64_R_TYPE(r.r_info)), syms[sym_index], r.r_addend};
    }
  }
  if (syms.empty()) {
    if (auto st = elf.symtab_index()) syms = HS_TRY(elf.symbols(*st));
  }

  ByteView data = elf.section_data(funcs_index);
  for (size_t i = 0; i < count; ++i) {
    const u64 base = i * kFuncSize;
    auto reloc_at = [&](u64 field) -> Result<const FieldReloc*> {
      auto it = relocs.find(base + field);
      if (it == relocs.end()) return nullptr;
      if (it->second.type != R_X86_64_64) {
        return fail(ErrorKind::BadPayload, "{}: entry {}: relocation type {} at offset {:#x}, expected R_X86_64_64",
                    where, i, it->second.type, base + field);
      }
      return &it->second;
    };
    auto literal = [&](u64 field) { return load_le<u64>(data.data() + base + field); };

    const FieldReloc* name_rel = HS_TRY(reloc_at(kFuncNameOff));
    if (!name_rel) return fail(ErrorKind::BadPayload, "{}: entry {}: name is not set", where, i);
    std::string name = HS_TRY_CTX(read_name(obj, *name_rel), fmt::format("{}: entry {}", where, i));
    std::string ctx = fmt::format("'{}'", name);

    BuiltFunc f;
    f.name = name;
    f.new_size = load_le<u32>(data.data() + base + kFuncNewSizeOff);
    f.old_size = load_le<u32>(data.data() + base + kFuncOldSizeOff);

    const FieldReloc* new_rel = HS_TRY(reloc_at(kFuncNewAddrOff));
    if (!new_rel && literal(kFuncNewAddrOff) != 0) {
      return fail(ErrorKind::BadPayload, "{}: new_addr is the absolute value {:#x}, not a function of the patch", ctx,
                  literal(kFuncNewAddrOff));
    }
    f.nop = new_rel == nullptr;
    const bool old_given = HS_TRY(reloc_at(kFuncOldAddrOff)) != nullptr || literal(kFuncOldAddrOff) != 0;

    if (f.nop) {
      if (f.new_size == 0) return fail(ErrorKind::BadPayload, "{}: NOP-out of 0 bytes", ctx);
    } else if (f.new_size == 0) {
      u64 size = HS_TRY_CTX(new_function_size(obj, syms, *new_rel, globals), ctx);
      if (size == 0) {
        return fail(ErrorKind::BadPayload, "{}: new function '{}' has st_size 0 (give it a .size if written in assembler)",
                    ctx, describe_ref(*new_rel, elf));
      }
      if (size > UINT32_MAX) return fail(ErrorKind::BadPayload, "{}: new function size {:#x} is too large", ctx, size);
      f.new_size = static_cast<u32>(size);
      f.new_size_filled = true;
    }

    if (f.old_size == 0 && !old_given) {
      if (!target) {
        return fail(ErrorKind::Usage, "{}: old_size is 0 and no target binary was given to look it up", ctx);
      }
      const ObjectSymbols* tsyms = HS_TRY(target->syms());
      TargetSymbol ts = HS_TRY_CTX(tsyms->lookup_function(name), fmt::format("cannot patch {}", ctx));
      // Named by its source name: say which symbol it is from now on.
      if (ts.name != name) {
        f.symbol = ts.name;
        ctx = fmt::format("'{}' ({})", name, ElfFile::printable(ts.name));
      }
      f.other_copies = tsyms->copies_of(ts.name);
      const u64 addr = ts.addr.value();
      auto sec = target->exec_section_at(addr);
      if (!sec) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: {:#x} in {} is not in an executable section", ctx, addr,
                    target->path);
      }
      if (ts.size == 0) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: it has st_size 0 in {}; give old_size in the source", ctx,
                    target->path);
      }
      if (ts.size > UINT32_MAX) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: size {:#x} in {} is too large", ctx, ts.size, target->path);
      }
      f.old_size = static_cast<u32>(ts.size);
      f.old_size_filled = true;

      // The patch site starts after an endbr64; say now if it cannot fit.
      const bool endbr = target->starts_with_endbr(*sec, addr);
      const u32 skip = endbr ? static_cast<u32>(x86_64::kEndbrSize) : 0;
      const u32 site = f.nop ? f.new_size : static_cast<u32>(x86_64::kJumpSize);
      if (f.old_size < skip + site) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: it is {} bytes in {}, too short for {} bytes{}", ctx,
                    f.old_size, target->path, site, endbr ? " after its endbr64" : "");
      }
    }
    if (f.nop && f.old_size != 0 && f.new_size > f.old_size) {
      return fail(ErrorKind::BadPayload, "{}: NOP-out of {} bytes is longer than the function ({} bytes)", ctx,
                  f.new_size, f.old_size);
    }

    store_le<u32>(obj.bytes.data() + sh.sh_offset + base + kFuncNewSizeOff, f.new_size);
    store_le<u32>(obj.bytes.data() + sh.sh_offset + base + kFuncOldSizeOff, f.old_size);
    out.push_back(std::move(f));
  }
  return {};
}

}  // namespace hs::builder_detail
