// klp_convert(): see klp_form.h. The input is trusted (the builder's own
// output), but every read is still bounds-checked so a bad input is an
// error, not a crash. The new .klp.rela sections, a new section name table
// and a new section header table are appended to the file; the old ones
// stay where they are, unreferenced.
#include "support/klp_form.h"

#include <elf.h>

#include <cstring>
#include <map>

namespace hs::test {
namespace {

constexpr u16 kShnLivepatch = 0xff20;

template <class T>
Result<T> read(ByteView b, u64 off) {
  if (off > b.size() || sizeof(T) > b.size() - off)
    return fail(ErrorKind::Internal, "klp_convert: read of {} bytes at 0x{:x} is past the end (0x{:x})", sizeof(T),
                off, b.size());
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

template <class T>
void write(Bytes& b, u64 off, const T& v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

std::string cstr(ByteView b, u64 off) {
  std::string s;
  while (off < b.size() && b[off] != 0) s += static_cast<char>(b[off++]);
  return s;
}

void pad_to(Bytes& b, u64 align) {
  while (b.size() % align) b.push_back(0);
}

}  // namespace

Result<Bytes> klp_convert(ByteView in, const KlpConvert& opts) {
  Bytes out(in.begin(), in.end());
  const auto eh = HS_TRY(read<Elf64_Ehdr>(in, 0));
  std::vector<Elf64_Shdr> sh;
  for (u64 i = 0; i < eh.e_shnum; ++i) sh.push_back(HS_TRY(read<Elf64_Shdr>(in, eh.e_shoff + i * sizeof(Elf64_Shdr))));
  if (eh.e_shstrndx >= sh.size()) return fail(ErrorKind::Internal, "klp_convert: bad e_shstrndx");
  const Elf64_Shdr& shstr = sh[eh.e_shstrndx];
  const auto secname = [&](size_t i) { return cstr(in.first(shstr.sh_offset + shstr.sh_size), shstr.sh_offset + sh[i].sh_name); };

  size_t symtab = 0;
  for (size_t i = 1; i < sh.size(); ++i)
    if (sh[i].sh_type == SHT_SYMTAB) symtab = i;
  if (!symtab) return fail(ErrorKind::Internal, "klp_convert: no .symtab");
  const Elf64_Shdr& strtab = sh.at(sh[symtab].sh_link);

  // The ".klp.sym." symbols and their objects.
  std::map<u64, std::string> object_of;
  const u64 nsyms = sh[symtab].sh_size / sizeof(Elf64_Sym);
  for (u64 k = 0; k < nsyms; ++k) {
    const u64 at = sh[symtab].sh_offset + k * sizeof(Elf64_Sym);
    auto s = HS_TRY(read<Elf64_Sym>(in, at));
    const std::string name = cstr(in, strtab.sh_offset + s.st_name);
    if (!name.starts_with(".klp.sym.")) continue;
    const std::string body = name.substr(9);
    std::string best;
    for (const std::string& o : opts.objects)
      if (body.starts_with(o + ".") && o.size() > best.size()) best = o;
    if (best.empty()) return fail(ErrorKind::Internal, "klp_convert: symbol '{}' names no known object", name);
    object_of[k] = best;
    if (opts.mark_livepatch) {
      s.st_shndx = kShnLivepatch;
      write(out, at, s);
    }
  }

  // Split each ordinary .rela section.
  struct NewSection {
    std::string name;
    Bytes data;
    u32 info = 0;
  };
  std::vector<NewSection> added;
  for (size_t i = 1; i < sh.size() && opts.move_relocations; ++i) {
    if (sh[i].sh_type != SHT_RELA || sh[i].sh_link != symtab) continue;
    std::vector<Elf64_Rela> keep;
    std::map<std::string, std::vector<Elf64_Rela>> moved;
    for (u64 off = 0; off + sizeof(Elf64_Rela) <= sh[i].sh_size; off += sizeof(Elf64_Rela)) {
      const auto r = HS_TRY(read<Elf64_Rela>(in, sh[i].sh_offset + off));
      auto it = object_of.find(ELF64_R_SYM(r.r_info));
      if (it == object_of.end())
        keep.push_back(r);
      else
        moved[it->second].push_back(r);
    }
    if (moved.empty()) continue;
    for (size_t k = 0; k < keep.size(); ++k) write(out, sh[i].sh_offset + k * sizeof(Elf64_Rela), keep[k]);
    sh[i].sh_size = keep.size() * sizeof(Elf64_Rela);
    const std::string target = secname(sh[i].sh_info);
    for (const auto& [object, relas] : moved) {
      NewSection ns;
      ns.name = opts.section_name ? opts.section_name(object, target) : ".klp.rela." + object + "." + target;
      ns.info = sh[i].sh_info;
      ns.data.resize(relas.size() * sizeof(Elf64_Rela));
      std::memcpy(ns.data.data(), relas.data(), ns.data.size());
      added.push_back(std::move(ns));
    }
  }

  // Appended: the new sections' data, the name table, the header table.
  Bytes names(in.begin() + static_cast<std::ptrdiff_t>(shstr.sh_offset),
              in.begin() + static_cast<std::ptrdiff_t>(shstr.sh_offset + shstr.sh_size));
  for (const NewSection& ns : added) {
    pad_to(out, 8);
    Elf64_Shdr h{};
    h.sh_name = static_cast<u32>(names.size());
    names.insert(names.end(), ns.name.begin(), ns.name.end());
    names.push_back(0);
    h.sh_type = SHT_RELA;
    h.sh_flags = opts.flags;
    h.sh_offset = out.size();
    h.sh_size = ns.data.size();
    h.sh_link = static_cast<u32>(symtab);
    h.sh_info = ns.info;
    h.sh_addralign = 8;
    h.sh_entsize = sizeof(Elf64_Rela);
    out.insert(out.end(), ns.data.begin(), ns.data.end());
    sh.push_back(h);
  }
  sh[eh.e_shstrndx].sh_offset = out.size();
  sh[eh.e_shstrndx].sh_size = names.size();
  out.insert(out.end(), names.begin(), names.end());
  pad_to(out, 8);
  Elf64_Ehdr neh = eh;
  neh.e_shoff = out.size();
  neh.e_shnum = static_cast<u16>(sh.size());
  for (const Elf64_Shdr& h : sh) {
    const u64 at = out.size();
    out.resize(at + sizeof(Elf64_Shdr));
    write(out, at, h);
  }
  write(out, 0, neh);
  return out;
}

}  // namespace hs::test
