#include "support/payload_layout.h"

#include <fmt/format.h>

#include "payload/payload.h"
#include "support/files.h"

namespace hs::test {

PayloadLayout::PayloadLayout(const std::string& file) : path(file), bytes(read_bytes(file)) {
  auto e = ElfFile::create(bytes);
  if (!e) {
    ADD_FAILURE() << path << ": " << e.error().message();
    return;
  }
  elf = std::move(*e);
  eh = elf->header();
  sh = elf->sections();
  for (size_t i = 0; i < sh.size(); ++i) {
    names.emplace_back(elf->section_name(i));
    if (i > 0) sec.emplace(names.back(), i);
  }
  if (auto st = elf->symtab_index()) {
    if (auto s = elf->symbols(*st)) syms = std::move(*s);
  }
  for (const ElfSymbol& s : syms) {
    if (!s.name.empty()) sym.emplace(std::string(s.name), s.index);
    if (s.type() == STT_SECTION) section_sym.emplace(s.st_shndx, s.index);
  }
  if (auto it = sec.find(".rela.livepatch.funcs"); it != sec.end()) {
    if (auto r = elf->relocations(it->second)) funcs_relas = std::move(*r);
  }
  auto p = Payload::parse(*elf, path);
  if (!p) {
    ADD_FAILURE() << p.error().message();
    return;
  }
  for (const FuncSpec& f : p->funcs) func.emplace(f.name, f.index);
  for (const Elf64_Rela& rel : funcs_relas)
    if (rel.r_offset % kFuncSize == 0)
      name_off.emplace(p->funcs[rel.r_offset / kFuncSize].name, static_cast<u64>(rel.r_addend));
}

size_t PayloadLayout::index(const std::string& name) const {
  auto it = sec.find(name);
  if (it == sec.end()) {
    ADD_FAILURE() << "no section " << name << " in " << path;
    return 0;
  }
  return it->second;
}

std::string PayloadLayout::desc(const std::string& name) const {
  return fmt::format("section [index {}] '{}'", index(name), name);
}

u64 PayloadLayout::fn(const std::string& name) const { return data(".livepatch.funcs") + func.at(name) * kFuncSize; }

size_t PayloadLayout::reloc(const std::string& name, u64 field) const {
  const u64 off = func.at(name) * kFuncSize + field;
  for (size_t k = 0; k < funcs_relas.size(); ++k)
    if (funcs_relas[k].r_offset == off) return k;
  ADD_FAILURE() << "no relocation at " << off;
  return 0;
}

}  // namespace hs::test
