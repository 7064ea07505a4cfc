// Payload::parse / Payload::open on a real payload built at test time, and a
// table of malformed payloads made by mutating that payload's bytes. Every
// malformed case asserts the exact message (llvm/test/Object/invalid.test
// style) and the BadPayload kind. Offsets, sizes and indexes in the expected
// messages are taken from the good payload, so the table does not depend on
// the exact layout this toolchain produces.
#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <map>

#include "support/files.h"
#include "support/sample_payload.h"
#include "payload/payload.h"
#include "support/payload_layout.h"

namespace hs {
namespace {

using test::TempDir;

using Layout = test::PayloadLayout;
using test::get;
using test::put;

TempDir& scratch() {
  static TempDir dir("hs-elf-test");
  return dir;
}

// The good payload, built once.
const Layout& layout() {
  static const Layout l(test::build_payload(scratch()));
  return l;
}

#define SH(field) offsetof(Elf64_Shdr, field)
#define EH(field) offsetof(Elf64_Ehdr, field)
#define ST(field) offsetof(Elf64_Sym, field)
#define RA(field) offsetof(Elf64_Rela, field)

// Relocation k of .rela.livepatch.funcs: keep the type, change the symbol.
void set_reloc_sym(Bytes& b, const Layout& l, size_t k, u32 sym) {
  const u64 info = get<u64>(b, l.relaoff(k) + RA(r_info));
  put<u64>(b, l.relaoff(k) + RA(r_info), ELF64_R_INFO(sym, ELF64_R_TYPE(info)));
}
void set_reloc_type(Bytes& b, const Layout& l, size_t k, u32 type) {
  const u64 info = get<u64>(b, l.relaoff(k) + RA(r_info));
  put<u64>(b, l.relaoff(k) + RA(r_info), ELF64_R_INFO(ELF64_R_SYM(info), type));
}
// Renames section n to the name of section `as` (so n disappears by name).
void rename_as(Bytes& b, const Layout& l, const std::string& n, const std::string& as) {
  put<u32>(b, l.shdr_offset(n) + SH(sh_name), l.sh[l.index(as)].sh_name);
}
u64 find_in(const Bytes& b, u64 from, u64 len, std::string_view needle) {
  const std::string_view hay(reinterpret_cast<const char*>(b.data() + from), len);
  const size_t at = hay.find(needle);
  EXPECT_NE(at, std::string_view::npos) << needle;
  return at;
}
// Where the "cve=" entry starts in b's .modinfo, as an offset into it.
u64 cve_entry(const Bytes& b, const Layout& l) { return find_in(b, l.data(".modinfo"), l.secsize(".modinfo"), "cve="); }

struct Case {
  const char* name;
  std::function<void(Bytes&, const Layout&)> mutate;
  std::function<std::string(const Layout&)> message;  // without the "PATH: " prefix
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const std::string kHello = "hello", kOther = "main.c#other", kNop = "debug_log,2";

std::vector<Case> cases() {
  using L = const Layout&;
  return {
      // ---- ELF header
      {"Truncated", [](Bytes& b, L) { b.resize(0x20); },
       [](L) { return std::string("file size 0x20 is smaller than an ELF header (0x40)"); }},
      {"BadMagic", [](Bytes& b, L) { b[3] = 'G'; },
       [](L) { return std::string("not an ELF file: magic 0x7f454c47 is not 0x7f454c46"); }},
      {"WrongClass", [](Bytes& b, L) { b[EI_CLASS] = ELFCLASS32; },
       [](L) { return std::string("e_ident[EI_CLASS] 0x1 is not ELFCLASS64 (0x2)"); }},
      {"BigEndian", [](Bytes& b, L) { b[EI_DATA] = ELFDATA2MSB; },
       [](L) { return std::string("e_ident[EI_DATA] 0x2 is not ELFDATA2LSB (0x1)"); }},
      {"IdentVersion", [](Bytes& b, L) { b[EI_VERSION] = 0; },
       [](L) { return std::string("e_ident[EI_VERSION] 0x0 is not EV_CURRENT (0x1)"); }},
      {"OsAbi", [](Bytes& b, L) { b[EI_OSABI] = 9; },
       [](L) { return std::string("e_ident[EI_OSABI] 0x9 is not ELFOSABI_NONE (0x0) or ELFOSABI_GNU (0x3)"); }},
      {"AbiVersion", [](Bytes& b, L) { b[EI_ABIVERSION] = 1; },
       [](L) { return std::string("e_ident[EI_ABIVERSION] 0x1 is not 0x0"); }},
      {"EVersion", [](Bytes& b, L) { put<u32>(b, EH(e_version), 2); },
       [](L) { return std::string("e_version 0x2 is not EV_CURRENT (0x1)"); }},
      {"WrongMachine", [](Bytes& b, L) { put<u16>(b, EH(e_machine), EM_386); },
       [](L) { return std::string("e_machine 0x3 is not EM_X86_64 (0x3e)"); }},
      {"TypeCore", [](Bytes& b, L) { put<u16>(b, EH(e_type), ET_CORE); },
       [](L) { return std::string("e_type 0x4 is not ET_REL (0x1), ET_EXEC (0x2) or ET_DYN (0x3)"); }},
      {"TypeDyn", [](Bytes& b, L) { put<u16>(b, EH(e_type), ET_DYN); },
       [](L) { return std::string("e_type 0x3 is not ET_REL (0x1): a payload must be a relocatable object"); }},
      {"Ehsize", [](Bytes& b, L) { put<u16>(b, EH(e_ehsize), 0x34); },
       [](L) { return std::string("e_ehsize 0x34 is not sizeof(Elf64_Ehdr) (0x40)"); }},
      {"ProgramHeaders", [](Bytes& b, L) { put<u16>(b, EH(e_phnum), 1); },
       [](L) { return std::string("program headers present in a relocatable file: e_phnum 0x1, expected 0x0"); }},
      // ---- section header table
      {"Shentsize", [](Bytes& b, L) { put<u16>(b, EH(e_shentsize), 0x38); },
       [](L) { return std::string("e_shentsize 0x38 is not sizeof(Elf64_Shdr) (0x40)"); }},
      {"ShnumZeroExtended", [](Bytes& b, L) { put<u16>(b, EH(e_shnum), 0); },
       [](L l) {
         return fmt::format("e_shnum 0x0 with e_shoff 0x{:x}: extended section numbering is not supported", l.eh.e_shoff);
       }},
      {"ShoffInHeader", [](Bytes& b, L) { put<u64>(b, EH(e_shoff), 0x10); },
       [](L) { return std::string("e_shoff 0x10 overlaps the ELF header (0x40)"); }},
      {"SectionTableTruncated", [](Bytes& b, L l) { b.resize(l.eh.e_shoff + 0x40); },
       [](L l) {
         return fmt::format("section header table: e_shoff 0x{:x} + 0x{:x} (e_shnum 0x{:x} * 0x40) is past the end "
                            "of the file (0x{:x})",
                            l.eh.e_shoff, l.eh.e_shnum * 0x40, l.eh.e_shnum, l.eh.e_shoff + 0x40);
       }},
      {"ShoffOverflow", [](Bytes& b, L) { put<u64>(b, EH(e_shoff), 0xffffffffffffffc0); },
       [](L l) {
         return fmt::format("section header table: e_shoff 0xffffffffffffffc0 + 0x{:x} (e_shnum 0x{:x} * 0x40) is "
                            "past the end of the file (0x{:x})",
                            l.eh.e_shnum * 0x40, l.eh.e_shnum, l.bytes.size());
       }},
      {"ShstrndxOutOfRange", [](Bytes& b, L l) { put<u16>(b, EH(e_shstrndx), static_cast<u16>(l.eh.e_shnum)); },
       [](L l) {
         return fmt::format("e_shstrndx 0x{:x} is not a valid section index (e_shnum 0x{:x})", l.eh.e_shnum, l.eh.e_shnum);
       }},
      {"ShstrndxUndef", [](Bytes& b, L) { put<u16>(b, EH(e_shstrndx), 0); },
       [](L l) { return fmt::format("e_shstrndx 0x0 is not a valid section index (e_shnum 0x{:x})", l.eh.e_shnum); }},
      {"ShstrndxXindex", [](Bytes& b, L) { put<u16>(b, EH(e_shstrndx), SHN_XINDEX); },
       [](L) { return std::string("e_shstrndx SHN_XINDEX (extended numbering) is not supported"); }},
      {"ShstrndxNotStrtab", [](Bytes& b, L l) { put<u16>(b, EH(e_shstrndx), static_cast<u16>(l.index(".symtab"))); },
       [](L l) {
         return fmt::format("section [index {}] (e_shstrndx): sh_type SHT_SYMTAB (0x2) is not SHT_STRTAB (0x3)",
                            l.index(".symtab"));
       }},
      {"ShstrtabUnterminated",
       [](Bytes& b, L l) { b[l.sh[l.eh.e_shstrndx].sh_offset + l.sh[l.eh.e_shstrndx].sh_size - 1] = 'x'; },
       [](L l) {
         return fmt::format("section [index {}] (e_shstrndx): string table does not end with a NUL byte", l.eh.e_shstrndx);
       }},
      {"SectionNameOutOfBounds",
       [](Bytes& b, L l) {
         put<u32>(b, l.shdr_offset(".livepatch.funcs") + SH(sh_name), static_cast<u32>(l.sh[l.eh.e_shstrndx].sh_size + 0x10));
       },
       [](L l) {
         return fmt::format("section [index {}]: sh_name 0x{:x} is past the end of the section name table (0x{:x})",
                            l.index(".livepatch.funcs"), l.sh[l.eh.e_shstrndx].sh_size + 0x10, l.sh[l.eh.e_shstrndx].sh_size);
       }},
      // ---- section data and generic fields
      {"SectionDataOutOfBounds", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.funcs") + SH(sh_size), 0x100000); },
       [](L l) {
         return fmt::format("{}: sh_offset 0x{:x} + sh_size 0x100000 is past the end of the file (0x{:x})",
                            l.desc(".livepatch.funcs"), l.data(".livepatch.funcs"), l.bytes.size());
       }},
      {"SectionOffsetOverflow",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".text.fixed_hello") + SH(sh_offset), 0xfffffffffffffff0); },
       [](L l) {
         return fmt::format("{}: sh_offset 0xfffffffffffffff0 + sh_size 0x{:x} is past the end of the file (0x{:x})",
                            l.desc(".text.fixed_hello"), l.secsize(".text.fixed_hello"), l.bytes.size());
       }},
      {"SectionDataInHeader", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".text.fixed_hello") + SH(sh_offset), 0x10); },
       [](L l) { return fmt::format("{}: sh_offset 0x10 overlaps the ELF header (0x40)", l.desc(".text.fixed_hello")); }},
      {"AlignNotPowerOfTwo", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".text.fixed_hello") + SH(sh_addralign), 3); },
       [](L l) { return fmt::format("{}: sh_addralign 0x3 is not a power of two", l.desc(".text.fixed_hello")); }},
      {"AddrMisaligned", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".text.fixed_hello") + SH(sh_addr), 1); },
       [](L l) {
         return fmt::format("{}: sh_addr 0x1 is not aligned to sh_addralign 0x{:x}", l.desc(".text.fixed_hello"),
                            l.sh[l.index(".text.fixed_hello")].sh_addralign);
       }},
      {"CompressedSymtab",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".symtab") + SH(sh_flags), SHF_COMPRESSED); },
       [](L l) {
         return fmt::format("{}: SHF_COMPRESSED is not supported for sh_type SHT_SYMTAB (0x2)", l.desc(".symtab"));
       }},
      {"SymtabShndxSection", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".comment") + SH(sh_type), SHT_SYMTAB_SHNDX); },
       [](L l) {
         return fmt::format("{}: SHT_SYMTAB_SHNDX (extended section indexes) is not supported", l.desc(".comment"));
       }},
      {"SecondSymtab", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".strtab") + SH(sh_type), SHT_SYMTAB); },
       [](L l) {
         return fmt::format("{}: a second SHT_SYMTAB section (the first is {})", l.desc(".strtab"), l.desc(".symtab"));
       }},
      // ---- string and symbol tables
      {"StrtabUnterminated", [](Bytes& b, L l) { b[l.data(".strtab") + l.secsize(".strtab") - 1] = 'x'; },
       [](L l) { return fmt::format("{}: string table does not end with a NUL byte", l.desc(".strtab")); }},
      {"SymtabEntsize", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".symtab") + SH(sh_entsize), 0x10); },
       [](L l) { return fmt::format("{}: sh_entsize 0x10 is not sizeof(Elf64_Sym) (0x18)", l.desc(".symtab")); }},
      {"SymtabSizeNotMultiple",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".symtab") + SH(sh_size), l.secsize(".symtab") - 1); },
       [](L l) {
         return fmt::format("{}: sh_size 0x{:x} is not a multiple of sh_entsize (0x18)", l.desc(".symtab"),
                            l.secsize(".symtab") - 1);
       }},
      {"SymtabLinkNotStrtab",
       [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".symtab") + SH(sh_link), static_cast<u32>(l.index(".livepatch.depends"))); },
       [](L l) {
         return fmt::format("{}: sh_link 0x{:x} is {} of type SHT_NOTE (0x7), not SHT_STRTAB (0x3)", l.desc(".symtab"),
                            l.index(".livepatch.depends"), l.desc(".livepatch.depends"));
       }},
      {"SymtabLinkOutOfRange", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".symtab") + SH(sh_link), 0x99); },
       [](L l) {
         return fmt::format("{}: sh_link 0x99 is not a valid section index (e_shnum 0x{:x})", l.desc(".symtab"),
                            l.eh.e_shnum);
       }},
      {"SymtabInfo",
       [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".symtab") + SH(sh_info), static_cast<u32>(l.nsyms() + 1)); },
       [](L l) {
         return fmt::format("{}: sh_info 0x{:x} (first non-local symbol) is greater than the number of symbols (0x{:x})",
                            l.desc(".symtab"), l.nsyms() + 1, l.nsyms());
       }},
      {"SymbolNameOutOfBounds", [](Bytes& b, L l) { put<u32>(b, l.symoff("fixed_hello") + ST(st_name), 0x10000); },
       [](L l) {
         return fmt::format("{}: symbol [index {}]: st_name 0x10000 is past the end of {} (0x{:x})", l.desc(".symtab"),
                            l.sym.at("fixed_hello"), l.desc(".strtab"), l.secsize(".strtab"));
       }},
      {"SymbolSectionOutOfRange",
       [](Bytes& b, L l) { put<u16>(b, l.symoff("fixed_hello") + ST(st_shndx), static_cast<u16>(l.eh.e_shnum + 5)); },
       [](L l) {
         return fmt::format("{}: symbol [index {}] 'fixed_hello': st_shndx 0x{:x} is not a valid section index "
                            "(e_shnum 0x{:x})",
                            l.desc(".symtab"), l.sym.at("fixed_hello"), l.eh.e_shnum + 5, l.eh.e_shnum);
       }},
      {"SymbolCommon", [](Bytes& b, L l) { put<u16>(b, l.symoff("helper_global") + ST(st_shndx), SHN_COMMON); },
       [](L l) {
         return fmt::format("{}: symbol [index {}] 'helper_global': st_shndx SHN_COMMON is not supported (compile "
                            "with -fno-common)",
                            l.desc(".symtab"), l.sym.at("helper_global"));
       }},
      {"SymbolXindex", [](Bytes& b, L l) { put<u16>(b, l.symoff("helper_global") + ST(st_shndx), SHN_XINDEX); },
       [](L l) {
         return fmt::format("{}: symbol [index {}] 'helper_global': st_shndx SHN_XINDEX (extended section index) is "
                            "not supported",
                            l.desc(".symtab"), l.sym.at("helper_global"));
       }},
      {"SymbolValueOutOfSection", [](Bytes& b, L l) { put<u64>(b, l.symoff("fixed_hello") + ST(st_value), 0x100); },
       [](L l) {
         return fmt::format("{}: symbol [index {}] 'fixed_hello': st_value 0x100 + st_size 0x{:x} is past the end of "
                            "{} (0x{:x})",
                            l.desc(".symtab"), l.sym.at("fixed_hello"), l.syms[l.sym.at("fixed_hello")].st_size,
                            l.desc(".text.fixed_hello"), l.secsize(".text.fixed_hello"));
       }},
      // ---- relocation sections
      {"RelaEntsize", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".rela.livepatch.funcs") + SH(sh_entsize), 0x10); },
       [](L l) { return fmt::format("{}: sh_entsize 0x10 is not sizeof(Elf64_Rela) (0x18)", l.rela_desc()); }},
      {"RelaSizeNotMultiple",
       [](Bytes& b, L l) {
         put<u64>(b, l.shdr_offset(".rela.livepatch.funcs") + SH(sh_size), l.secsize(".rela.livepatch.funcs") - 8);
       },
       [](L l) {
         return fmt::format("{}: sh_size 0x{:x} is not a multiple of sh_entsize (0x18)", l.rela_desc(),
                            l.secsize(".rela.livepatch.funcs") - 8);
       }},
      {"RelaLinkNotSymtab",
       [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".rela.livepatch.funcs") + SH(sh_link), static_cast<u32>(l.index(".strtab"))); },
       [](L l) {
         return fmt::format("{}: sh_link 0x{:x} is {} of type SHT_STRTAB (0x3), not SHT_SYMTAB (0x2)", l.rela_desc(),
                            l.index(".strtab"), l.desc(".strtab"));
       }},
      {"RelaInfoOutOfRange", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".rela.livepatch.funcs") + SH(sh_info), 0x99); },
       [](L l) {
         return fmt::format("{}: sh_info 0x99 is not a valid section index (e_shnum 0x{:x})", l.rela_desc(), l.eh.e_shnum);
       }},
      {"RelaInfoNobits",
       [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".rela.livepatch.funcs") + SH(sh_info), static_cast<u32>(l.index(".bss"))); },
       [](L l) {
         return fmt::format("{}: sh_info 0x{:x} is {} of type SHT_NOBITS, which has no data to relocate",
                            l.rela_desc(), l.index(".bss"), l.desc(".bss"));
       }},
      {"RelocSymbolOutOfRange", [](Bytes& b, L l) { set_reloc_sym(b, l, 0, 0x999); },
       [](L l) {
         return fmt::format("{}: relocation [index 0]: symbol index 0x999 is not less than the number of symbols in "
                            "{} (0x{:x})",
                            l.rela_desc(), l.desc(".symtab"), l.nsyms());
       }},
      {"RelocOffsetOutOfBounds",
       [](Bytes& b, L l) { put<u64>(b, l.relaoff(0) + RA(r_offset), l.secsize(".livepatch.funcs") - 4); },
       [](L l) {
         return fmt::format("{}: relocation [index 0]: r_offset 0x{:x} + 0x8 (R_X86_64_64) is past the end of {} "
                            "(0x{:x})",
                            l.rela_desc(), l.secsize(".livepatch.funcs") - 4, l.desc(".livepatch.funcs"),
                            l.secsize(".livepatch.funcs"));
       }},
      {"ShtRel", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".rela.text.fixed_hello") + SH(sh_type), SHT_REL); },
       [](L l) {
         return fmt::format("{}: SHT_REL is not supported (x86-64 uses SHT_RELA)", l.desc(".rela.text.fixed_hello"));
       }},
      // ---- notes
      {"NoteNameszTooBig", [](Bytes& b, L l) { put<u32>(b, l.data(".livepatch.depends"), 0x100); },
       [](L l) {
         return fmt::format("{}: note at offset 0x0: namesz 0x100 is past the end of the section (0x{:x})",
                            l.desc(".livepatch.depends"), l.secsize(".livepatch.depends"));
       }},
      {"NoteDescszTooBig", [](Bytes& b, L l) { put<u32>(b, l.data(".livepatch.depends") + 4, 0x100); },
       [](L l) {
         return fmt::format("{}: note at offset 0x0: descsz 0x100 is past the end of the section (0x{:x})",
                            l.desc(".livepatch.depends"), l.secsize(".livepatch.depends"));
       }},
      {"NoteTruncated", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.depends") + SH(sh_size), 8); },
       [](L l) {
         return fmt::format("{}: note at offset 0x0: 0x8 bytes left, too few for a note header (0xc)",
                            l.desc(".livepatch.depends"));
       }},
      {"NoteNameUnterminated", [](Bytes& b, L l) { b[l.data(".livepatch.depends") + 12 + 3] = '!'; },
       [](L l) {
         return fmt::format("{}: note at offset 0x0: name is not NUL-terminated", l.desc(".livepatch.depends"));
       }},
      {"NoteWrongType", [](Bytes& b, L l) { put<u32>(b, l.data(".livepatch.depends") + 8, 4); },
       [](L l) { return fmt::format("{}: note type 0x4 is not NT_GNU_BUILD_ID (0x3)", l.desc(".livepatch.depends")); }},
      {"NoteWrongName", [](Bytes& b, L l) { b[l.data(".livepatch.object_depends") + 12 + 2] = 'X'; },
       [](L l) { return fmt::format("{}: note name 'GNX' is not 'GNU'", l.desc(".livepatch.object_depends")); }},
      {"BuildIdWrongType", [](Bytes& b, L l) { put<u32>(b, l.data(".note.gnu.build-id") + 8, 1); },
       [](L l) { return fmt::format("{}: note type 0x1 is not NT_GNU_BUILD_ID (0x3)", l.desc(".note.gnu.build-id")); }},
      {"BuildIdEmpty",
       [](Bytes& b, L l) {
         put<u32>(b, l.data(".note.gnu.build-id") + 4, 0);
         put<u64>(b, l.shdr_offset(".note.gnu.build-id") + SH(sh_size), 16);
       },
       [](L l) { return fmt::format("{}: build-id length 0x0 is not in [0x1, 0x40]", l.desc(".note.gnu.build-id")); }},
      {"DependsNobits", [](Bytes& b, L l) { put<u32>(b, l.shdr_offset(".livepatch.depends") + SH(sh_type), SHT_NOBITS); },
       [](L l) {
         return fmt::format("{}: sh_type 0x8 is not SHT_NOTE (0x7) or SHT_PROGBITS (0x1)", l.desc(".livepatch.depends"));
       }},
      // ---- required sections
      {"MissingFuncs",
       [](Bytes& b, L l) {
         rename_as(b, l, ".livepatch.funcs", ".comment");
         rename_as(b, l, ".livepatch.hooks.load", ".comment");
         rename_as(b, l, ".livepatch.hooks.preapply", ".comment");
       },
       [](L) { return std::string("missing section '.livepatch.funcs' (and no hooks)"); }},
      {"MissingDepends", [](Bytes& b, L l) { rename_as(b, l, ".livepatch.depends", ".comment"); },
       [](L) { return std::string("missing section '.livepatch.depends'"); }},
      {"MissingObjectDepends", [](Bytes& b, L l) { rename_as(b, l, ".livepatch.object_depends", ".comment"); },
       [](L) { return std::string("missing section '.livepatch.object_depends'"); }},
      {"MissingBuildId", [](Bytes& b, L l) { rename_as(b, l, ".note.gnu.build-id", ".comment"); },
       [](L) { return std::string("missing section '.note.gnu.build-id' (link the payload with --build-id)"); }},
      {"DuplicateSpecialSection", [](Bytes& b, L l) { rename_as(b, l, ".livepatch.object_depends", ".livepatch.depends"); },
       [](L l) {
         return fmt::format("section [index {}] '.livepatch.depends': duplicate section name (also {})",
                            l.index(".livepatch.object_depends"), l.desc(".livepatch.depends"));
       }},
      // ---- payload sections
      {"WritableAndExecutable",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".text.fixed_hello") + SH(sh_flags), SHF_ALLOC | SHF_EXECINSTR | SHF_WRITE); },
       [](L l) {
         return fmt::format("{}: SHF_WRITE and SHF_EXECINSTR both set (a payload section is never writable and "
                            "executable)",
                            l.desc(".text.fixed_hello"));
       }},
      {"ThreadLocal",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".data.helper_global") + SH(sh_flags), SHF_ALLOC | SHF_WRITE | SHF_TLS); },
       [](L l) {
         return fmt::format("{}: thread-local sections (SHF_TLS) are not supported in a payload: a payload cannot add "
                            "thread-local variables to a running process",
                            l.desc(".data.helper_global"));
       }},
      {"HugeBss", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".bss") + SH(sh_size), 1ull << 40); },
       [](L l) {
         return fmt::format("{}: sh_size 0x10000000000 is over the limit for SHT_NOBITS (0x4000000)", l.desc(".bss"));
       }},
      // ---- .livepatch.funcs
      {"FuncsSizeNotMultiple",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.funcs") + SH(sh_size), l.secsize(".livepatch.funcs") + 8); },
       [](L l) {
         return fmt::format("{}: sh_size 0x{:x} is not a multiple of 104 (sizeof(struct livepatch_func))",
                            l.desc(".livepatch.funcs"), l.secsize(".livepatch.funcs") + 8);
       }},
      {"FuncsSymbolPastEnd",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.funcs") + SH(sh_size), l.secsize(".livepatch.funcs") - 8); },
       [](L l) {
         // The last entry's symbol (hotsplice_func_N) no longer fits in the section.
         const ElfSymbol* last = nullptr;
         for (const ElfSymbol& s : l.syms)
           if (s.st_shndx == l.index(".livepatch.funcs") && s.type() == STT_OBJECT && (!last || s.st_value > last->st_value))
             last = &s;
         return fmt::format("{}: symbol [index {}] '{}': st_value 0x{:x} + st_size 0x68 is past the end of {} (0x{:x})",
                            l.desc(".symtab"), last->index, last->name, last->st_value, l.desc(".livepatch.funcs"),
                            l.secsize(".livepatch.funcs") - 8);
       }},
      {"FuncsNotAlloc", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.funcs") + SH(sh_flags), SHF_WRITE); },
       [](L l) { return fmt::format("{}: SHF_ALLOC is not set", l.desc(".livepatch.funcs")); }},
      {"RelocNotAbs64", [](Bytes& b, L l) { set_reloc_type(b, l, l.reloc(kHello, 0), R_X86_64_PC32); },
       [](L l) {
         return fmt::format("{}: relocation [index {}] at r_offset 0x{:x}: type R_X86_64_PC32 (0x2) is not R_X86_64_64",
                            l.rela_desc(), l.reloc(kHello, 0), l.fi(kHello) * kFuncSize);
       }},
      {"RelocWrongField",
       [](Bytes& b, L l) { put<u64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_offset), l.fi(kHello) * kFuncSize + 24); },
       [](L l) {
         return fmt::format("{}: relocation [index {}] at r_offset 0x{:x}: offset 0x18 in function [index {}] is not "
                            "the name (0x0), new_addr (0x8) or old_addr (0x10) field",
                            l.rela_desc(), l.reloc(kHello, 0), l.fi(kHello) * kFuncSize + 24, l.fi(kHello));
       }},
      {"RelocTwiceSameField",
       [](Bytes& b, L l) { put<u64>(b, l.relaoff(l.reloc(kHello, 8)) + RA(r_offset), l.fi(kHello) * kFuncSize); },
       [](L l) {
         const size_t a = l.reloc(kHello, 0), c = l.reloc(kHello, 8);
         return fmt::format("{}: relocation [index {}]: a second relocation at r_offset 0x{:x} (the first is {}: "
                            "relocation [index {}])",
                            l.rela_desc(), std::max(a, c), l.fi(kHello) * kFuncSize, l.rela_desc(), std::min(a, c));
       }},
      {"NameMissing",
       [](Bytes& b, L l) { put<u64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_offset), l.fi(kHello) * kFuncSize + 16); },
       [](L l) {
         return fmt::format("function [index {}]: name is not set (no R_X86_64_64 relocation at offset 0x{:x})",
                            l.fi(kHello), l.fi(kHello) * kFuncSize);
       }},
      {"NameOffsetOutOfBounds", [](Bytes& b, L l) { put<i64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_addend), 0x1000); },
       [](L l) {
         return fmt::format("function [index {}]: name offset 0x1000 is past the end of {} (0x{:x})", l.fi(kHello),
                            l.desc(".rodata.str1.1"), l.secsize(".rodata.str1.1"));
       }},
      {"NameOffsetNegative", [](Bytes& b, L l) { put<i64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_addend), -8); },
       [](L l) {
         return fmt::format("function [index {}]: name offset -0x8 is before the start of {}", l.fi(kHello),
                            l.desc(".rodata.str1.1"));
       }},
      {"NameUnterminated",
       [](Bytes& b, L l) { b[l.data(".rodata.str1.1") + l.secsize(".rodata.str1.1") - 1] = 'x'; },
       [](L l) {
         // The function whose name is the last string of the section.
         std::string last;
         u64 best = 0;
         for (const auto& [n, off] : l.name_off)
           if (last.empty() || off > best) last = n, best = off;
         return fmt::format("function [index {}]: name at {}+0x{:x} is not NUL-terminated", l.fi(last),
                            l.desc(".rodata.str1.1"), best);
       }},
      {"NameEmpty",
       [](Bytes& b, L l) {
         put<i64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_addend), static_cast<i64>(l.name_off.at(kHello) + 5));
       },
       [](L l) { return fmt::format("function [index {}]: name is empty", l.fi(kHello)); }},
      {"NameUndefinedSymbol",
       [](Bytes& b, L l) { set_reloc_sym(b, l, l.reloc(kHello, 0), l.sym.at("_GLOBAL_OFFSET_TABLE_")); },
       [](L l) {
         return fmt::format("function [index {}]: name refers to undefined symbol '_GLOBAL_OFFSET_TABLE_'",
                            l.fi(kHello));
       }},
      {"NameNotAllocated",
       [](Bytes& b, L l) {
         set_reloc_sym(b, l, l.reloc(kHello, 0), l.section_sym.at(l.index(".comment")));
         put<i64>(b, l.relaoff(l.reloc(kHello, 0)) + RA(r_addend), 0);
       },
       [](L l) {
         return fmt::format("function [index {}]: name points into {}, which is not allocated (no SHF_ALLOC)",
                            l.fi(kHello), l.desc(".comment"));
       }},
      {"NameControlCharacter",
       [](Bytes& b, L l) { b[l.data(".rodata.str1.1") + l.name_off.at(kHello) + 1] = 0x1b; },
       [](L l) {
         return fmt::format("function [index {}]: name 'h\\x1bllo' contains control character 0x1b", l.fi(kHello));
       }},
      {"DuplicateName",
       [](Bytes& b, L l) {
         put<i64>(b, l.relaoff(l.reloc(kOther, 0)) + RA(r_addend), static_cast<i64>(l.name_off.at(kHello)));
       },
       [](L l) {
         return fmt::format("function [index {}] 'hello': duplicate of function [index {}]",
                            std::max(l.fi(kHello), l.fi(kOther)), std::min(l.fi(kHello), l.fi(kOther)));
       }},
      {"FuncVersion", [](Bytes& b, L l) { b[l.fn(kHello) + 32] = 1; },
       [](L l) { return fmt::format("function [index {}] 'hello': version 0x1 is not 0x2", l.fi(kHello)); }},
      {"PadNonZero", [](Bytes& b, L l) { b[l.fn(kHello) + 33 + 5] = 1; },
       [](L l) { return fmt::format("function [index {}] 'hello': _pad[5] is 0x1, expected 0x0", l.fi(kHello)); }},
      {"NewAddrNotExecutable",
       [](Bytes& b, L l) { set_reloc_sym(b, l, l.reloc(kHello, 8), l.sym.at("helper_global")); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': new_addr 'helper_global' points into {}, which is not "
                            "executable",
                            l.fi(kHello), l.desc(".data.helper_global"));
       }},
      {"NewAddrUndefined",
       [](Bytes& b, L l) { set_reloc_sym(b, l, l.reloc(kHello, 8), l.sym.at("_GLOBAL_OFFSET_TABLE_")); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': new_addr refers to undefined symbol '_GLOBAL_OFFSET_TABLE_'",
                            l.fi(kHello));
       }},
      {"NewAddrPastSection", [](Bytes& b, L l) { put<i64>(b, l.relaoff(l.reloc(kHello, 8)) + RA(r_addend), 0x40); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': new_addr offset 0x40 is past the end of {} (0x{:x})",
                            l.fi(kHello), l.desc(".text.fixed_hello"), l.secsize(".text.fixed_hello"));
       }},
      {"NewAddrLiteral", [](Bytes& b, L l) { put<u64>(b, l.fn(kNop) + 8, 0x1234); },
       [](L l) {
         return fmt::format("function [index {}] 'debug_log,2': new_addr is 0x1234 without a relocation (expected a "
                            "pointer into the payload)",
                            l.fi(kNop));
       }},
      {"NewSizePastFunction", [](Bytes& b, L l) { put<u32>(b, l.fn(kHello) + 24, 0x100); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': new_size 0x100 at offset 0x0 is past the end of {} (0x{:x})",
                            l.fi(kHello), l.desc(".text.fixed_hello"), l.secsize(".text.fixed_hello"));
       }},
      {"OldAddrDefinedInPayload",
       [](Bytes& b, L l) { put<u64>(b, l.relaoff(l.reloc(kHello, 8)) + RA(r_offset), l.fi(kHello) * kFuncSize + 16); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': old_addr refers to 'fixed_hello', defined in the payload "
                            "(expected a symbol of the target)",
                            l.fi(kHello));
       }},
      {"OldSizeZero", [](Bytes& b, L l) { put<u32>(b, l.fn(kOther) + 28, 0); },
       [](L l) { return fmt::format("function [index {}] 'main.c#other': old_size is 0", l.fi(kOther)); }},
      {"OldSizeTooSmall", [](Bytes& b, L l) { put<u32>(b, l.fn(kHello) + 28, 3); },
       [](L l) {
         return fmt::format("function [index {}] 'hello': old_size 0x3 is less than 0x5 (the size of a jmp rel32)",
                            l.fi(kHello));
       }},
      {"NopNewSizeZero", [](Bytes& b, L l) { put<u32>(b, l.fn(kNop) + 24, 0); },
       [](L l) {
         return fmt::format("function [index {}] 'debug_log,2': new_addr is 0 (NOP out) but new_size is 0", l.fi(kNop));
       }},
      {"NopLargerThanOld", [](Bytes& b, L l) { put<u32>(b, l.fn(kNop) + 24, 0x40); },
       [](L l) {
         return fmt::format("function [index {}] 'debug_log,2': NOP-out new_size 0x40 is greater than old_size 0x{:x}",
                            l.fi(kNop), test::kOldSize);
       }},
      {"ExpectLenZero", [](Bytes& b, L l) { b[l.fn(kOther) + 72] = 0x01; },
       [](L l) {
         return fmt::format("function [index {}] 'main.c#other': expect.len 0x0 is not in [0x1, 0x1f]", l.fi(kOther));
       }},
      {"ExpectRsv", [](Bytes& b, L l) { b[l.fn(kOther) + 72] |= 0x40; },
       [](L l) { return fmt::format("function [index {}] 'main.c#other': expect.rsv 0x1 is not 0x0", l.fi(kOther)); }},
      {"ExpectLongerThanFunction",
       [](Bytes& b, L l) {
         put<u32>(b, l.fn(kOther) + 28, 8);
         b[l.fn(kOther) + 72] = 1 | (10 << 1);
       },
       [](L l) {
         return fmt::format("function [index {}] 'main.c#other': expect.len 0xa is greater than old_size 0x8",
                            l.fi(kOther));
       }},
      // ---- hooks
      {"HookSingleSize", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.hooks.preapply") + SH(sh_size), 0x10); },
       [](L l) {
         return fmt::format("{}: sh_size 0x10 is not 0x8 (one function pointer)", l.desc(".livepatch.hooks.preapply"));
       }},
      {"HookArraySize", [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.hooks.load") + SH(sh_size), 0xc); },
       [](L l) {
         return fmt::format("{}: sh_size 0xc is not a multiple of 0x8 (a function pointer)",
                            l.desc(".livepatch.hooks.load"));
       }},
      {"HookEntryWithoutRelocation",
       [](Bytes& b, L l) { put<u64>(b, l.shdr_offset(".livepatch.hooks.load") + SH(sh_size), 0x10); },
       [](L l) {
         return fmt::format("{}: entry [index 1] at offset 0x8 has no R_X86_64_64 relocation",
                            l.desc(".livepatch.hooks.load"));
       }},
      {"HookNotExecutable",
       [](Bytes& b, L l) {
         const u64 off = l.data(".rela.livepatch.hooks.load");
         put<u64>(b, off + RA(r_info), ELF64_R_INFO(l.sym.at("helper_global"), R_X86_64_64));
       },
       [](L l) {
         return fmt::format("{}: entry [index 0] 'helper_global' points into {}, which is not executable",
                            l.desc(".livepatch.hooks.load"), l.desc(".data.helper_global"));
       }},
      {"HookUnknown",
       [](Bytes& b, L l) { b[l.sh[l.eh.e_shstrndx].sh_offset + l.sh[l.index(".livepatch.hooks.load")].sh_name + 17] = 'L'; },
       [](L l) {
         return fmt::format("section [index {}] '.livepatch.hooks.Load': unknown hooks section (known: load, unload, "
                            "preapply, apply, postapply, prerevert, revert, postrevert)",
                            l.index(".livepatch.hooks.load"));
       }},
      // ---- .modinfo
      {"ModinfoNoEquals",
       [](Bytes& b, L l) { b[l.data(".modinfo") + cve_entry(b, l) + 3] = ':'; },
       [](L l) {
         return fmt::format("{}: entry 'cve:CVE-2026-0001' at offset 0x{:x} has no '='", l.desc(".modinfo"),
                            cve_entry(l.bytes, l));
       }},
      {"ModinfoEmptyKey",
       [](Bytes& b, L l) { b[l.data(".modinfo") + cve_entry(b, l)] = '='; },
       [](L l) {
         return fmt::format("{}: entry '=ve=CVE-2026-0001' at offset 0x{:x} has an empty key", l.desc(".modinfo"),
                            cve_entry(l.bytes, l));
       }},
      {"ModinfoControlCharacter",
       [](Bytes& b, L l) { b[l.data(".modinfo") + cve_entry(b, l) + 5] = 0x1b; },
       [](L l) {
         return fmt::format("{}: entry at offset 0x{:x} contains control character 0x1b", l.desc(".modinfo"),
                            cve_entry(l.bytes, l));
       }},
      {"ModinfoUnterminated", [](Bytes& b, L l) { b[l.data(".modinfo") + l.secsize(".modinfo") - 1] = 'x'; },
       [](L l) { return fmt::format("{}: last entry is not NUL-terminated", l.desc(".modinfo")); }},
  };
}

