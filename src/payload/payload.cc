// The payload model. ElfFile::create() has already checked the ELF structure
// (bounds, string tables, symbol and relocation indexes, notes); this file
// checks what the livepatch sections say: every check of Xen's payload loader
// (the special sections, distinct functions, sizes, version), and a bit more.
//
// How gcc and `ld -r` encode the pointers we read: a field of
// `struct livepatch_func` or a hook slot that points somewhere holds 0 in the
// section data, and an R_X86_64_64 relocation at that offset says where. The
// symbol is usually a SECTION symbol plus an addend (`.rodata.str1.1 + 7` for a
// name string, `.text.fixed + 0` for a static function), sometimes the
// function's own symbol (`fixed_other + 0`) or an undefined one.
#include "payload/payload.h"

#include "arch/x86_64.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <map>

namespace hs {
namespace {

constexpr u64 kMaxNameLen = 1024;     // longer names are rejected (Xen: KSYM_NAME_LEN)
constexpr u64 kMaxNobitsSize = 64ull << 20;

// The bit-fields of struct livepatch_expectation's first byte, as the
// compiler allocates them (from bit 0); checked against the header.
constexpr u8 kExpectEnabled = 0x01;
constexpr unsigned kExpectLenShift = 1;
constexpr u8 kExpectLenMask = 0x1f;
constexpr unsigned kExpectRsvShift = 6;
constexpr u8 first_byte(livepatch_expectation e) {
  return std::bit_cast<std::array<u8, sizeof(livepatch_expectation)>>(e)[0];
}
static_assert(first_byte({.enabled = 1, .len = 0, .rsv = 0, .data = {}}) == kExpectEnabled);
static_assert(first_byte({.enabled = 0, .len = kExpectLenMask, .rsv = 0, .data = {}}) ==
              kExpectLenMask << kExpectLenShift);
static_assert(first_byte({.enabled = 0, .len = 0, .rsv = 3, .data = {}}) == 3 << kExpectRsvShift);

constexpr std::string_view kFuncsName = ".livepatch.funcs";
constexpr std::string_view kDependsName = ".livepatch.depends";
constexpr std::string_view kObjectDependsName = ".livepatch.object_depends";
constexpr std::string_view kBuildIdName = ".note.gnu.build-id";
constexpr std::string_view kModinfoName = ".modinfo";
constexpr std::string_view kHooksPrefix = ".livepatch.hooks.";

template <class... Args>
std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args) {
  return fail(ErrorKind::BadPayload, f, std::forward<Args>(args)...);
}

std::string signed_hex(i64 v) {
  if (v < 0) return fmt::format("-0x{:x}", static_cast<u64>(0) - static_cast<u64>(v));
  return fmt::format("0x{:x}", static_cast<u64>(v));
}

// One R_X86_64_64 pointer found in a section: which relocation, where.
struct Pointer {
  Elf64_Rela rela{};
  std::string where;  // "section [index 20] '.rela.x': relocation [index 3]"
};

// A symbol + addend resolved to a place inside a section of the payload.
struct Place {
  size_t shndx = 0;
  u64 offset = 0;
};

class Parser {
 public:
  explicit Parser(Payload& p) : p_(p), elf_(p.elf) {}

  Status run() {
    if (!elf_.is_relocatable())
      return bad("e_type 0x{:x} is not ET_REL (0x1): a payload must be a relocatable object", elf_.header().e_type);
    HS_CHECK(load_symbols());
    HS_CHECK(check_sections());
    p_.klp = HS_TRY(parse_klp_form(elf_, syms_));
    p_.build_id = HS_TRY(note(kBuildIdName, " (link the payload with --build-id)"));
    p_.depends = HS_TRY(note(kDependsName, ""));
    p_.object_depends = HS_TRY(note(kObjectDependsName, ""));
    HS_CHECK(parse_hooks());
    HS_CHECK(parse_funcs());
    HS_CHECK(parse_modinfo());
    return {};
  }

 private:
  // -- symbols

