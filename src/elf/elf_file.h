// A hand-written, bounds-checked ELF64 (little-endian, x86-64) reader.
//
// It reads two kinds of files:
//  - payloads (ET_REL): untrusted input. Everything is validated in create():
//    header, section table, section names, string tables, symbol tables,
//    relocation sections, notes. After create() succeeds, the accessors below
//    cannot go out of bounds.
//  - target objects (ET_EXEC / ET_DYN) mapped in a process: read for their
//    build-id, program headers and symbols.
//
// Rules of the house: integers are compared before any pointer
// is formed (`off > size || len > size - off`), no misaligned struct pointer is
// ever formed (structs are copied out with memcpy), and every message names the
// object, the field, the bad value in hex and the limit, e.g.
//   section [index 3] '.rela.text': sh_offset 0x1000 + sh_size 0x30 is past the end of the file (0x800)
// The file name is added as context by the caller.
#pragma once

#include <elf.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "elf/notes.h"
#include "support/bytes.h"
#include "support/error.h"

namespace hs {

// One ELF note (from an SHT_NOTE section or a PT_NOTE segment).
struct ElfNote {
  u32 type = 0;
  std::string name;  // without the trailing NUL
  ByteView desc;     // view into the file's bytes
};

// Linux livepatch's ELF constants (its "Livepatch module ELF format"
// document; glibc's <elf.h> does not have them): the section index of a
// symbol livepatch resolves itself, and the flag of its relocation sections.
inline constexpr u16 kShnLivepatch = 0xff20;
inline constexpr u64 kShfRelaLivepatch = 0x00100000;

// A symbol, copied out and with its name resolved.
struct ElfSymbol {
  u32 index = 0;  // index in its symbol table
  std::string_view name;
  u64 st_value = 0;
  u64 st_size = 0;
  u8 st_info = 0;
  u8 st_other = 0;
  u16 st_shndx = 0;
  u8 bind() const { return ELF64_ST_BIND(st_info); }
  u8 type() const { return ELF64_ST_TYPE(st_info); }
  bool defined() const { return st_shndx != SHN_UNDEF; }
};

class ElfFile {
 public:
  // Validates `data` as an ELF64 x86-64 file. Takes ownership of the bytes.
  // For ET_REL (payloads) it also requires: no program headers (e_phnum 0),
  // and validates every SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_REL, SHT_NOTE
  // section (see elf_file.cc for the full list of checks).
  static Result<ElfFile> create(Bytes data);
  // Reads the file (whole) and calls create(); errors get "PATH: " context.
  static Result<ElfFile> open(const std::string& path);

  ByteView bytes() const { return *data_; }
  const Elf64_Ehdr& header() const { return ehdr_; }
  bool is_relocatable() const { return ehdr_.e_type == ET_REL; }

  // Section table (copied out). Index 0 is the null section.
  const std::vector<Elf64_Shdr>& sections() const { return shdrs_; }
  std::string_view section_name(size_t index) const;  // validated at create()
  // Index of the first section with that name.
  std::optional<size_t> find_section(std::string_view name) const;
  // The bytes of a section (empty for SHT_NOBITS). In bounds by construction.
  ByteView section_data(size_t index) const;
  // "section [index 3] '.livepatch.funcs'", for messages.
  std::string describe_section(size_t index) const;

  // Program headers (ET_EXEC / ET_DYN only; empty for ET_REL).
  const std::vector<Elf64_Phdr>& program_headers() const { return phdrs_; }

  // Symbols of a SHT_SYMTAB / SHT_DYNSYM section, names resolved through its
  // sh_link string table. Validated at create().
  Result<std::vector<ElfSymbol>> symbols(size_t symtab_index) const;
  // Index of the (only) SHT_SYMTAB section, or of SHT_DYNSYM if no SYMTAB.
  std::optional<size_t> symtab_index() const;
  std::optional<size_t> dynsym_index() const;

  // Relocations of a SHT_RELA section (copied out). Validated at create():
  // symbol index < number of symbols in sh_link's table.
  Result<std::vector<Elf64_Rela>> relocations(size_t rela_index) const;

  // Notes of a SHT_NOTE section; of every PT_NOTE segment for notes_all().
  Result<std::vector<ElfNote>> notes(size_t note_section_index) const;

  // The GNU build-id: the NT_GNU_BUILD_ID note named "GNU" of the
  // `.note.gnu.build-id` section, else of any note section / PT_NOTE segment.
  // Error (BadPayload) if absent or malformed.
  Result<ByteView> build_id() const;

  // For ET_DYN / ET_EXEC: the lowest PT_LOAD p_vaddr rounded down to page size
  // (the load bias of a mapping is map_start - this, for the segment with file
  // offset 0).
  u64 first_load_vaddr() const;

  // Path or "<memory>" as given to open(); used in messages.
  const std::string& path() const { return path_; }


  // A string from the file, made safe for a one-line message: bytes outside
  // printable ASCII become \xNN.
  static std::string printable(std::string_view s);

 private:
  ElfFile() = default;
  Status validate();
  Status validate_sections();
  Status validate_symtab(size_t index);
  Status validate_rela(size_t index);
  Status validate_group(size_t index);
  Status check_strtab(size_t index, std::string_view what) const;
  Status check_link(size_t index, std::string_view field, u64 link) const;
  // A table of fixed-size entries (`entry_type`, `entsize` bytes): sh_entsize
  // and sh_size agree with it.
  Status check_entries(size_t index, u64 entsize, std::string_view entry_type) const;

  std::shared_ptr<const Bytes> data_;
  std::string path_ = "<memory>";
  Elf64_Ehdr ehdr_{};
  std::vector<Elf64_Shdr> shdrs_;
  std::vector<Elf64_Phdr> phdrs_;
  bool names_valid_ = false;  // section names may be used in messages
};

}  // namespace hs