class Malformed : public ::testing::TestWithParam<Case> {};

TEST_P(Malformed, ExactMessage) {
  const Layout& l = layout();
  ASSERT_FALSE(l.bytes.empty());
  Bytes b = l.bytes;
  GetParam().mutate(b, l);
  const std::string path = scratch().file(fmt::format("bad-{}.lp", GetParam().name));
  test::write_bytes(path, b);
  auto p = Payload::open(path);
  ASSERT_FALSE(p.has_value()) << "accepted a malformed payload";
  EXPECT_EQ(p.error().kind(), ErrorKind::BadPayload);
  EXPECT_EQ(p.error().message(), path + ": " + GetParam().message(l));
}

INSTANTIATE_TEST_SUITE_P(Payload, Malformed, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) { return std::string(param_info.param.name); });

// ---- the good payload

const FuncSpec* find_func(const Payload& p, std::string_view name) {
  for (const FuncSpec& f : p.funcs)
    if (f.name == name) return &f;
  return nullptr;
}

TEST(Payload, ParsesGoodPayload) {
  const Layout& l = layout();
  auto p = Payload::open(l.path);
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_EQ(p->file, l.path);
  ASSERT_EQ(p->funcs.size(), 3u);
  for (size_t i = 0; i < p->funcs.size(); ++i) EXPECT_EQ(p->funcs[i].index, i);

  const FuncSpec* hello = find_func(*p, "hello");
  ASSERT_NE(hello, nullptr);
  ASSERT_TRUE(hello->new_ref.has_value());
  EXPECT_EQ(hello->new_ref->display, "fixed_hello");
  EXPECT_EQ(hello->new_ref->sym_index, l.section_sym.at(l.index(".text.fixed_hello")));  // gcc: section symbol + 0
  EXPECT_EQ(hello->new_ref->addend, 0);
  EXPECT_FALSE(hello->old_ref.has_value());
  EXPECT_EQ(hello->old_addr_abs, 0u);
  EXPECT_EQ(hello->old_size, test::kOldSize);
  EXPECT_EQ(hello->new_size, 0u);
  EXPECT_TRUE(hello->expect.empty());

  const FuncSpec* other = find_func(*p, "main.c#other");
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->new_ref.has_value());
  EXPECT_EQ(other->new_ref->display, "fixed_other");
  EXPECT_EQ(other->expect, (Bytes{0x55, 0x48, 0x89, 0xe5}));

  const FuncSpec* nop = find_func(*p, "debug_log,2");
  ASSERT_NE(nop, nullptr);
  EXPECT_FALSE(nop->new_ref.has_value());
  EXPECT_EQ(nop->new_size, 5u);
  EXPECT_EQ(nop->old_size, test::kOldSize);

  EXPECT_EQ(p->depends, Bytes(20, test::kDependsFill));
  EXPECT_EQ(p->object_depends, Bytes(20, test::kObjectDependsFill));
  ASSERT_EQ(p->build_id.size(), 20u);  // sha1
  const ByteView own = *p->elf.build_id();
  EXPECT_EQ(p->build_id, Bytes(own.begin(), own.end()));
  EXPECT_NE(p->build_id, p->depends);

  using KV = std::pair<std::string, std::string>;
  EXPECT_EQ(p->modinfo, (std::vector<KV>{{"cve", "CVE-2026-0001"}, {"description", "fix hello"}}));

  ASSERT_EQ(p->load_hooks.size(), 1u);
  EXPECT_EQ(p->load_hooks[0].display, "on_load");
  EXPECT_TRUE(p->unload_hooks.empty());
  ASSERT_TRUE(p->preapply.has_value());
  EXPECT_EQ(p->preapply->display, "pre");
  EXPECT_FALSE(p->apply.has_value());
  EXPECT_FALSE(p->postapply.has_value());
  EXPECT_FALSE(p->prerevert.has_value());
  EXPECT_FALSE(p->revert.has_value());
  EXPECT_FALSE(p->postrevert.has_value());
}