  Status load_symbols() {
    std::optional<size_t> idx;
    for (size_t i = 1; i < elf_.sections().size(); ++i)
      if (elf_.sections()[i].sh_type == SHT_SYMTAB) idx = i;  // at most one: checked by ElfFile
    if (!idx) return bad("no symbol table (SHT_SYMTAB)");
    symtab_ = *idx;
    syms_ = HS_TRY(elf_.symbols(symtab_));
    // Symbol names are looked up in the target and end up in messages: a
    // name with a control character is no C name.
    for (const ElfSymbol& s : syms_) {
      for (unsigned char c : s.name)
        if (c < 0x20 || c == 0x7f)
          return bad("{}: symbol [index {}] '{}': name contains control character 0x{:x}",
                     elf_.describe_section(symtab_), s.index, ElfFile::printable(s.name), c);
    }
    // FUNC / OBJECT symbols by place, for display names; globals win.
    for (const ElfSymbol& s : syms_) {
      if (s.type() != STT_FUNC && s.type() != STT_OBJECT) continue;
      if (s.st_shndx == SHN_UNDEF || s.st_shndx >= elf_.sections().size() || s.name.empty()) continue;
      auto [it, inserted] = named_places_.try_emplace({s.st_shndx, s.st_value}, s.index);
      if (!inserted && s.bind() != STB_LOCAL && syms_[it->second].bind() == STB_LOCAL) it->second = s.index;
    }
    return {};
  }

  bool in_section(const ElfSymbol& s) const {
    return s.st_shndx != SHN_UNDEF && s.st_shndx < elf_.sections().size();
  }

  // "fixed_hello", ".text.other+0x10", "ext_fn", "ext_fn+0x4".
  std::string display(u32 sym_index, i64 addend) const {
    const ElfSymbol& s = syms_[sym_index];
    if (in_section(s)) {
      const u64 off = s.st_value + static_cast<u64>(addend);
      if (auto it = named_places_.find({s.st_shndx, off}); it != named_places_.end())
        return ElfFile::printable(syms_[it->second].name);
      if (s.type() == STT_SECTION || s.name.empty()) {
        const std::string sec = ElfFile::printable(elf_.section_name(s.st_shndx));
        const i64 total = static_cast<i64>(off);
        return total < 0 ? fmt::format("{}{}", sec, signed_hex(total)) : fmt::format("{}+0x{:x}", sec, off);
      }
    }
    const std::string name = ElfFile::printable(s.name);
    if (addend == 0) return name;
    return addend < 0 ? fmt::format("{}{}", name, signed_hex(addend)) : fmt::format("{}+0x{:x}", name, addend);
  }

  SymRef ref(const Elf64_Rela& r) const {
    const u32 sym = static_cast<u32>(ELF64_R_SYM(r.r_info));
    return SymRef{sym, r.r_addend, display(sym, r.r_addend)};
  }

  // Where symbol + addend lands in the payload. `what` is "function [index 0]: name";
  // `end_ok` accepts the offset one past the end (never for code or strings).
  Result<Place> place(const Elf64_Rela& r, std::string_view what) const {
    const ElfSymbol& s = syms_[ELF64_R_SYM(r.r_info)];
    if (s.st_shndx == SHN_UNDEF)
      return bad("{} refers to undefined symbol '{}'", what, ElfFile::printable(s.name));
    if (!in_section(s)) return bad("{} refers to absolute symbol '{}'", what, ElfFile::printable(s.name));
    const size_t shndx = s.st_shndx;
    const u64 size = elf_.sections()[shndx].sh_size;
    if (r.r_addend < 0 && static_cast<u64>(0) - static_cast<u64>(r.r_addend) > s.st_value)
      return bad("{} offset {} is before the start of {}", what,
                 signed_hex(static_cast<i64>(s.st_value + static_cast<u64>(r.r_addend))),
                 elf_.describe_section(shndx));
    const u64 off = s.st_value + static_cast<u64>(r.r_addend);
    if (off >= size)
      return bad("{} offset 0x{:x} is past the end of {} (0x{:x})", what, off, elf_.describe_section(shndx), size);
    return Place{shndx, off};
  }

  // A code pointer (new_addr, hook): defined in an executable section of the
  // payload. Undefined symbols only where `allow_undefined`.
  Status check_code_pointer(const Elf64_Rela& r, std::string_view what, bool allow_undefined) const {
    const ElfSymbol& s = syms_[ELF64_R_SYM(r.r_info)];
    if (s.st_shndx == SHN_UNDEF && allow_undefined) return {};
    const Place at = HS_TRY(place(r, what));
    const Elf64_Shdr& sh = elf_.sections()[at.shndx];
    if (!(sh.sh_flags & SHF_ALLOC) || !(sh.sh_flags & SHF_EXECINSTR))
      return bad("{} '{}' points into {}, which is not executable", what, display(ELF64_R_SYM(r.r_info), r.r_addend),
                 elf_.describe_section(at.shndx));
    return {};
  }

