// Where everything is in a payload file, read with hotsplice's own reader:
// the tests that make malformed payloads by mutating a good one compute the
// offsets to poke, and the exact messages to expect, from this.
#pragma once

#include <elf.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "support/bytes.h"

namespace hs::test {

struct PayloadLayout {
  std::string path;
  Bytes bytes;                      // the file as read
  std::optional<ElfFile> elf;       // keeps the symbols' names alive
  Elf64_Ehdr eh{};
  std::vector<Elf64_Shdr> sh;
  std::vector<std::string> names;   // section names by index
  std::map<std::string, size_t> sec;          // section index by name (first one)
  std::vector<ElfSymbol> syms;                // of .symtab
  std::map<std::string, u32> sym;             // symbol index by name (named symbols)
  std::map<size_t, u32> section_sym;          // SECTION symbol index by section index
  std::vector<Elf64_Rela> funcs_relas;        // of .rela.livepatch.funcs
  std::map<std::string, size_t> func;         // livepatch_func index by name
  std::map<std::string, u64> name_off;        // each function's name string, offset in its section

  // Reads and parses `path`; a test failure if it is not a valid payload.
  explicit PayloadLayout(const std::string& path);

  size_t nsyms() const { return syms.size(); }
  // Section index by name; a test failure (and 0) if there is none.
  size_t index(const std::string& name) const;
  const Elf64_Shdr& section(const std::string& name) const { return sh[index(name)]; }
  std::string desc(const std::string& name) const;  // "section [index N] 'NAME'"
  u64 data(const std::string& name) const { return section(name).sh_offset; }
  u64 secsize(const std::string& name) const { return section(name).sh_size; }
  // File offset of a section header.
  u64 shdr_offset(size_t i) const { return eh.e_shoff + i * sizeof(Elf64_Shdr); }
  u64 shdr_offset(const std::string& name) const { return shdr_offset(index(name)); }
  u64 symoff(const std::string& name) const { return data(".symtab") + sym.at(name) * sizeof(Elf64_Sym); }
  // File offset of a livepatch_func entry, and its index.
  u64 fn(const std::string& name) const;
  size_t fi(const std::string& name) const { return func.at(name); }
  // Index in .rela.livepatch.funcs of the relocation at `field` of function `name`.
  size_t reloc(const std::string& name, u64 field) const;
  u64 relaoff(size_t k) const { return data(".rela.livepatch.funcs") + k * sizeof(Elf64_Rela); }
  std::string rela_desc() const { return desc(".rela.livepatch.funcs"); }
};

// Little-endian reads and writes at a file offset; a write past the end is
// a test failure.
template <class T>
void put(Bytes& b, u64 off, T v) {
  ASSERT_LE(off + sizeof(T), b.size()) << "write of " << sizeof(T) << " bytes at " << off;
  store_le<T>(b.data() + off, v);
}
template <class T>
T get(const Bytes& b, u64 off) {
  return load_le<T>(b.data() + off);
}

}  // namespace hs::test
