// The ELF64 reader. Everything a later accessor relies on is checked here,
// once, in create(): after that, section data, string table lookups, symbol
// and relocation entries are in bounds by construction.
//
// Payloads are untrusted, so the order of the checks matters: the header
// first, then the section header table, then the section name table (so that
// later messages can name sections), then each section's data range, then the
// structured sections (string tables before the symbol tables that use them,
// symbol tables before the relocation sections that index them).
//
// Integers are always compared before a pointer is formed, in the
// overflow-safe form `off > size || len > size - off`, and every structure is
// copied out with memcpy (the file's bytes have no alignment guarantee).
//
// The checks, in order (ET_REL-only ones marked [rel]):
//  - header: size >= Ehdr, magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT (ident
//    and e_version), EM_X86_64, e_type REL/EXEC/DYN, [rel] OSABI NONE/GNU and
//    ABIVERSION 0, e_ehsize
//  - program headers: [rel] e_phnum == 0; else no PN_XNUM, e_phentsize, table
//    in bounds (segment contents are not checked: debug files keep headers of
//    the original; build_id() checks a PT_NOTE before reading it)
//  - section table: no extended numbering, e_shentsize, e_shoff past the
//    header, table in bounds; e_shstrndx valid, SHT_STRTAB, in bounds,
//    NUL-terminated; every sh_name inside it
//  - every section: data in bounds unless NOBITS, [rel] not over the ELF
//    header, sh_addralign a power of two, [rel] sh_addr aligned; no
//    SHF_COMPRESSED on a table we parse; [rel] no SHT_REL, no
//    SHT_SYMTAB_SHNDX, one SHT_SYMTAB
//  - SHT_STRTAB: non-empty, ends with NUL
//  - SHT_SYMTAB/DYNSYM: entsize, size multiple, sh_link a STRTAB, sh_info <=
//    count, st_name in bounds, st_shndx valid ([rel] no COMMON / XINDEX /
//    other reserved but SHN_LIVEPATCH), [rel] st_value + st_size inside the section
//  - SHT_RELA: entsize, size multiple, sh_link the SYMTAB ([rel]; else 0 or a
//    symbol table), sh_info a section ([rel] with data), symbol indexes in
//    range, [rel] r_offset + width of the type inside the target section
//  - [rel] SHT_GROUP: entsize 4, sh_link the SYMTAB, signature and members valid
//  - SHT_NOTE: headers, names and descriptors in bounds, names NUL-terminated
#include "elf/elf_file.h"

#include "arch/x86_64.h"
#include "elf/notes.h"
#include "elf/reader_util.h"
#include "support/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace hs {

using elf_detail::bad;
using elf_detail::copy_out;
using elf_detail::in_bounds;

namespace {

const char* section_type_name(u32 type) {
  switch (type) {
    case SHT_NULL: return "SHT_NULL";
    case SHT_PROGBITS: return "SHT_PROGBITS";
    case SHT_SYMTAB: return "SHT_SYMTAB";
    case SHT_STRTAB: return "SHT_STRTAB";
    case SHT_RELA: return "SHT_RELA";
    case SHT_NOBITS: return "SHT_NOBITS";
    case SHT_NOTE: return "SHT_NOTE";
    case SHT_REL: return "SHT_REL";
    case SHT_DYNSYM: return "SHT_DYNSYM";
    case SHT_GROUP: return "SHT_GROUP";
    default: return nullptr;
  }
}

std::string describe_type(u32 type) {
  const char* n = section_type_name(type);
  return n ? fmt::format("{} (0x{:x})", n, type) : fmt::format("0x{:x}", type);
}

bool is_symbol_table(u32 type) { return type == SHT_SYMTAB || type == SHT_DYNSYM; }

}  // namespace

// ---------------------------------------------------------------------------
// Small public helpers

std::string ElfFile::printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '\\')
      out += fmt::format("\\x{:02x}", u);
    else
      out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Creation and validation

Result<ElfFile> ElfFile::create(Bytes data) {
  ElfFile f;
  f.data_ = std::make_shared<const Bytes>(std::move(data));
  HS_CHECK(f.validate());
  return f;
}

