// The builder's knowledge of struct livepatch_func: the target binary a
// patch is built for, and filling in the new_size / old_size fields a patch
// source leaves at 0 (pass 3 of build_payload, see builder.h), with the
// checks that make a bad patch fail at build time rather than at load.
// Internal to src/builder.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arch/x86_64.h"
#include "builder/builder.h"
#include "elf/elf_file.h"
#include "elf/symbols.h"

namespace hs::builder_detail {

// The target object.
struct Target {
  std::string path;
  std::optional<ElfFile> elf;
  Bytes build_id;
  std::shared_ptr<ObjectSymbols> symbols;  // loaded on first use
  DebugSearch debug;                       // where a stripped target's debug file is

  Result<const ObjectSymbols*> syms() {
    if (!symbols) {
      symbols = HS_TRY_CTX(ObjectSymbols::load(*elf, 0, debug), fmt::format("target {}", path));
    }
    return symbols.get();
  }

  // The executable section holding [addr, addr + 1), if any.
  std::optional<size_t> exec_section_at(u64 addr) const {
    const auto& shdrs = elf->sections();
    for (size_t i = 1; i < shdrs.size(); ++i) {
      const Elf64_Shdr& s = shdrs[i];
      if (!(s.sh_flags & SHF_ALLOC) || !(s.sh_flags & SHF_EXECINSTR)) continue;
      if (addr >= s.sh_addr && addr - s.sh_addr < s.sh_size) return i;
    }
    return std::nullopt;
  }

  // True if the function at addr (in section sec) starts with endbr64.
  bool starts_with_endbr(size_t sec, u64 addr) const {
    const Elf64_Shdr& s = elf->sections()[sec];
    if (s.sh_type == SHT_NOBITS) return false;
    ByteView data = elf->section_data(sec);
    u64 off = addr - s.sh_addr;
    if (off > data.size()) return false;
    return x86_64::starts_with_endbr64(data.subspan(off));
  }
};

// Opens and checks the target binary: an executable or shared object with a
// build-id. Errors read "target PATH: reason".
Result<Target> open_target(const std::string& path);

// One compiled patch object.
struct PatchObject {
  std::string source;  // the patch source it was compiled from, for messages
  std::string path;    // the .o in the temp dir
  Bytes bytes;         // its contents, modified in place
  std::optional<ElfFile> elf;
};

// Global functions defined by any of the patch objects: name -> st_size.
using GlobalFuncs = std::map<std::string, u64, std::less<>>;

// Fills the zero sizes of the .livepatch.funcs section `funcs_index` of
// `obj` (in obj.bytes), checking each entry; `target` may be null when
// stacking without one. One BuiltFunc per entry is appended to `out`.
Status fill_section(PatchObject& obj, size_t funcs_index, Target* target, const GlobalFuncs& globals,
                    std::vector<BuiltFunc>& out);

}  // namespace hs::builder_detail
