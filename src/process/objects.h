// The ELF objects mapped in a process (main executable, shared libraries),
// each with its build-id and a symbol table that answers the spec's lookups.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "elf/symbols.h"
#include "process/process.h"

namespace hs {

struct MappedObject {
  std::string path;           // as in /proc/PID/maps
  RemoteAddr bias;            // load bias: runtime address = st_value + bias
  RemoteRange span;           // lowest start .. highest end of its mappings
  std::vector<MapEntry> maps; // its mappings
  Bytes build_id;
  // The file on disk, as read by mapped_objects() (never null in its result).
  std::shared_ptr<const ElfFile> elf;
  // Where it was read from: <path>, else /proc/PID/root/<path> (the
  // target's mount namespace), else /proc/PID/map_files/<range> (a deleted
  // or replaced file); the very file that is mapped.
  std::string file;

  // Where its separate debug file is looked for if it is stripped
  // (--debug-dir; mapped_objects sets it).
  DebugSearch debug;

  // Its symbols, a stripped object's debug file included, found as `debug`
  // says (debuginfod too): for the object a payload patches. Loaded on first
  // use and cached.
  Result<std::shared_ptr<ObjectSymbols>> symbols() const;
  // Enough for another object's exports (ObjectSymbols::lookup_global): the
  // same, but a stripped object's debug file is not asked of debuginfod
  // (its .dynsym has the exports). symbols() once that has been loaded.
  Result<std::shared_ptr<ObjectSymbols>> global_symbols() const;
  mutable std::shared_ptr<ObjectSymbols> symbols_cache, global_symbols_cache;
};

// Every file-backed ELF object mapped in the process, main executable first,
// then in link-map order (read from the target's r_debug via DT_DEBUG when
// available, else in address order). Objects whose file cannot be read are
// skipped, as are non-ELF files, the vDSO and memfds. The build-id is read
// from the file on disk (empty if the object has none). Each object's debug
// files are looked for as `debug` says.
Result<std::vector<MappedObject>> mapped_objects(const Process& proc, const DebugSearch& debug = {});

// One entry of the target's link map (ld.so's list of loaded objects): the
// address of its `struct link_map` (what dlopen returns as a handle in
// glibc) and its l_ld, the runtime address of the object's dynamic section.
struct LinkMapEntry {
  RemoteAddr link_map;
  RemoteAddr l_ld;
};
// The link map, in list order, found through the executable's DT_DEBUG;
// empty if it cannot be found (static executable, r_debug not set up yet,
// unreadable).
std::vector<LinkMapEntry> link_map_entries(const Process& proc, const MappedObject& exe);

// The object whose build-id equals `build_id`, or BadTarget
// "no object with build-id X is mapped in PID N".
Result<const MappedObject*> find_object(const std::vector<MappedObject>& objs, ByteView build_id, pid_t pid);

}  // namespace hs