Result<ElfFile> ElfFile::open(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes)
    return std::unexpected(
        fail_errno(ErrorKind::Io, bytes.error().err, "{}", bytes.error().opening ? "cannot open" : "cannot read")
            .error()
            .context(path));
  auto f = create(std::move(*bytes));
  if (!f) return std::unexpected(std::move(f.error()).context(path));
  f->path_ = path;
  return f;
}

Status ElfFile::validate() {
  const ByteView d = *data_;
  const u64 size = d.size();

  // -- ELF header
  if (size < sizeof(Elf64_Ehdr))
    return bad("file size 0x{:x} is smaller than an ELF header (0x{:x})", size, sizeof(Elf64_Ehdr));
  ehdr_ = copy_out<Elf64_Ehdr>(d, 0);
  const unsigned char* id = ehdr_.e_ident;
  if (std::memcmp(id, ELFMAG, SELFMAG) != 0) {
    const u32 magic = u32(id[0]) << 24 | u32(id[1]) << 16 | u32(id[2]) << 8 | u32(id[3]);
    return bad("not an ELF file: magic 0x{:08x} is not 0x7f454c46", magic);
  }
  if (id[EI_CLASS] != ELFCLASS64) return bad("e_ident[EI_CLASS] 0x{:x} is not ELFCLASS64 (0x2)", id[EI_CLASS]);
  if (id[EI_DATA] != ELFDATA2LSB) return bad("e_ident[EI_DATA] 0x{:x} is not ELFDATA2LSB (0x1)", id[EI_DATA]);
  if (id[EI_VERSION] != EV_CURRENT)
    return bad("e_ident[EI_VERSION] 0x{:x} is not EV_CURRENT (0x1)", id[EI_VERSION]);
  if (ehdr_.e_version != EV_CURRENT) return bad("e_version 0x{:x} is not EV_CURRENT (0x1)", ehdr_.e_version);
  if (ehdr_.e_machine != EM_X86_64) return bad("e_machine 0x{:x} is not EM_X86_64 (0x3e)", ehdr_.e_machine);
  if (ehdr_.e_type != ET_REL && ehdr_.e_type != ET_EXEC && ehdr_.e_type != ET_DYN)
    return bad("e_type 0x{:x} is not ET_REL (0x1), ET_EXEC (0x2) or ET_DYN (0x3)", ehdr_.e_type);
  const bool rel = is_relocatable();
  if (rel) {
    if (id[EI_OSABI] != ELFOSABI_NONE && id[EI_OSABI] != ELFOSABI_GNU)
      return bad("e_ident[EI_OSABI] 0x{:x} is not ELFOSABI_NONE (0x0) or ELFOSABI_GNU (0x3)", id[EI_OSABI]);
    if (id[EI_ABIVERSION] != 0) return bad("e_ident[EI_ABIVERSION] 0x{:x} is not 0x0", id[EI_ABIVERSION]);
  }
  if (ehdr_.e_ehsize != sizeof(Elf64_Ehdr))
    return bad("e_ehsize 0x{:x} is not sizeof(Elf64_Ehdr) (0x{:x})", ehdr_.e_ehsize, sizeof(Elf64_Ehdr));

  // -- program headers
  if (rel) {
    if (ehdr_.e_phnum != 0)
      return bad("program headers present in a relocatable file: e_phnum 0x{:x}, expected 0x0", ehdr_.e_phnum);
  } else if (ehdr_.e_phnum != 0) {
    if (ehdr_.e_phnum == PN_XNUM) return bad("e_phnum PN_XNUM (extended numbering) is not supported");
    if (ehdr_.e_phentsize != sizeof(Elf64_Phdr))
      return bad("e_phentsize 0x{:x} is not sizeof(Elf64_Phdr) (0x{:x})", ehdr_.e_phentsize, sizeof(Elf64_Phdr));
    const u64 len = u64(ehdr_.e_phnum) * sizeof(Elf64_Phdr);
    if (!in_bounds(ehdr_.e_phoff, len, size))
      return bad("program header table: e_phoff 0x{:x} + 0x{:x} (e_phnum 0x{:x} * 0x{:x}) is past the end of the file (0x{:x})",
                 ehdr_.e_phoff, len, ehdr_.e_phnum, sizeof(Elf64_Phdr), size);
    phdrs_.reserve(ehdr_.e_phnum);
    for (u64 i = 0; i < ehdr_.e_phnum; ++i)
      phdrs_.push_back(copy_out<Elf64_Phdr>(d, ehdr_.e_phoff + i * sizeof(Elf64_Phdr)));
  }

  return validate_sections();
}