TEST(Payload, ParseKeepsFileNameAsContext) {
  const Layout& l = layout();
  Bytes b = l.bytes;
  b[l.fn(kHello) + 32] = 7;
  auto elf = ElfFile::create(b);
  ASSERT_TRUE(elf.has_value());
  auto p = Payload::parse(std::move(*elf), "fix.lp");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message(), fmt::format("fix.lp: function [index {}] 'hello': version 0x7 is not 0x2", l.fi(kHello)));
}

TEST(Payload, DependsNotesMayBeProgbits) {
  const Layout& l = layout();
  Bytes b = l.bytes;
  put<u32>(b, l.shdr_offset(".livepatch.depends") + SH(sh_type), SHT_PROGBITS);
  put<u32>(b, l.shdr_offset(".livepatch.object_depends") + SH(sh_type), SHT_PROGBITS);
  auto elf = ElfFile::create(b);
  ASSERT_TRUE(elf.has_value());
  auto p = Payload::parse(std::move(*elf), "fix.lp");
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_EQ(p->depends, Bytes(20, test::kDependsFill));
  EXPECT_EQ(p->object_depends, Bytes(20, test::kObjectDependsFill));
}

TEST(Payload, LiteralOldAddr) {
  const Layout& l = layout();
  Bytes b = l.bytes;
  put<u64>(b, l.fn(kHello) + 16, 0x401000);
  auto elf = ElfFile::create(b);
  ASSERT_TRUE(elf.has_value());
  auto p = Payload::parse(std::move(*elf), "fix.lp");
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_EQ(p->funcs[l.fi(kHello)].old_addr_abs, 0x401000u);
}

