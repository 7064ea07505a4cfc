// The payload part of one patched object as assembler source (payload_gen.h).
#include "builder/payload_gen.h"

#include <elf.h>

#include <map>
#include <set>

#include "elf/elf_file.h"

namespace hs {

namespace {

const char* reloc_name(u32 type) {
  switch (type) {
    case R_X86_64_64: return "R_X86_64_64";
    case R_X86_64_PC32: return "R_X86_64_PC32";
    case R_X86_64_PLT32: return "R_X86_64_PLT32";
    case R_X86_64_32: return "R_X86_64_32";
    case R_X86_64_32S: return "R_X86_64_32S";
    case R_X86_64_GOTPCREL: return "R_X86_64_GOTPCREL";
    case R_X86_64_GOTPCRELX: return "R_X86_64_GOTPCRELX";
    case R_X86_64_REX_GOTPCRELX: return "R_X86_64_REX_GOTPCRELX";
    case R_X86_64_PC64: return "R_X86_64_PC64";
    default: return nullptr;
  }
}

bool pc_relative(u32 type) {
  return type == R_X86_64_PC32 || type == R_X86_64_PLT32 || type == R_X86_64_GOTPCREL || type == R_X86_64_GOTPCRELX ||
         type == R_X86_64_REX_GOTPCRELX || type == R_X86_64_PC64;
}

std::string quoted(std::string_view name) { return fmt::format("\"{}\"", name); }
std::string plus(i64 v) { return v < 0 ? fmt::format("-{}", -v) : fmt::format("+{}", v); }

void emit_bytes(std::string& s, ByteView b) {
  for (size_t i = 0; i < b.size(); i += 16) {
    s += "\t.byte ";
    for (size_t j = i; j < std::min(b.size(), i + 16); ++j) s += fmt::format("{}{:#04x}", j == i ? "" : ",", b[j]);
    s += "\n";
  }
}

int log2_align(u64 a) {
  int n = 0;
  while (a > 1) a >>= 1, ++n;
  return n;
}

struct ObjectView {
  std::optional<ElfFile> elf;
  std::vector<ElfSymbol> syms;
  std::map<size_t, std::vector<Elf64_Rela>> relas;  // by the section they apply to
  std::string file;                                 // its STT_FILE name
};

Result<ObjectView> view(const std::string& path) {
  ObjectView v;
  v.elf = HS_TRY(ElfFile::open(path));
  if (auto st = v.elf->symtab_index()) v.syms = HS_TRY_CTX(v.elf->symbols(*st), path);
  const auto& shdrs = v.elf->sections();
  for (size_t i = 1; i < shdrs.size(); ++i) {
    if (shdrs[i].sh_type != SHT_RELA) continue;
    auto r = HS_TRY_CTX(v.elf->relocations(i), path);
    v.relas[shdrs[i].sh_info].insert(v.relas[shdrs[i].sh_info].end(), r.begin(), r.end());
  }
  for (const ElfSymbol& s : v.syms)
    if (s.type() == STT_FILE && v.file.empty()) v.file = std::string(s.name);
  return v;
}

bool is_item(const ElfSymbol& s) {
  return s.defined() && s.st_shndx < SHN_LORESERVE && (s.type() == STT_FUNC || s.type() == STT_OBJECT);
}

}  // namespace

Result<std::string> payload_source(const std::string& original, const std::string& patched, const ObjectDiff& diff) {
  ObjectView np = HS_TRY(view(patched));
  std::optional<ObjectView> op;
  if (!original.empty()) op.emplace(HS_TRY(view(original)));
  const auto& shdrs = np.elf->sections();

  // The symbols the payload carries: changed and new functions (and their
  // cold parts), new data.
  std::set<std::string> carried;
  std::vector<const FuncDiff*> entries;  // changed functions: one .livepatch.funcs entry each
  for (const FuncDiff& f : diff.funcs) {
    if (f.status == FuncStatus::New || f.status == FuncStatus::Changed) carried.insert(f.symbol);
    if (f.status == FuncStatus::Changed && !f.data) entries.push_back(&f);
  }
  for (const ElfSymbol& s : np.syms) {
    std::string key = correlation_name(s.name);
    if (is_item(s) && key.ends_with(".cold") && carried.count(std::string(s.name.substr(0, s.name.find('.')))))
      carried.insert(std::string(s.name));
  }
  // The original build's name of an unchanged local (renumbered statics).
  auto original_name = [&](std::string_view patched_name) -> Result<std::string> {
    if (!op) return fail(ErrorKind::BadPayload, "'{}' is a static of a file the patch adds", patched_name);
    const std::string key = correlation_name(patched_name);
    std::vector<std::string> same;
    for (const ElfSymbol& s : op->syms)
      if (is_item(s) && s.bind() == STB_LOCAL && correlation_name(s.name) == key) same.emplace_back(s.name);
    if (same.size() == 1) return same[0];
    for (const auto& n : same)
      if (n == patched_name) return n;
    return fail(ErrorKind::BadPayload, "cannot tell which of {} statics named '{}' in the original '{}' is", same.size(), key,
                patched_name);
  };
  auto local_label = [](std::string_view sym) { return fmt::format("hsnew.{}", sym); };

  std::string s = "/* hotsplice build --patch: the changed and new functions of " + patched + " */\n";
  std::map<size_t, std::string> copied_sections;  // string sections copied, by index -> label
  std::string copies;

  // Where relocation `r` of a carried item points, as an assembler expression.
  auto target_of = [&](const Elf64_Rela& r, u32 type, const std::string& in) -> Result<std::string> {
    size_t si = ELF64_R_SYM(r.r_info);
    if (si >= np.syms.size()) return fail(ErrorKind::BadPayload, "{}: relocation against symbol #{}", in, si);
    const ElfSymbol& sym = np.syms[si];
    i64 addend = r.r_addend;
    const ElfSymbol* t = &sym;
    if (sym.type() == STT_SECTION || (sym.bind() == STB_LOCAL && sym.type() == STT_NOTYPE && sym.defined())) {
      const size_t sec = sym.st_shndx;
      if (sym.type() != STT_SECTION) addend += static_cast<i64>(sym.st_value);
      const Elf64_Shdr& sh = shdrs.at(sec);
      if ((sh.sh_flags & SHF_MERGE) && (sh.sh_flags & SHF_STRINGS)) {
        auto [it, fresh] = copied_sections.emplace(sec, fmt::format(".Lhs_str{}", sec));
        if (fresh) {
          copies += fmt::format("\t.section .rodata.hs_str{},\"aMS\",@progbits,{}\n{}:\n", sec, sh.sh_entsize ? sh.sh_entsize : 1,
                                it->second);
          emit_bytes(copies, np.elf->section_data(sec));
        }
        return it->second + plus(addend);
      }
      i64 probe = addend + (pc_relative(type) ? 4 : 0);
      t = nullptr;
      for (const ElfSymbol& c : np.syms) {
        if (is_item(c) && c.st_shndx == sec && static_cast<i64>(c.st_value) <= std::max<i64>(probe, 0) &&
            (!t || c.st_value > t->st_value))
          t = &c;
      }
      if (!t) {
        return fail(ErrorKind::BadPayload, "{} refers to section {}, which has no symbol (a jump table or constant pool): not supported yet",
                    in, np.elf->section_name(sec));
      }
      addend -= static_cast<i64>(t->st_value);
    }
    const std::string name(t->name);
    if (carried.count(name) && t->defined()) return local_label(name) + plus(addend);
    if (t->bind() != STB_LOCAL) return quoted(name) + plus(addend);
    if (np.file.empty()) return fail(ErrorKind::BadPayload, "{}: no STT_FILE symbol to name static '{}' by", in, name);
    return quoted(np.file + "#" + HS_TRY(original_name(name))) + plus(addend);
  };

  for (const ElfSymbol& sym : np.syms) {
    const std::string name(sym.name);
    if (!is_item(sym) || !carried.count(name)) continue;
    const Elf64_Shdr& sh = shdrs.at(sym.st_shndx);
    const bool func = sym.type() == STT_FUNC;
    const std::string label = local_label(name);
    if (func) s += fmt::format("\t.section .text.hs.{},\"ax\",@progbits\n", name);
    else if (sh.sh_type == SHT_NOBITS) s += fmt::format("\t.section .bss.hs.{},\"aw\",@nobits\n", name);
    else if (sh.sh_flags & SHF_WRITE) s += fmt::format("\t.section .data.hs.{},\"aw\",@progbits\n", name);
    else s += fmt::format("\t.section .rodata.hs.{},\"a\",@progbits\n", name);
    s += fmt::format("\t.p2align {}\n\t.type {}, @{}\n{}:\n", log2_align(sh.sh_addralign), label, func ? "function" : "object",
                     label);
    if (sh.sh_type == SHT_NOBITS) {
      s += fmt::format("\t.zero {}\n", sym.st_size);
    } else {
      ByteView data = np.elf->section_data(sym.st_shndx);
      if (sym.st_value > data.size() || sym.st_size > data.size() - sym.st_value)
        return fail(ErrorKind::BadPayload, "{}: symbol {} lies outside its section", patched, name);
      emit_bytes(s, data.subspan(sym.st_value, sym.st_size));
    }
    s += fmt::format("\t.size {}, {}\n", label, sym.st_size);
    if (auto it = np.relas.find(sym.st_shndx); it != np.relas.end()) {
      for (const Elf64_Rela& r : it->second) {
        if (r.r_offset < sym.st_value || r.r_offset >= sym.st_value + sym.st_size) continue;
        u32 type = static_cast<u32>(ELF64_R_TYPE(r.r_info));
        const char* rname = reloc_name(type);
        if (!rname) return fail(ErrorKind::BadPayload, "{}: relocation type {} is not supported yet", name, type);
        std::string target = HS_TRY(target_of(r, type, name));
        s += fmt::format("\t.reloc {}+{}, {}, {}\n", label, r.r_offset - sym.st_value, rname, target);
      }
    }
  }
  s += copies;

  // One .livepatch.funcs entry per changed function, named as the running
  // target knows it: a global by name, a static as file#name.
  size_t n = 0;
  for (const FuncDiff* f : entries) {
    const ElfSymbol* sym = nullptr;
    for (const ElfSymbol& c : np.syms)
      if (is_item(c) && c.name == f->symbol) sym = &c;
    if (!sym) return fail(ErrorKind::Internal, "{}: changed function {} has no symbol", patched, f->symbol);
    std::string target_name = sym->bind() == STB_LOCAL ? np.file + "#" + HS_TRY(original_name(f->symbol)) : f->symbol;
    s += fmt::format("\t.section .rodata.hs_names,\"a\",@progbits\n.Lhs_name{}:\n\t.asciz \"{}\"\n", n, target_name);
    s += "\t.section .livepatch.funcs,\"a\",@progbits\n\t.p2align 3\n";
    s += fmt::format("\t.quad .Lhs_name{}\n\t.quad {}\n\t.quad 0\n\t.long 0, 0\n\t.byte 2\n\t.zero 39\n\t.zero 32\n", n,
                     local_label(f->symbol));
    ++n;
  }
  s += "\t.section .note.GNU-stack,\"\",@progbits\n";
  return s;
}

}  // namespace hs
