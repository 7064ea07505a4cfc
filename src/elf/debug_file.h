// Finding the separate debug file of a stripped object, the places gdb and
// the distributions use, in this order: ROOT/.build-id/ab/cdef....debug for
// each debug directory ROOT (checked by build-id); the name the object's
// .gnu_debuglink gives, next to the object, in .debug/ beside it and under
// each ROOT + the object's directory (checked by the link's CRC, and by
// build-id when both have one); then debuginfod (elfutils' libdebuginfod,
// loaded on first use), only when DEBUGINFOD_URLS is set. Every place looked
// at is kept with why it was not used, so "not found" can list them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "elf/elf_file.h"

namespace hs {

// Where debug files are distributions' own: gdb's debug-file-directory.
inline constexpr std::string_view kDefaultDebugDir = "/usr/lib/debug";

// Where to look. Passed down from the command line (--debug-dir) to every
// symbol table of a target object; no global state.
struct DebugSearch {
  // Debug directories, in order; used exactly as given (the command line
  // appends kDefaultDebugDir: see with_default).
  std::vector<std::string> dirs{std::string(kDefaultDebugDir)};
  // Ask debuginfod (if DEBUGINFOD_URLS is set) when no local place has it.
  bool debuginfod = true;

  // `dirs` in the order given, then /usr/lib/debug unless it is among them.
  static DebugSearch with_default(std::vector<std::string> dirs);
};

// A usable debug file: this object's (build-id or CRC), with a .symtab.
struct DebugFile {
  std::string path;
  ElfFile elf;
  size_t symtab = 0;  // its SHT_SYMTAB section
};

// The outcome of a search: the file, or every place looked and why not.
struct DebugFileSearch {
  std::optional<DebugFile> found;
  // "PATH (why)" per place, in the order looked: by build-id, then by
  // .gnu_debuglink.
  std::vector<std::string> by_build_id, by_debuglink;
  std::string debuglink;   // the name .gnu_debuglink gives (printable), or ""
  bool has_build_id = false;
  std::string debuginfod;  // what debuginfod said ("" = not asked at all)

  // For "not found" messages: "stripped: no .symtab, and no debug file: by
  // build-id at ...; by its .gnu_debuglink 'x.debug' at ...; debuginfod ...".
  std::string describe() const;
};

// Looks for the debug file of `elf`. `object_path` is the object's path as
// its process knows it (MappedObject::path), whose directory the
// debug-dir + directory place uses; empty: elf.path(). Never fails: a place
// that cannot be used is recorded and the next one tried.
DebugFileSearch find_debug_file(const ElfFile& elf, std::string_view object_path, const DebugSearch& search);

// The CRC .gnu_debuglink carries: CRC-32 (polynomial 0xedb88320, as gdb and
// objcopy compute it) of the whole debug file.
u32 debuglink_crc32(ByteView data, u32 crc = 0);

// The name and CRC a .gnu_debuglink section holds (NUL-terminated name,
// padding to 4 bytes, then the CRC, little-endian); nullopt if it has none or
// it is malformed.
struct DebugLink {
  std::string name;
  u32 crc = 0;
};
std::optional<DebugLink> read_debuglink(const ElfFile& elf);

}  // namespace hs