TEST(Payload, HooksOnlyPayloadNeedsNoFuncs) {
  const Layout& l = layout();
  Bytes b = l.bytes;
  rename_as(b, l, ".livepatch.funcs", ".comment");
  auto elf = ElfFile::create(b);
  ASSERT_TRUE(elf.has_value());
  auto p = Payload::parse(std::move(*elf), "hooks.lp");
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_TRUE(p->funcs.empty());
  EXPECT_EQ(p->load_hooks.size(), 1u);
}

TEST(Payload, BuiltWithoutFunctionsOrHooks) {
  TempDir dir;
  const std::string lp = test::build_payload(dir, R"(#include <hotsplice/livepatch.h>
HOTSPLICE_INFO("cve", "none");
)");
  ASSERT_FALSE(lp.empty());
  auto p = Payload::open(lp);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().kind(), ErrorKind::BadPayload);
  EXPECT_EQ(p.error().message(), lp + ": missing section '.livepatch.funcs' (and no hooks)");
}

TEST(Payload, BuiltWithAllHookKinds) {
  TempDir dir;
  const std::string lp = test::build_payload(dir, R"(#include <hotsplice/livepatch.h>
extern void target_reinit(void);
static void l1(void) {}
static void l2(void) {}
static void u1(void) {}
static int pre(void *p) { (void)p; return 0; }
static int act(void *p) { (void)p; return 0; }
static void post(void *p) { (void)p; }
HOTSPLICE_LOAD_HOOK(l1);
HOTSPLICE_LOAD_HOOK(l2);
HOTSPLICE_LOAD_HOOK(target_reinit);
HOTSPLICE_UNLOAD_HOOK(u1);
HOTSPLICE_PREAPPLY_HOOK(pre);
HOTSPLICE_APPLY_HOOK(act);
HOTSPLICE_POSTAPPLY_HOOK(post);
HOTSPLICE_PREREVERT_HOOK(pre);
HOTSPLICE_REVERT_HOOK(act);
HOTSPLICE_POSTREVERT_HOOK(post);
)");
  ASSERT_FALSE(lp.empty());
  auto p = Payload::open(lp);
  ASSERT_TRUE(p.has_value()) << p.error().message();
  EXPECT_TRUE(p->funcs.empty());
  std::vector<std::string> loads;
  for (const SymRef& r : p->load_hooks) loads.push_back(r.display);
  std::sort(loads.begin(), loads.end());
  EXPECT_EQ(loads, (std::vector<std::string>{"l1", "l2", "target_reinit"}));  // undefined: resolved at load
  ASSERT_EQ(p->unload_hooks.size(), 1u);
  EXPECT_EQ(p->unload_hooks[0].display, "u1");
  for (const auto* h : {&p->preapply, &p->apply, &p->postapply, &p->prerevert, &p->revert, &p->postrevert})
    EXPECT_TRUE(h->has_value());
  EXPECT_EQ(p->apply->display, "act");
  EXPECT_EQ(p->postrevert->display, "post");
}