std::string_view ElfFile::section_name(size_t index) const {
  if (index >= shdrs_.size() || !names_valid_) return {};
  const Elf64_Shdr& strtab = shdrs_[ehdr_.e_shstrndx];
  const auto* base = reinterpret_cast<const char*>(data_->data() + strtab.sh_offset);
  return std::string_view(base + shdrs_[index].sh_name);  // NUL-terminated: checked by validate()
}

std::string ElfFile::describe_section(size_t index) const {
  if (!names_valid_ || index >= shdrs_.size()) return fmt::format("section [index {}]", index);
  return fmt::format("section [index {}] '{}'", index, printable(section_name(index)));
}

Status ElfFile::check_strtab(size_t index, std::string_view what) const {
  const Elf64_Shdr& sh = shdrs_[index];
  if (sh.sh_size == 0) return bad("{}: string table is empty", what);
  if ((*data_)[sh.sh_offset + sh.sh_size - 1] != 0) return bad("{}: string table does not end with a NUL byte", what);
  return {};
}

Status ElfFile::check_link(size_t index, std::string_view field, u64 link) const {
  if (link == 0 || link >= shdrs_.size())
    return bad("{}: {} 0x{:x} is not a valid section index (e_shnum 0x{:x})", describe_section(index), field, link,
               shdrs_.size());
  return {};
}