  // -- sections

  Status check_sections() {
    const auto& shdrs = elf_.sections();
    std::map<std::string_view, size_t> seen;
    for (size_t i = 1; i < shdrs.size(); ++i) {
      const Elf64_Shdr& sh = shdrs[i];
      const std::string what = elf_.describe_section(i);
      const std::string_view name = elf_.section_name(i);
      const bool special = name.starts_with(".livepatch.") || name == kBuildIdName || name == kModinfoName;
      if (special) {
        auto [it, inserted] = seen.emplace(name, i);
        if (!inserted) return bad("{}: duplicate section name (also {})", what, elf_.describe_section(it->second));
      }
      if (!(sh.sh_flags & SHF_ALLOC)) continue;
      if (sh.sh_flags & SHF_COMPRESSED) return bad("{}: SHF_ALLOC section is compressed (SHF_COMPRESSED)", what);
      if ((sh.sh_flags & SHF_WRITE) && (sh.sh_flags & SHF_EXECINSTR))
        return bad("{}: SHF_WRITE and SHF_EXECINSTR both set (a payload section is never writable and executable)",
                   what);
      if (sh.sh_flags & SHF_TLS)
        return bad("{}: thread-local sections (SHF_TLS) are not supported in a payload: a payload cannot add "
                   "thread-local variables to a running process",
                   what);
      if (sh.sh_type == SHT_NOBITS && sh.sh_size > kMaxNobitsSize)
        return bad("{}: sh_size 0x{:x} is over the limit for SHT_NOBITS (0x{:x})", what, sh.sh_size, kMaxNobitsSize);
    }
    return {};
  }

  Result<Bytes> note(std::string_view name, std::string_view hint) const {
    const auto idx = elf_.find_section(name);
    if (!idx) return bad("missing section '{}'{}", name, hint);
    const u32 type = elf_.sections()[*idx].sh_type;
    if (type != SHT_NOTE && type != SHT_PROGBITS)
      return bad("{}: sh_type 0x{:x} is not SHT_NOTE (0x7) or SHT_PROGBITS (0x1)", elf_.describe_section(*idx), type);
    return parse_build_id_note(elf_.section_data(*idx), elf_.describe_section(*idx));
  }

  // Every R_X86_64_64 pointer into section `target`, keyed by offset. Other
  // relocation types, offsets that are not a multiple of 8 or not accepted by
  // `field_ok`, and two relocations at one offset are errors.
  template <class FieldOk>
  Result<std::map<u64, Pointer>> pointers(size_t target, FieldOk field_ok) const {
    std::map<u64, Pointer> out;
    const auto& shdrs = elf_.sections();
    for (size_t i = 1; i < shdrs.size(); ++i) {
      if (shdrs[i].sh_type != SHT_RELA || shdrs[i].sh_info != target) continue;
      const auto relas = HS_TRY(elf_.relocations(i));
      for (size_t k = 0; k < relas.size(); ++k) {
        const Elf64_Rela& r = relas[k];
        const std::string where = fmt::format("{}: relocation [index {}]", elf_.describe_section(i), k);
        const u32 type = static_cast<u32>(ELF64_R_TYPE(r.r_info));
        if (type != R_X86_64_64)
          return bad("{} at r_offset 0x{:x}: type {} (0x{:x}) is not R_X86_64_64", where, r.r_offset,
                     x86_64::reloc_display_name(type), type);
        HS_CHECK(field_ok(r.r_offset, where));
        auto [it, inserted] = out.try_emplace(r.r_offset, Pointer{r, where});
        if (!inserted) return bad("{}: a second relocation at r_offset 0x{:x} (the first is {})", where, r.r_offset,
                                  it->second.where);
      }
    }
    return out;
  }

  // -- hooks