TEST(Payload, BuiltWithCommonSymbol) {
  TempDir dir;
  const std::string src = R"(#include <hotsplice/livepatch.h>
int common_counter;
static int fixed(void) { return ++common_counter; }
HOTSPLICE_REPLACE("hello", fixed);
)";
  // -fcommon puts common_counter in SHN_COMMON, and `ld -r` keeps it there.
  const std::string c = dir.file("c.c"), o = dir.file("c.o"), lp = dir.file("c.lp");
  test::write_file(c, src);
  ASSERT_TRUE(test::run(fmt::format("gcc -O2 -fPIC -fcommon -I{}/include -c {} -o {}", HS_SOURCE_DIR, c, o)));
  ASSERT_TRUE(test::run(fmt::format("ld -r --build-id=sha1 {} -o {}", o, lp)));
  auto p = Payload::open(lp);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().kind(), ErrorKind::BadPayload);
  EXPECT_TRUE(p.error().message().ends_with(
      "'common_counter': st_shndx SHN_COMMON is not supported (compile with -fno-common)"))
      << p.error().message();
}

TEST(Payload, BuiltWithThreadLocalData) {
  TempDir dir;
  const std::string lp = test::build_payload(dir, R"(#include <hotsplice/livepatch.h>
static __thread int calls;
static int fixed(void) { return ++calls; }
HOTSPLICE_REPLACE("hello", fixed);
)");
  ASSERT_FALSE(lp.empty());
  auto p = Payload::open(lp);
  ASSERT_FALSE(p.has_value());
  EXPECT_TRUE(p.error().message().ends_with(
      "': thread-local sections (SHF_TLS) are not supported in a payload: a payload cannot add thread-local "
      "variables to a running process"))
      << p.error().message();
}

TEST(Payload, OpenMissingFile) {
  auto p = Payload::open("/nonexistent/fix.lp");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().kind(), ErrorKind::Io);
  EXPECT_EQ(p.error().message(), "/nonexistent/fix.lp: cannot open: No such file or directory");
}

}  // namespace
}  // namespace hs