Status ElfFile::validate_sections() {
  const ByteView d = *data_;
  const u64 size = d.size();
  const bool rel = is_relocatable();

  // -- the section header table
  if (ehdr_.e_shnum == 0) {
    if (ehdr_.e_shoff != 0)
      return bad("e_shnum 0x0 with e_shoff 0x{:x}: extended section numbering is not supported", ehdr_.e_shoff);
    names_valid_ = true;
    return {};
  }
  if (ehdr_.e_shnum >= SHN_LORESERVE)
    return bad("e_shnum 0x{:x} is not below SHN_LORESERVE (0xff00)", ehdr_.e_shnum);
  if (ehdr_.e_shentsize != sizeof(Elf64_Shdr))
    return bad("e_shentsize 0x{:x} is not sizeof(Elf64_Shdr) (0x{:x})", ehdr_.e_shentsize, sizeof(Elf64_Shdr));
  if (ehdr_.e_shoff < sizeof(Elf64_Ehdr))
    return bad("e_shoff 0x{:x} overlaps the ELF header (0x{:x})", ehdr_.e_shoff, sizeof(Elf64_Ehdr));
  const u64 table_len = u64(ehdr_.e_shnum) * sizeof(Elf64_Shdr);
  if (!in_bounds(ehdr_.e_shoff, table_len, size))
    return bad("section header table: e_shoff 0x{:x} + 0x{:x} (e_shnum 0x{:x} * 0x{:x}) is past the end of the file (0x{:x})",
               ehdr_.e_shoff, table_len, ehdr_.e_shnum, sizeof(Elf64_Shdr), size);
  const size_t n = ehdr_.e_shnum;
  shdrs_.reserve(n);
  for (size_t i = 0; i < n; ++i) shdrs_.push_back(copy_out<Elf64_Shdr>(d, ehdr_.e_shoff + i * sizeof(Elf64_Shdr)));

  // -- the section name table, then every name
  const u16 shstrndx = ehdr_.e_shstrndx;
  if (shstrndx == SHN_XINDEX) return bad("e_shstrndx SHN_XINDEX (extended numbering) is not supported");
  if (shstrndx == SHN_UNDEF || shstrndx >= n)
    return bad("e_shstrndx 0x{:x} is not a valid section index (e_shnum 0x{:x})", shstrndx, n);
  {
    const Elf64_Shdr& sh = shdrs_[shstrndx];
    const std::string what = fmt::format("section [index {}] (e_shstrndx)", shstrndx);
    if (sh.sh_type != SHT_STRTAB) return bad("{}: sh_type {} is not SHT_STRTAB (0x3)", what, describe_type(sh.sh_type));
    if (!in_bounds(sh.sh_offset, sh.sh_size, size))
      return bad("{}: sh_offset 0x{:x} + sh_size 0x{:x} is past the end of the file (0x{:x})", what, sh.sh_offset,
                 sh.sh_size, size);
    HS_CHECK(check_strtab(shstrndx, what));
    for (size_t i = 0; i < n; ++i)
      if (shdrs_[i].sh_name >= sh.sh_size)
        return bad("section [index {}]: sh_name 0x{:x} is past the end of the section name table (0x{:x})", i,
                   shdrs_[i].sh_name, sh.sh_size);
    names_valid_ = true;
  }

  // -- each section's data range and generic fields
  size_t symtab = 0;
  for (size_t i = 1; i < n; ++i) {
    const Elf64_Shdr& sh = shdrs_[i];
    const std::string what = describe_section(i);
    if (sh.sh_type != SHT_NOBITS) {
      if (!in_bounds(sh.sh_offset, sh.sh_size, size))
        return bad("{}: sh_offset 0x{:x} + sh_size 0x{:x} is past the end of the file (0x{:x})", what, sh.sh_offset,
                   sh.sh_size, size);
      if (rel && sh.sh_size != 0 && sh.sh_offset < sizeof(Elf64_Ehdr))
        return bad("{}: sh_offset 0x{:x} overlaps the ELF header (0x{:x})", what, sh.sh_offset, sizeof(Elf64_Ehdr));
    }
    if (sh.sh_addralign & (sh.sh_addralign - 1))
      return bad("{}: sh_addralign 0x{:x} is not a power of two", what, sh.sh_addralign);
    if (rel && sh.sh_addralign > 1 && sh.sh_addr % sh.sh_addralign)
      return bad("{}: sh_addr 0x{:x} is not aligned to sh_addralign 0x{:x}", what, sh.sh_addr, sh.sh_addralign);
    const bool structural = sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_STRTAB ||
                            sh.sh_type == SHT_RELA || sh.sh_type == SHT_REL || sh.sh_type == SHT_NOTE ||
                            sh.sh_type == SHT_GROUP;
    if (structural && (sh.sh_flags & SHF_COMPRESSED))
      return bad("{}: SHF_COMPRESSED is not supported for sh_type {}", what, describe_type(sh.sh_type));
    if (rel) {
      if (sh.sh_type == SHT_REL) return bad("{}: SHT_REL is not supported (x86-64 uses SHT_RELA)", what);
      if (sh.sh_type == SHT_SYMTAB_SHNDX)
        return bad("{}: SHT_SYMTAB_SHNDX (extended section indexes) is not supported", what);
      if (sh.sh_type == SHT_SYMTAB) {
        if (symtab != 0)
          return bad("{}: a second SHT_SYMTAB section (the first is {})", what, describe_section(symtab));
        symtab = i;
      }
    }
  }

  // -- structured sections: string tables, symbol tables, relocations,
  //    groups, notes (in that order: each relies on the ones before)
  for (size_t i = 1; i < n; ++i)
    if (shdrs_[i].sh_type == SHT_STRTAB) HS_CHECK(check_strtab(i, describe_section(i)));
  for (size_t i = 1; i < n; ++i)
    if (is_symbol_table(shdrs_[i].sh_type)) HS_CHECK(validate_symtab(i));
  for (size_t i = 1; i < n; ++i)
    if (shdrs_[i].sh_type == SHT_RELA) HS_CHECK(validate_rela(i));
  for (size_t i = 1; i < n; ++i)
    if (rel && shdrs_[i].sh_type == SHT_GROUP) HS_CHECK(validate_group(i));
  for (size_t i = 1; i < n; ++i) {
    if (shdrs_[i].sh_type != SHT_NOTE) continue;
    std::vector<RawNote> notes;
    HS_CHECK(walk_notes(section_data(i), note_alignment(shdrs_[i].sh_addralign), describe_section(i), "section",
                        notes));
  }
  return {};
}

