// The symbols of one ELF object (an executable or shared library of a
// target) and the name forms a payload may use to pick one: plain names,
// "name,N", "file.c#name" and Linux's ".klp.sym.OBJ.name,N". Needs only the
// object's file (and, for a stripped one, its separate debug file), so the
// builder uses it on a target binary as the engine does on a mapped object.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "elf/debug_file.h"
#include "elf/elf_file.h"
#include "support/target_symbol.h"

namespace hs {

// The prefix of Linux livepatch's symbol form ".klp.sym.OBJ.name,N".
inline constexpr std::string_view kKlpSymPrefix = ".klp.sym.";

// Symbol lookups in one object, with its load bias applied.
class ObjectSymbols {
 public:
  // Builds from the object's file: .symtab if present, else the separate
  // debug file find_debug_file() finds as `search` says (it has a .symtab),
  // else .dynsym. `bias` is added to every st_value (except for STT_TLS
  // symbols, whose value is the offset in the object's TLS block).
  // `object_path`: the object's path in its process (see find_debug_file).
  static Result<std::shared_ptr<ObjectSymbols>> load(const ElfFile& elf, u64 bias, const DebugSearch& search,
                                                     std::string_view object_path = {});
  // With DebugSearch{}: /usr/lib/debug, then debuginfod.
  static Result<std::shared_ptr<ObjectSymbols>> load(const ElfFile& elf, u64 bias);
  // Looking for the debug file under `debug_root` only, never asking
  // debuginfod (tests).
  static Result<std::shared_ptr<ObjectSymbols>> load(const ElfFile& elf, u64 bias, const std::string& debug_root);

  // Lookup forms (name as written in a payload):
  //   "name"                      a global/weak definition; else a unique local;
  //                               several locals -> ambiguous error
  //   "name,N"                    the N-th (1-based, symbol table order) local or
  //                               global definition named `name` (Linux sympos)
  //   "file.c#name"               the local `name` that follows the STT_FILE
  //                               symbol "file.c" (basename match allowed)
  //   ".klp.sym.OBJ.name,N"       Linux livepatch form; OBJ is ignored here
  //                               (the caller picked the object), N as above, 0 = unique
  //   "ns::C::f(char const*)"     a C++ name demangled (anything with "::", '(',
  //                               '<' or a space): its full signature, without a
  //                               template's return type, or without the
  //                               parameters when that is unique ("ns::C::f");
  //                               see source_names.h
  // Only defined symbols (st_shndx != SHN_UNDEF) of type FUNC, OBJECT, NOTYPE,
  // TLS or GNU_IFUNC count. Errors (BadTarget) name the symbol and the object:
  //   "symbol 'x' not found in OBJ"
  //   "ambiguous symbol 'x' in OBJ: 2 local definitions (a.c, b.c), use 'x,N' or 'file.c#x'"
  Result<TargetSymbol> lookup(std::string_view name) const;
  // The `pos`-th definition named `name` (0: the only one), as "name,N" does;
  // messages name the symbol as `written` (".klp.sym.OBJ.name,N").
  Result<TargetSymbol> lookup_position(std::string_view name, u64 pos, std::string_view written) const {
    return lookup_nth(name, written, pos);
  }
  // A function to replace, named as a livepatch_func may name it: every form
  // of lookup(), and also, when no symbol has the name itself, its source
  // name: a C++ function by its unqualified or qualified name ("f" for
  // _Z1fi) and a function GCC renamed ("parse" for "parse.isra.0",
  // ".constprop.N", ".part.N"), where that is unambiguous. Never a cold part
  // ("parse.cold" is refused: it is no entry point). The result's `name` is
  // the symbol's own. Errors: ambiguous names list the candidates, unknown
  // ones the closest names the object has ("; closest: 'hello'").
  Result<TargetSymbol> lookup_function(std::string_view name) const;
  // The copies GCC made of the function named `symbol` (its own name):
  // "symbol.isra.N", ".constprop.N", ".part.N" (not cold parts), in name
  // order. Replacing `symbol` does not replace them.
  std::vector<std::string> copies_of(std::string_view symbol) const;
  // The cold parts GCC split out of the function named `symbol` (its own
  // name) starting at `entry`: "symbol.cold" / "symbol.cold.N", of the same
  // source file when the function is a local (all of them when that cannot
  // tell). A thread there is running that function.
  std::vector<RemoteRange> cold_parts(std::string_view symbol, RemoteAddr entry) const;
  // Only a global/weak definition by exact name; nullopt if none (no error).
  std::optional<TargetSymbol> lookup_global(std::string_view name) const;
  // The function symbol containing addr (for messages: "in function foo").
  std::optional<std::pair<std::string, TargetSymbol>> symbolize(RemoteAddr addr) const;

  const std::string& path() const { return path_; }
  // Empty, or why only the .dynsym was read and where the debug file was
  // looked for ("stripped: no .symtab, and no debug file: ...").
  const std::string& stripped() const { return stripped_; }
  // Where the symbols came from: "symtab", "debug file PATH" or "dynsym".
  const std::string& source() const { return source_; }

 private:
  struct Sym {
    std::string name;   // as in the table; the "@@VERSION" of a default version stripped
    u64 addr = 0, size = 0;
    u8 bind = 0, type = 0;
    bool hidden_version = false;  // a non-default symbol version (name@VER / versym hidden)
    u32 file_index = ~0u;         // index into files_ of the preceding STT_FILE (locals only)
  };
  Result<TargetSymbol> lookup_plain(std::string_view name) const;
  Result<TargetSymbol> lookup_nth(std::string_view name, std::string_view written, u64 pos) const;
  Result<TargetSymbol> lookup_in_file(std::string_view file, std::string_view name, std::string_view written) const;
  Result<TargetSymbol> lookup_klp(std::string_view written) const;
  // Source names (source_names.cc): an index built on first use.
  struct SourceIndex;
  const SourceIndex& source_index() const;
  Result<TargetSymbol> lookup_demangled(std::string_view written) const;
  Result<TargetSymbol> lookup_source(std::string_view written, bool functions_only, bool clones,
                                     std::string_view not_found) const;
  std::string closest(std::string_view written, bool functions_only) const;
  std::pair<const u32*, const u32*> named(std::string_view name) const;  // definitions, in table order
  TargetSymbol target_symbol(const Sym& s) const;
  std::string files_of(const std::vector<const Sym*>& syms) const;

  // The object as "not found in" messages name it: its path, and when it
  // has no .symtab, that it is stripped and every place its debug file was
  // looked for (DebugFileSearch::describe).
  std::string where() const;

  std::string path_;
  std::string source_;
  std::string stripped_;           // why only .dynsym (or nothing) was read; empty if not stripped
  std::vector<Sym> syms_;          // definitions that count, in symbol table order
  std::vector<std::string> files_;
  std::vector<u32> by_name_;       // indexes into syms_, sorted by (name, index)
  std::vector<u32> by_addr_;       // FUNC / IFUNC symbols, sorted by (addr, non-local first)
  mutable std::once_flag source_once_;
  mutable std::shared_ptr<const SourceIndex> source_names_;  // demangled names and GCC clones, on first use
};

}  // namespace hs