  Status parse_hooks() {
    struct Kind {
      std::string_view suffix;
      std::vector<SymRef>* array;
      std::optional<SymRef>* single;
    };
    const Kind kinds[] = {
        {"load", &p_.load_hooks, nullptr},      {"unload", &p_.unload_hooks, nullptr},
        {"preapply", nullptr, &p_.preapply},    {"apply", nullptr, &p_.apply},
        {"postapply", nullptr, &p_.postapply},  {"prerevert", nullptr, &p_.prerevert},
        {"revert", nullptr, &p_.revert},        {"postrevert", nullptr, &p_.postrevert},
    };
    for (size_t i = 1; i < elf_.sections().size(); ++i) {
      const std::string_view name = elf_.section_name(i);
      if (!name.starts_with(kHooksPrefix)) continue;
      has_hooks_ = true;
      const std::string what = elf_.describe_section(i);
      const Kind* kind = nullptr;
      for (const Kind& k : kinds)
        if (name.substr(kHooksPrefix.size()) == k.suffix) kind = &k;
      if (!kind)
        return bad("{}: unknown hooks section (known: load, unload, preapply, apply, postapply, prerevert, revert, "
                   "postrevert)",
                   what);
      const Elf64_Shdr& sh = elf_.sections()[i];
      if (sh.sh_type == SHT_NOBITS) return bad("{}: sh_type SHT_NOBITS, expected function pointers", what);
      if (kind->array && sh.sh_size % kHookSlotSize)
        return bad("{}: sh_size 0x{:x} is not a multiple of 0x{:x} (a function pointer)", what, sh.sh_size,
                   kHookSlotSize);
      if (kind->single && sh.sh_size != kHookSlotSize)
        return bad("{}: sh_size 0x{:x} is not 0x{:x} (one function pointer)", what, sh.sh_size, kHookSlotSize);
      const auto ptrs = HS_TRY(pointers(i, [](u64 off, const std::string& where) -> Status {
        if (off % kHookSlotSize)
          return bad("{}: r_offset 0x{:x} is not a multiple of 0x{:x}", where, off, kHookSlotSize);
        return {};
      }));
      for (u64 off = 0; off < sh.sh_size; off += kHookSlotSize) {
        const auto it = ptrs.find(off);
        if (it == ptrs.end())
          return bad("{}: entry [index {}] at offset 0x{:x} has no R_X86_64_64 relocation", what, off / kHookSlotSize,
                     off);
        HS_CHECK(check_code_pointer(it->second.rela, fmt::format("{}: entry [index {}]", what, off / kHookSlotSize),
                                    /*allow_undefined=*/true));
        if (kind->array)
          kind->array->push_back(ref(it->second.rela));
        else
          *kind->single = ref(it->second.rela);
      }
    }
    return {};
  }

  // -- .livepatch.funcs