Status ElfFile::check_entries(size_t index, u64 entsize, std::string_view entry_type) const {
  const Elf64_Shdr& sh = shdrs_[index];
  if (sh.sh_entsize != entsize)
    return bad("{}: sh_entsize 0x{:x} is not sizeof({}) (0x{:x})", describe_section(index), sh.sh_entsize, entry_type,
               entsize);
  if (sh.sh_size % entsize)
    return bad("{}: sh_size 0x{:x} is not a multiple of sh_entsize (0x{:x})", describe_section(index), sh.sh_size,
               entsize);
  return {};
}

Status ElfFile::validate_symtab(size_t index) {
  const Elf64_Shdr& sh = shdrs_[index];
  const std::string what = describe_section(index);
  const bool rel = is_relocatable();
  HS_CHECK(check_entries(index, sizeof(Elf64_Sym), "Elf64_Sym"));
  HS_CHECK(check_link(index, "sh_link", sh.sh_link));
  const Elf64_Shdr& str = shdrs_[sh.sh_link];
  if (str.sh_type != SHT_STRTAB)
    return bad("{}: sh_link 0x{:x} is {} of type {}, not SHT_STRTAB (0x3)", what, sh.sh_link,
               describe_section(sh.sh_link), describe_type(str.sh_type));
  const u64 nsyms = sh.sh_size / sizeof(Elf64_Sym);
  if (sh.sh_info > nsyms)
    return bad("{}: sh_info 0x{:x} (first non-local symbol) is greater than the number of symbols (0x{:x})", what,
               sh.sh_info, nsyms);
  const ByteView d = *data_;
  const auto* strings = reinterpret_cast<const char*>(d.data() + str.sh_offset);
  for (u64 k = 0; k < nsyms; ++k) {
    const auto s = copy_out<Elf64_Sym>(d, sh.sh_offset + k * sizeof(Elf64_Sym));
    if (s.st_name >= str.sh_size)
      return bad("{}: symbol [index {}]: st_name 0x{:x} is past the end of {} (0x{:x})", what, k, s.st_name,
                 describe_section(sh.sh_link), str.sh_size);
    // Formatted only on the error path: symbol tables can be large.
    const auto sym = [&] { return fmt::format("{}: symbol [index {}] '{}'", what, k, printable(strings + s.st_name)); };
    const u16 shndx = s.st_shndx;
    if (shndx == SHN_UNDEF || shndx == SHN_ABS) continue;
    if (shndx == SHN_COMMON) {
      if (rel) return bad("{}: st_shndx SHN_COMMON is not supported (compile with -fno-common)", sym());
      continue;
    }
    if (shndx == SHN_XINDEX) {
      if (rel) return bad("{}: st_shndx SHN_XINDEX (extended section index) is not supported", sym());
      continue;
    }
    if (shndx >= SHN_LORESERVE && !rel) continue;  // processor/OS specific, never looked up
    if (shndx == kShnLivepatch) continue;  // resolved by name (payload/klp.h checks it)
    if (shndx >= shdrs_.size())
      return bad("{}: st_shndx 0x{:x} is not a valid section index (e_shnum 0x{:x})", sym(), shndx, shdrs_.size());
    const u8 type = ELF64_ST_TYPE(s.st_info);
    if (rel && type != STT_SECTION && type != STT_FILE) {
      const u64 secsize = shdrs_[shndx].sh_size;
      if (!in_bounds(s.st_value, s.st_size, secsize))
        return bad("{}: st_value 0x{:x} + st_size 0x{:x} is past the end of {} (0x{:x})", sym(), s.st_value, s.st_size,
                   describe_section(shndx), secsize);
    }
  }
  return {};
}

