// The Linux livepatch ELF form in a payload (the kernel's "Livepatch module
// ELF format" document): symbols with st_shndx SHN_LIVEPATCH named
// ".klp.sym.<object>.<name>,<pos>", and the relocations that use them in
// SHT_RELA sections named ".klp.rela.<object>.<section>" flagged
// SHF_RELA_LIVEPATCH (and SHF_ALLOC), sh_info the section they apply to.
//
// parse_klp_form() checks every rule of that document on an untrusted
// payload and models what the loader needs: for each livepatch symbol a
// relocation uses, the object it names, the symbol name and the position.
// <object> is a file name: the target executable's, or a shared library's
// ("libc.so.6"); pos 0 means the name is unique in that object, N > 0 the
// N-th definition of that name (symbol table order, as `name,N`).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "support/error.h"

namespace hs {

inline constexpr std::string_view kKlpRelaPrefix = ".klp.rela.";
inline constexpr std::string_view kKlpSymbolPrefix = ".klp.sym.";

// A livepatch symbol as a .klp.rela section uses it.
struct KlpSymbol {
  std::string object;  // "klp_app", "libc.so.6"
  std::string name;    // "helper"
  u64 pos = 0;         // 0: unique; N: the N-th definition
  std::string written; // ".klp.sym.klp_app.helper,0", for messages
};

// A .klp.rela section.
struct KlpRelaSection {
  size_t index = 0;     // the SHT_RELA section
  size_t target = 0;    // sh_info: the section it applies to
  std::string object;   // <object> of its name
};

struct KlpForm {
  std::map<u32, KlpSymbol> symbols;  // symbol index -> what it names (used ones only)
  std::vector<KlpRelaSection> sections;
  bool empty() const { return sections.empty() && symbols.empty(); }
};

// Checks the livepatch form of a relocatable payload; `syms` is its .symtab.
// Refused (BadPayload, one line naming the section / relocation / symbol):
// - a section named .klp.rela.* that is not SHT_RELA, lacks SHF_RELA_LIVEPATCH
//   or SHF_ALLOC, applies to a section that is not allocated or is one of the
//   .livepatch.* sections, or whose name is not ".klp.rela.<object>." followed
//   by the name of the section it applies to; an SHF_RELA_LIVEPATCH section
//   not named .klp.rela.*; two with one name
// - a relocation in a .klp.rela section whose symbol is not SHN_LIVEPATCH, or
//   names another object than the section does
// - a SHN_LIVEPATCH symbol whose name is not ".klp.sym.<object>.<name>,<pos>"
//   (pos decimal, at most 9 digits)
// - a relocation in any other SHT_RELA section that uses a SHN_LIVEPATCH symbol
// - any SHT_RELA section that applies to a .klp.rela section (not loaded)
Result<KlpForm> parse_klp_form(const ElfFile& elf, const std::vector<ElfSymbol>& syms);

}  // namespace hs