  Status parse_funcs() {
    const auto idx = elf_.find_section(kFuncsName);
    if (!idx) {
      if (has_hooks_) return {};
      return bad("missing section '{}' (and no hooks)", kFuncsName);
    }
    const Elf64_Shdr& sh = elf_.sections()[*idx];
    const std::string what = elf_.describe_section(*idx);
    if (sh.sh_type == SHT_NOBITS) return bad("{}: sh_type SHT_NOBITS, expected struct livepatch_func entries", what);
    if (!(sh.sh_flags & SHF_ALLOC)) return bad("{}: SHF_ALLOC is not set", what);
    if (sh.sh_size == 0) return bad("{}: sh_size 0x0: no functions", what);
    if (sh.sh_size % kFuncSize)
      return bad("{}: sh_size 0x{:x} is not a multiple of {} (sizeof(struct livepatch_func))", what, sh.sh_size,
                 kFuncSize);
    const ByteView data = elf_.section_data(*idx);
    const auto ptrs = HS_TRY(pointers(*idx, [](u64 off, const std::string& where) -> Status {
      const u64 field = off % kFuncSize;
      if (field != kFuncNameOff && field != kFuncNewAddrOff && field != kFuncOldAddrOff)
        return bad("{} at r_offset 0x{:x}: offset 0x{:x} in function [index {}] is not the name (0x{:x}), new_addr "
                   "(0x{:x}) or old_addr (0x{:x}) field",
                   where, off, field, off / kFuncSize, kFuncNameOff, kFuncNewAddrOff, kFuncOldAddrOff);
      return {};
    }));
    const auto pointer_at = [&](u64 off) -> const Pointer* {
      const auto it = ptrs.find(off);
      return it == ptrs.end() ? nullptr : &it->second;
    };

    std::map<std::string, size_t, std::less<>> by_name;
    const size_t count = sh.sh_size / kFuncSize;
    for (size_t i = 0; i < count; ++i) {
      const u64 base = i * kFuncSize;
      const u8* f = data.data() + base;
      FuncSpec spec;
      spec.index = i;

      // name
      const Pointer* name_ptr = pointer_at(base + kFuncNameOff);
      if (!name_ptr)
        return bad("function [index {}]: name is not set (no R_X86_64_64 relocation at offset 0x{:x})", i,
                   base + kFuncNameOff);
      spec.name = HS_TRY(read_name(name_ptr->rela, i));
      const std::string label = fmt::format("function [index {}] '{}'", i, ElfFile::printable(spec.name));
      if (auto [it, inserted] = by_name.try_emplace(spec.name, i); !inserted)
        return bad("{}: duplicate of function [index {}]", label, it->second);

      // fixed fields
      const u8 version = f[kFuncVersionOff];
      if (version != kPayloadVersion) return bad("{}: version 0x{:x} is not 0x{:x}", label, version, kPayloadVersion);
      for (u64 j = 0; j < kFuncPadLen; ++j)
        if (f[kFuncPadOff + j] != 0) return bad("{}: _pad[{}] is 0x{:x}, expected 0x0", label, j, f[kFuncPadOff + j]);
      spec.new_size = load_le<u32>(f + kFuncNewSizeOff);
      spec.old_size = load_le<u32>(f + kFuncOldSizeOff);

      // new_addr: a function of the payload, or 0 to NOP out new_size bytes
      if (const Pointer* np = pointer_at(base + kFuncNewAddrOff)) {
        const std::string field = fmt::format("{}: new_addr", label);
        HS_CHECK(check_code_pointer(np->rela, field, /*allow_undefined=*/false));
        spec.new_ref = ref(np->rela);
        if (spec.new_size != 0) {
          const Place at = HS_TRY(place(np->rela, field));
          const u64 secsize = elf_.sections()[at.shndx].sh_size;
          if (spec.new_size > secsize - at.offset)
            return bad("{}: new_size 0x{:x} at offset 0x{:x} is past the end of {} (0x{:x})", label, spec.new_size,
                       at.offset, elf_.describe_section(at.shndx), secsize);
        }
      } else if (const u64 lit = load_le<u64>(f + kFuncNewAddrOff); lit != 0) {
        return bad("{}: new_addr is 0x{:x} without a relocation (expected a pointer into the payload)", label, lit);
      }

      // old_addr: usually 0 (resolve the name), else a literal or a symbol of the target
      if (const Pointer* op = pointer_at(base + kFuncOldAddrOff)) {
        const ElfSymbol& s = syms_[ELF64_R_SYM(op->rela.r_info)];
        if (s.st_shndx != SHN_UNDEF)
          return bad("{}: old_addr refers to '{}', defined in the payload (expected a symbol of the target)", label,
                     display(static_cast<u32>(ELF64_R_SYM(op->rela.r_info)), op->rela.r_addend));
        spec.old_ref = ref(op->rela);
      } else {
        spec.old_addr_abs = load_le<u64>(f + kFuncOldAddrOff);
      }

      // sizes
      if (spec.old_size == 0) return bad("{}: old_size is 0", label);
      if (!spec.new_ref) {
        if (spec.new_size == 0) return bad("{}: new_addr is 0 (NOP out) but new_size is 0", label);
        if (spec.new_size > spec.old_size)
          return bad("{}: NOP-out new_size 0x{:x} is greater than old_size 0x{:x}", label, spec.new_size,
                     spec.old_size);
      } else if (spec.old_size < x86_64::kJumpSize) {
        return bad("{}: old_size 0x{:x} is less than 0x{:x} (the size of a jmp rel32)", label, spec.old_size,
                   x86_64::kJumpSize);
      }

      // expectation: enabled:1, len:5, rsv:2
      const u8 bits = f[kFuncExpectOff];
      const bool enabled = bits & kExpectEnabled;
      const u8 len = (bits >> kExpectLenShift) & kExpectLenMask;
      const u8 rsv = bits >> kExpectRsvShift;
      if (rsv != 0) return bad("{}: expect.rsv 0x{:x} is not 0x0", label, rsv);
      if (enabled) {
        if (len == 0 || len > kMaxExpectLen)
          return bad("{}: expect.len 0x{:x} is not in [0x1, 0x{:x}]", label, len, kMaxExpectLen);
        if (len > spec.old_size)
          return bad("{}: expect.len 0x{:x} is greater than old_size 0x{:x}", label, len, spec.old_size);
        spec.expect.assign(f + kFuncExpectOff + kExpectDataOff, f + kFuncExpectOff + kExpectDataOff + len);
      }
      p_.funcs.push_back(std::move(spec));
    }
    return {};
  }