Status ElfFile::validate_rela(size_t index) {
  const Elf64_Shdr& sh = shdrs_[index];
  const std::string what = describe_section(index);
  const bool rel = is_relocatable();
  HS_CHECK(check_entries(index, sizeof(Elf64_Rela), "Elf64_Rela"));

  // The symbol table: required for ET_REL; executables' .rela.plt may have none.
  u64 nsyms = 0;
  const bool has_symtab = rel || sh.sh_link != 0;
  if (has_symtab) {
    HS_CHECK(check_link(index, "sh_link", sh.sh_link));
    const u32 t = shdrs_[sh.sh_link].sh_type;
    if (rel && t != SHT_SYMTAB)
      return bad("{}: sh_link 0x{:x} is {} of type {}, not SHT_SYMTAB (0x2)", what, sh.sh_link,
                 describe_section(sh.sh_link), describe_type(t));
    if (!rel && !is_symbol_table(t))
      return bad("{}: sh_link 0x{:x} is {} of type {}, not SHT_SYMTAB (0x2) or SHT_DYNSYM (0xb)", what, sh.sh_link,
                 describe_section(sh.sh_link), describe_type(t));
    nsyms = shdrs_[sh.sh_link].sh_size / sizeof(Elf64_Sym);
  }

  // The section the relocations apply to.
  u64 target_size = 0;
  if (rel) {
    HS_CHECK(check_link(index, "sh_info", sh.sh_info));
    const Elf64_Shdr& target = shdrs_[sh.sh_info];
    if (target.sh_type == SHT_NOBITS)
      return bad("{}: sh_info 0x{:x} is {} of type SHT_NOBITS, which has no data to relocate", what, sh.sh_info,
                 describe_section(sh.sh_info));
    target_size = target.sh_size;
  } else if (sh.sh_info >= shdrs_.size()) {
    return bad("{}: sh_info 0x{:x} is not a valid section index (e_shnum 0x{:x})", what, sh.sh_info, shdrs_.size());
  }

  const ByteView d = *data_;
  const u64 count = sh.sh_size / sizeof(Elf64_Rela);
  for (u64 k = 0; k < count; ++k) {
    const auto r = copy_out<Elf64_Rela>(d, sh.sh_offset + k * sizeof(Elf64_Rela));
    const u64 sym = ELF64_R_SYM(r.r_info);
    const u32 type = static_cast<u32>(ELF64_R_TYPE(r.r_info));
    if (has_symtab && sym >= nsyms)
      return bad("{}: relocation [index {}]: symbol index 0x{:x} is not less than the number of symbols in {} (0x{:x})",
                 what, k, sym, describe_section(sh.sh_link), nsyms);
    if (rel) {
      const u64 width = x86_64::reloc_field_size(type);
      if (!in_bounds(r.r_offset, width, target_size))
        return bad("{}: relocation [index {}]: r_offset 0x{:x} + 0x{:x} ({}) is past the end of {} (0x{:x})", what, k,
                   r.r_offset, width, x86_64::reloc_display_name(type), describe_section(sh.sh_info), target_size);
    }
  }
  return {};
}

Status ElfFile::validate_group(size_t index) {
  const Elf64_Shdr& sh = shdrs_[index];
  const std::string what = describe_section(index);
  if (sh.sh_entsize != 4) return bad("{}: sh_entsize 0x{:x} is not 0x4", what, sh.sh_entsize);
  if (sh.sh_size < 4 || sh.sh_size % 4)
    return bad("{}: sh_size 0x{:x} is not a non-zero multiple of 0x4", what, sh.sh_size);
  HS_CHECK(check_link(index, "sh_link", sh.sh_link));
  if (shdrs_[sh.sh_link].sh_type != SHT_SYMTAB)
    return bad("{}: sh_link 0x{:x} is {} of type {}, not SHT_SYMTAB (0x2)", what, sh.sh_link,
               describe_section(sh.sh_link), describe_type(shdrs_[sh.sh_link].sh_type));
  const u64 nsyms = shdrs_[sh.sh_link].sh_size / sizeof(Elf64_Sym);
  if (sh.sh_info >= nsyms)
    return bad("{}: sh_info 0x{:x} (signature symbol) is not less than the number of symbols (0x{:x})", what,
               sh.sh_info, nsyms);
  const ByteView body = section_data(index);
  for (u64 k = 1; k < body.size() / 4; ++k) {
    const u32 member = load_le<u32>(body.data() + k * 4);
    if (member == 0 || member >= shdrs_.size() || member == index)
      return bad("{}: member [index {}] 0x{:x} is not a valid section index (e_shnum 0x{:x})", what, k - 1, member,
                 shdrs_.size());
  }
  return {};
}

