// The ELF objects mapped in a process (main executable, shared libraries),
// each with its build-id and a symbol table that answers the spec's lookups.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "process/process.h"
#include "support/target_symbol.h"

namespace hs {

// Symbol lookups in one object, with its load bias applied.
class ObjectSymbols {
 public:
  // Builds from the object's file: .symtab if present, else the separate
  // debug file /usr/lib/debug/.build-id/xx/yyyy.debug if it exists (it has a
  // .symtab), else .dynsym. `bias` is added to every st_value.
  static Result<std::shared_ptr<ObjectSymbols>> load(const ElfFile& elf, u64 bias);

  // Lookup forms (name as written in a payload):
  //   "name"                      a global/weak definition; else a unique local;
  //                               several locals -> ambiguous error
  //   "name,N"                    the N-th (1-based, symbol table order) local or
  //                               global definition named `name` (Linux sympos)
  //   "file.c#name"               the local `name` that follows the STT_FILE
  //                               symbol "file.c" (basename match allowed)
  //   ".klp.sym.OBJ.name,N"       Linux livepatch form; OBJ is ignored here
  //                               (the caller picked the object), N as above, 0 = unique
  // Only defined symbols (st_shndx != SHN_UNDEF) of type FUNC, OBJECT, NOTYPE,
  // TLS or GNU_IFUNC count. Errors (BadTarget) name the symbol and the object.
  Result<TargetSymbol> lookup(std::string_view name) const;
  // Only a global/weak definition by exact name; nullopt if none (no error).
  std::optional<TargetSymbol> lookup_global(std::string_view name) const;
  // The function symbol containing addr (for messages: "in function foo").
  std::optional<std::pair<std::string, TargetSymbol>> symbolize(RemoteAddr addr) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  struct Sym {
    std::string name;
    u64 addr, size;
    u8 bind, type;
    u32 file_index;  // index into files_ of the preceding STT_FILE, or ~0u
  };
  std::vector<Sym> syms_;
  std::vector<std::string> files_;
  std::multimap<std::string, size_t, std::less<>> by_name_;
  std::vector<size_t> by_addr_;  // FUNC symbols sorted by addr
  friend class ObjectSymbolsBuilder;
};

struct MappedObject {
  std::string path;           // as in /proc/PID/maps
  RemoteAddr bias;            // load bias: runtime address = st_value + bias
  RemoteRange span;           // lowest start .. highest end of its mappings
  std::vector<MapEntry> maps; // its mappings
  Bytes build_id;
  std::shared_ptr<const ElfFile> elf;  // the file on disk (opened lazily by symbols())

  // Loaded on first use and cached.
  Result<std::shared_ptr<ObjectSymbols>> symbols() const;
  mutable std::shared_ptr<ObjectSymbols> symbols_cache;
};

// Every file-backed ELF object mapped in the process, main executable first,
// then in link-map order (read from the target's r_debug via DT_DEBUG when
// available, else in address order). Objects whose file cannot be read are
// skipped. The build-id is read from the file on disk.
Result<std::vector<MappedObject>> mapped_objects(const Process& proc);

// The object whose build-id equals `build_id`, or BadTarget
// "no object with build-id X is mapped in PID N".
Result<const MappedObject*> find_object(const std::vector<MappedObject>& objs, ByteView build_id, pid_t pid);

}  // namespace hs
