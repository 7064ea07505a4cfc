// The payload model: a validated ET_REL file plus what its livepatch
// sections say. Payload::parse() performs every check Xen's loader performs on
// the livepatch-specific parts (the ELF structure itself is checked by
// ElfFile::create()). Nothing here touches a process.
#pragma once

#include <hotsplice/livepatch.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "payload/klp.h"
#include "support/bytes.h"
#include "support/error.h"

namespace hs {

// The format of .livepatch.funcs and the hook sections, taken from the public
// header (include/hotsplice/livepatch.h, whose static_asserts pin it to Xen's
// payload version 2), so that the parser, the loader and the builder read and
// write the very struct patch authors compile.
inline constexpr size_t kFuncSize = sizeof(livepatch_func);
inline constexpr u64 kFuncNameOff = offsetof(livepatch_func, name);
inline constexpr u64 kFuncNewAddrOff = offsetof(livepatch_func, new_addr);
inline constexpr u64 kFuncOldAddrOff = offsetof(livepatch_func, old_addr);
inline constexpr u64 kFuncNewSizeOff = offsetof(livepatch_func, new_size);
inline constexpr u64 kFuncOldSizeOff = offsetof(livepatch_func, old_size);
inline constexpr u64 kFuncVersionOff = offsetof(livepatch_func, version);
inline constexpr u64 kFuncPadOff = offsetof(livepatch_func, _pad);
inline constexpr u64 kFuncPadLen = sizeof(livepatch_func::_pad);
inline constexpr u64 kFuncExpectOff = offsetof(livepatch_func, expect);
// struct livepatch_expectation: a byte of bit-fields (enabled:1, len:5,
// rsv:2, allocated from bit 0), then the expected bytes.
inline constexpr u64 kExpectDataOff = offsetof(livepatch_expectation, data);
inline constexpr u8 kPayloadVersion = LIVEPATCH_PAYLOAD_VERSION;
inline constexpr size_t kMaxExpectLen = LIVEPATCH_OPAQUE_SIZE;
// A hook section is an array of function pointers.
inline constexpr u64 kHookSlotSize = sizeof(livepatch_loadcall_t*);

// A reference to a place in the payload: symbol of the payload's symtab + addend
// (how `new_addr` / `old_addr` / hook pointers appear in an ET_REL file: an
// R_X86_64_64 relocation at that field).
struct SymRef {
  u32 sym_index = 0;   // in the payload's .symtab
  i64 addend = 0;
  std::string display; // "fixed_hello" or ".text.other+0x10", for messages and `info`
};

struct FuncSpec {
  size_t index = 0;           // position in .livepatch.funcs
  std::string name;           // as written: "hello", "hello,2", "file.c#hello"
  std::optional<SymRef> new_ref;  // nullopt: new_addr is 0 -> NOP out new_size bytes
  std::optional<SymRef> old_ref;  // old_addr given as a relocation (rare)
  u64 old_addr_abs = 0;       // old_addr given as a literal (non-zero) with no relocation
  u32 new_size = 0;
  u32 old_size = 0;
  Bytes expect;               // empty: no expectation
};

struct Payload {
  ElfFile elf;
  std::string file;           // path, for messages
  Bytes build_id;             // .note.gnu.build-id
  Bytes depends;              // .livepatch.depends
  Bytes object_depends;       // .livepatch.object_depends
  std::vector<FuncSpec> funcs;
  // Hooks: load/unload are arrays, the action hooks at most one each.
  std::vector<SymRef> load_hooks, unload_hooks;
  std::optional<SymRef> preapply, apply, postapply, prerevert, revert, postrevert;
  std::vector<std::pair<std::string, std::string>> modinfo;  // from .modinfo
  KlpForm klp;                // the Linux livepatch form: .klp.rela sections, SHN_LIVEPATCH symbols (klp.h)

  // Validates and models `elf`. Errors carry "FILE: " context.
  //
  // Checks (each its own message, naming section/function, value and limit):
  // - required sections present (.livepatch.funcs unless only hooks,
  //   .livepatch.depends, .livepatch.object_depends, .note.gnu.build-id);
  //   each note is a well-formed GNU build-id note
  // - .livepatch.funcs: sh_size a non-zero multiple of kFuncSize, not SHT_NOBITS;
  //   a .rela.livepatch.funcs whose relocations are R_X86_64_64 at the
  //   name/new_addr/old_addr fields only
  // - per function: name relocation present and pointing at a NUL-terminated
  //   string inside an allocated section; version == 2; _pad all zero;
  //   old_size != 0 (and >= 5 unless NOP-out, where new_size <= old_size and
  //   new_size != 0); new_addr points into an executable section (or is 0);
  //   expect.rsv == 0, 1 <= expect.len <= 31 when enabled; no duplicate names
  // - hooks sections: known names only, size a multiple of 8, single-pointer
  //   ones exactly 8; every slot has an R_X86_64_64 relocation to a function
  //   in an executable section of the payload, or to an undefined symbol
  //   (resolved at load)
  // - .modinfo: NUL-separated key=value strings, non-empty key, no control
  //   characters; sorted by key (stable)
  // - symbols: no SHN_COMMON, no st_shndx >= e_shnum other than ABS/UNDEF/XINDEX-free
  // - sections: no duplicate livepatch/build-id/modinfo section names; SHF_ALLOC
  //   sections are not compressed, not SHF_WRITE+SHF_EXECINSTR, not SHF_TLS,
  //   SHT_NOBITS at most 64 MiB
  // - names: at most 1024 bytes, no control characters
  // - the Linux livepatch form (.klp.rela sections, SHN_LIVEPATCH symbols):
  //   every rule of its document, see parse_klp_form() in klp.h
  // old_addr, when relocated, must name an undefined symbol (one of the target).
  static Result<Payload> parse(ElfFile elf, std::string file);
  static Result<Payload> open(const std::string& path);
};

}  // namespace hs