// ---------------------------------------------------------------------------
// Accessors (everything they touch was validated by create())

std::optional<size_t> ElfFile::find_section(std::string_view name) const {
  for (size_t i = 1; i < shdrs_.size(); ++i)
    if (section_name(i) == name) return i;
  return std::nullopt;
}

ByteView ElfFile::section_data(size_t index) const {
  if (index == 0 || index >= shdrs_.size() || shdrs_[index].sh_type == SHT_NOBITS) return {};
  const Elf64_Shdr& sh = shdrs_[index];
  return ByteView(*data_).subspan(sh.sh_offset, sh.sh_size);
}

Result<std::vector<ElfSymbol>> ElfFile::symbols(size_t symtab_index) const {
  if (symtab_index == 0 || symtab_index >= shdrs_.size() || !is_symbol_table(shdrs_[symtab_index].sh_type))
    return bad("{} is not a symbol table", describe_section(symtab_index));
  const Elf64_Shdr& sh = shdrs_[symtab_index];
  const Elf64_Shdr& str = shdrs_[sh.sh_link];
  const ByteView d = *data_;
  const auto* strings = reinterpret_cast<const char*>(d.data() + str.sh_offset);
  const u64 nsyms = sh.sh_size / sizeof(Elf64_Sym);
  std::vector<ElfSymbol> out;
  out.reserve(nsyms);
  for (u64 k = 0; k < nsyms; ++k) {
    const auto s = copy_out<Elf64_Sym>(d, sh.sh_offset + k * sizeof(Elf64_Sym));
    ElfSymbol e;
    e.index = static_cast<u32>(k);
    e.name = std::string_view(strings + s.st_name);
    e.st_value = s.st_value;
    e.st_size = s.st_size;
    e.st_info = s.st_info;
    e.st_other = s.st_other;
    e.st_shndx = s.st_shndx;
    out.push_back(e);
  }
  return out;
}

std::optional<size_t> ElfFile::symtab_index() const {
  for (size_t i = 1; i < shdrs_.size(); ++i)
    if (shdrs_[i].sh_type == SHT_SYMTAB) return i;
  return dynsym_index();
}

std::optional<size_t> ElfFile::dynsym_index() const {
  for (size_t i = 1; i < shdrs_.size(); ++i)
    if (shdrs_[i].sh_type == SHT_DYNSYM) return i;
  return std::nullopt;
}

Result<std::vector<Elf64_Rela>> ElfFile::relocations(size_t rela_index) const {
  if (rela_index == 0 || rela_index >= shdrs_.size() || shdrs_[rela_index].sh_type != SHT_RELA)
    return bad("{} is not a SHT_RELA section", describe_section(rela_index));
  const ByteView body = section_data(rela_index);
  std::vector<Elf64_Rela> out(body.size() / sizeof(Elf64_Rela));
  if (!out.empty()) std::memcpy(out.data(), body.data(), out.size() * sizeof(Elf64_Rela));
  return out;
}

u64 ElfFile::first_load_vaddr() const {
  bool found = false;
  u64 lowest = 0;
  for (const Elf64_Phdr& ph : phdrs_) {
    if (ph.p_type != PT_LOAD) continue;
    if (!found || ph.p_vaddr < lowest) lowest = ph.p_vaddr;
    found = true;
  }
  return lowest & ~(x86_64::kPageSize - 1);
}

}  // namespace hs