  // The string a function's name relocation points at.
  Result<std::string> read_name(const Elf64_Rela& r, size_t i) const {
    const std::string what = fmt::format("function [index {}]: name", i);
    const Place at = HS_TRY(place(r, what));
    const Elf64_Shdr& sh = elf_.sections()[at.shndx];
    if (sh.sh_type == SHT_NOBITS)
      return bad("{} points into {}, which has no data (SHT_NOBITS)", what, elf_.describe_section(at.shndx));
    if (!(sh.sh_flags & SHF_ALLOC))
      return bad("{} points into {}, which is not allocated (no SHF_ALLOC)", what, elf_.describe_section(at.shndx));
    const ByteView data = elf_.section_data(at.shndx).subspan(at.offset);
    const void* nul = std::memchr(data.data(), 0, data.size());
    if (!nul)
      return bad("{} at {}+0x{:x} is not NUL-terminated", what, elf_.describe_section(at.shndx), at.offset);
    const auto len = static_cast<u64>(static_cast<const u8*>(nul) - data.data());
    if (len == 0) return bad("{} is empty", what);
    for (u64 k = 0; k < len; ++k)
      if (data[k] < 0x20 || data[k] == 0x7f)
        return bad("{} '{}' contains control character 0x{:x}", what,
                   ElfFile::printable(std::string_view(reinterpret_cast<const char*>(data.data()), len)), data[k]);
    if (len > kMaxNameLen) return bad("{} is 0x{:x} bytes long, the limit is 0x{:x}", what, len, kMaxNameLen);
    return std::string(reinterpret_cast<const char*>(data.data()), len);
  }

  // -- .modinfo

  Status parse_modinfo() {
    const auto idx = elf_.find_section(kModinfoName);
    if (!idx) return {};
    const std::string what = elf_.describe_section(*idx);
    if (elf_.sections()[*idx].sh_type == SHT_NOBITS) return bad("{}: sh_type SHT_NOBITS, expected strings", what);
    const ByteView data = elf_.section_data(*idx);
    if (data.empty()) return {};
    if (data.back() != 0) return bad("{}: last entry is not NUL-terminated", what);
    const std::string_view all(reinterpret_cast<const char*>(data.data()), data.size());
    size_t pos = 0;
    while (pos < all.size()) {
      const size_t end = all.find('\0', pos);
      const std::string_view entry = all.substr(pos, end - pos);
      const size_t at = pos;
      pos = end + 1;
      if (entry.empty()) continue;  // alignment padding between entries
      for (char c : entry) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f)
          return bad("{}: entry at offset 0x{:x} contains control character 0x{:x}", what, at, u);
      }
      const size_t eq = entry.find('=');
      if (eq == std::string_view::npos)
        return bad("{}: entry '{}' at offset 0x{:x} has no '='", what, ElfFile::printable(entry), at);
      if (eq == 0) return bad("{}: entry '{}' at offset 0x{:x} has an empty key", what, ElfFile::printable(entry), at);
      p_.modinfo.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
    }
    // gcc emits the entries in no particular order; show them by key.
    std::stable_sort(p_.modinfo.begin(), p_.modinfo.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    return {};
  }

  Payload& p_;
  const ElfFile& elf_;
  size_t symtab_ = 0;
  std::vector<ElfSymbol> syms_;
  std::map<std::pair<size_t, u64>, u32> named_places_;
  bool has_hooks_ = false;
};

}  // namespace

Result<Payload> Payload::parse(ElfFile elf, std::string file) {
  Payload p{.elf = std::move(elf), .file = std::move(file)};
  auto st = Parser(p).run();
  if (!st) return std::unexpected(std::move(st.error()).context(p.file));
  return p;
}

Result<Payload> Payload::open(const std::string& path) {
  ElfFile elf = HS_TRY(ElfFile::open(path));  // errors already carry "PATH: "
  return parse(std::move(elf), path);
}

}  // namespace hs
