// Linking a payload at an address in the target, in passes:
//
//   1. scan     every relocation that applies to an allocated section: is its
//               type supported, does it need a GOT slot (or TLS slots: a
//               {module ID, offset} pair for TLSGD, a TP offset for
//               GOTTPOFF), may it need a veneer
//   2. layout   text | rodata | data, each starting on a page; sections in
//               index order with their alignment; veneers end the text
//               region; the image descriptor (descriptor.h) opens the
//               rodata region and the GOT ends it; .eh_frame is followed
//               by a zero terminator and the unwind block (eh_frame.h)
//               opens the data region
//   3. copy     section bytes into the image (NOBITS stay zero)
//   4. resolve  symbol values: payload symbols from the layout, undefined
//               ones through the SymbolResolver (weak ones may stay 0); a
//               thread-local one's module through resolve_tls
//   5. relocate every relocation, through src/arch/x86_64.cc
//   6. fill     GOT slots and veneers
//   7. model    livepatch_funcs (old_addr resolved and written back into the
//               image), hooks (read from the relocated image), exports,
//               the relocated .eh_frame checked (eh_frame.h), and the
//               image descriptor and unwind block written
//
// Passes 1-2 are all image_size() needs, so it and link_payload() agree on
// the size by construction.

#include "payload/loader.h"

#include <sys/mman.h>

#include <array>
#include <map>
#include <optional>
#include <set>

#include "arch/x86_64.h"
#include "payload/descriptor.h"
#include "payload/eh_frame.h"

namespace hs {
namespace {

constexpr u64 kPageSize = x86_64::kPageSize;
// Keeps every intra-payload PC32 reference in range and bounds what a
// hostile sh_size (a huge .bss) can make us allocate.
constexpr u64 kMaxImageSize = u64{1} << 30;
constexpr std::string_view kGotSymbol = "_GLOBAL_OFFSET_TABLE_";

constexpr u64 align_up(u64 v, u64 align) { return (v + align - 1) & ~(align - 1); }

enum RegionKind : size_t { kText, kRodata, kData, kRegionCount };
constexpr std::array<int, kRegionCount> kRegionProt = {PROT_READ | PROT_EXEC, PROT_READ, PROT_READ | PROT_WRITE};

// Which region an allocated section goes to. The livepatch sections,
// .modinfo, notes and .data.rel.ro* are only written by the loader (they are
// writable in the object file only because they hold relocations), so they
// are read-only in the target, like the GOT.
RegionKind region_of(const ElfFile& elf, size_t i) {
  const Elf64_Shdr& sh = elf.sections()[i];
  std::string_view name = elf.section_name(i);
  if (sh.sh_flags & SHF_EXECINSTR) return kText;
  if (name.starts_with(".livepatch.") || name == ".modinfo" || sh.sh_type == SHT_NOTE ||
      name.starts_with(".data.rel.ro"))
    return kRodata;
  if (sh.sh_flags & SHF_WRITE) return kData;
  return kRodata;
}

struct Layout {
  std::vector<ElfSymbol> syms;              // the payload's .symtab
  std::vector<size_t> relas;                // SHT_RELA sections applying to loaded sections
  std::vector<std::optional<u64>> sec_off;  // per section: offset from the base, if loaded
  std::vector<ImageRegion> regions;
  u64 got_off = 0;                          // the GOT, from the base
  std::map<u32, u64> got_slot;              // symbol index -> slot offset from the GOT
  std::map<u32, u64> tls_gd_slot;           // TLSGD: symbol index -> {module ID, offset} pair, from the GOT
  std::map<u32, u64> tls_ie_slot;           // GOTTPOFF: symbol index -> TP offset slot, from the GOT
  std::map<u32, u64> veneer_off;            // symbol index -> veneer offset from the base
  u64 desc_off = 0, desc_size = 0;          // the image descriptor (payload/descriptor.h)
  size_t eh_index = 0;                      // a loaded, non-empty .eh_frame (0: none)
  u64 unwind_off = 0;                       // its unwind block (payload/eh_frame.h), 0: none
  u64 size = 0;
};

// How a symbol is named in messages: its name, or its section's for
// STT_SECTION symbols (".rodata.str1.1").
std::string display_name(const ElfFile& elf, const ElfSymbol& s) {
  if (!s.name.empty()) return std::string(s.name);
  if (s.type() == STT_SECTION && s.st_shndx < elf.sections().size()) return std::string(elf.section_name(s.st_shndx));
  return fmt::format("symbol #{}", s.index);
}

// Pass 1: relocations that matter and what they need. ElfFile::create() has
// checked every SHT_RELA section of a relocatable file (no SHT_REL there):
// sh_link is the one symbol table, sh_info a section with data, every symbol
// index in range; Payload::parse() that the symbol table exists.
Status scan_relocations(const ElfFile& elf, Layout& lay) {
  const auto& shdrs = elf.sections();
  for (size_t i = 1; i < shdrs.size(); ++i)
    if (shdrs[i].sh_type == SHT_SYMTAB) lay.syms = HS_TRY(elf.symbols(i));

  for (size_t i = 1; i < shdrs.size(); ++i) {
    const Elf64_Shdr& sh = shdrs[i];
    if (sh.sh_type != SHT_RELA) continue;
    std::string ctx = elf.describe_section(i);
    const Elf64_Shdr& target = shdrs[sh.sh_info];
    if (!(target.sh_flags & SHF_ALLOC)) continue;  // debug info and the like: not loaded
    lay.relas.push_back(i);

    for (const Elf64_Rela& rel : HS_TRY_CTX(elf.relocations(i), ctx)) {
      u32 type = ELF64_R_TYPE(rel.r_info);
      u32 si = ELF64_R_SYM(rel.r_info);
      const ElfSymbol& sym = lay.syms[si];
      x86_64::RelocNeeds needs =
          HS_TRY_CTX(x86_64::scan_relocation(type, rel.r_offset, display_name(elf, sym)), ctx);
      // A branch to something outside the payload may be out of reach: give
      // it a veneer and the GOT slot the veneer jumps through.
      bool external = si != 0 && (!sym.defined() || sym.st_shndx == kShnLivepatch) && sym.name != kGotSymbol;
      if (needs.got_slot || (needs.may_branch && external)) lay.got_slot.emplace(si, 0);
      if (needs.tls == x86_64::TlsAccess::GeneralDynamic) lay.tls_gd_slot.emplace(si, 0);
      if (needs.tls == x86_64::TlsAccess::InitialExec || needs.tls == x86_64::TlsAccess::Descriptor)
        lay.tls_ie_slot.emplace(si, 0);
      if (needs.may_branch && external) lay.veneer_off.emplace(si, 0);
    }
  }
  return {};
}

// Pass 2: text | rodata | data.
Status place_sections(const ElfFile& elf, Layout& lay) {
  const auto& shdrs = elf.sections();
  lay.sec_off.assign(shdrs.size(), std::nullopt);
  if (auto eh = elf.find_section(".eh_frame"); eh && (shdrs[*eh].sh_flags & SHF_ALLOC) &&
                                               shdrs[*eh].sh_type != SHT_NOBITS && shdrs[*eh].sh_size != 0)
    lay.eh_index = *eh;
  u64 cursor = 0;
  for (size_t kind = 0; kind < kRegionCount; ++kind) {
    u64 start = cursor, off = cursor;
    auto grow = [&](u64 align, u64 size, std::string_view what) -> Result<u64> {
      u64 at = align_up(off, align);
      if (size > kMaxImageSize || at + size > kMaxImageSize)
        return fail(ErrorKind::BadPayload, "{}: size {:#x} makes the image larger than the limit ({:#x})", what, size,
                    kMaxImageSize);
      off = at + size;
      return at;
    };

    // The image descriptor opens the read-only region (so there always is one).
    if (kind == kRodata) lay.desc_off = HS_TRY(grow(8, lay.desc_size, "image descriptor"));
    // The unwind block opens the data region (so the engine finds it there).
    if (kind == kData && lay.eh_index != 0)
      lay.unwind_off = HS_TRY(grow(kUnwindBlockAlign, kUnwindBlockSize, "unwind block"));
    for (size_t i = 1; i < shdrs.size(); ++i) {
      const Elf64_Shdr& sh = shdrs[i];
      if (!(sh.sh_flags & SHF_ALLOC) || region_of(elf, i) != kind) continue;
      // A .klp.rela section (SHF_ALLOC, Payload::parse() checked it): applied here, not loaded.
      if (sh.sh_type == SHT_RELA && (sh.sh_flags & kShfRelaLivepatch)) continue;
      std::string what = elf.describe_section(i);
      // Payload::parse() has refused SHF_TLS, ElfFile::create() an
      // sh_addralign that is not a power of two.
      if (sh.sh_type == SHT_INIT_ARRAY || sh.sh_type == SHT_FINI_ARRAY || sh.sh_type == SHT_PREINIT_ARRAY)
        return fail(ErrorKind::BadPayload,
                    "{}: constructors and destructors are not run in a payload (use a load or unload hook)", what);
      u64 align = sh.sh_addralign ? sh.sh_addralign : 1;
      if (align > kPageSize)
        return fail(ErrorKind::BadPayload, "{}: sh_addralign {:#x} is larger than the page size ({:#x})", what, align,
                    kPageSize);
      lay.sec_off[i] = HS_TRY(grow(align, sh.sh_size, what));
      // `ld -r` leaves .eh_frame without the zero word that ends it.
      if (i == lay.eh_index) (void)HS_TRY(grow(1, kEhFrameTerminatorSize, what));
    }
    if (kind == kText) {
      for (auto& [si, at] : lay.veneer_off) at = HS_TRY(grow(X86_64::veneer_align, x86_64::kVeneerSize, "veneers"));
    } else if (kind == kRodata) {
      const u64 slots = lay.got_slot.size() + lay.tls_ie_slot.size() + 2 * lay.tls_gd_slot.size();
      lay.got_off = HS_TRY(grow(x86_64::kGotEntrySize, slots * x86_64::kGotEntrySize, "GOT"));
      u64 slot = 0;
      for (auto& [si, at] : lay.tls_gd_slot) {
        at = slot * x86_64::kGotEntrySize;
        slot += 2;
      }
      for (auto& [si, at] : lay.got_slot) at = slot++ * x86_64::kGotEntrySize;
      for (auto& [si, at] : lay.tls_ie_slot) at = slot++ * x86_64::kGotEntrySize;
    }
    if (off > start) {
      u64 size = align_up(off - start, kPageSize);
      lay.regions.push_back(ImageRegion{.offset = start, .size = size, .prot = kRegionProt[kind]});
      cursor = start + size;
    }
  }
  lay.size = cursor;
  return {};
}

// The descriptor's fields that do not depend on the layout.
ImageDescriptor descriptor_of(const Payload& p) {
  ImageDescriptor d;
  d.build_id = p.build_id;
  d.depends = p.depends;
  d.object_depends = p.object_depends;
  return d;
}

Result<Layout> compute_layout(const Payload& p) {
  Layout lay;
  lay.desc_size = descriptor_size(descriptor_of(p));
  HS_CHECK(scan_relocations(p.elf, lay));
  HS_CHECK(place_sections(p.elf, lay));
  return lay;
}

struct SymValue {
  u64 S = 0;  // address in the target (a TLS symbol: its offset in its module's block)
  u64 Z = 0;  // size
  std::string implementation;  // an IFUNC's: the implementation S is (TargetSymbol::implementation)
  std::optional<TlsModule> tls;  // a thread-local symbol's module
};

class Linker {
 public:
  Linker(const Payload& p, Layout lay, RemoteAddr base, SymbolResolver& resolver)
      : p_(p), elf_(p.elf), lay_(std::move(lay)), base_(base.value()), resolver_(resolver),
        cache_(lay_.syms.size()) {
    for (const FuncSpec& f : p_.funcs)
      if (f.new_ref) replacements_.insert(f.new_ref->sym_index);
  }

  Result<LinkedPayload> run() {
    out_.base = RemoteAddr(base_);
    out_.image.assign(lay_.size, 0);
    out_.regions = lay_.regions;
    copy_sections();
    HS_CHECK(relocate());
    HS_CHECK(fill_got_and_veneers());
    HS_CHECK(link_funcs());
    read_hooks();
    collect_exports();
    size_t eh = 0;
    if (auto off = loaded_section(".eh_frame", &eh); off && elf_.sections()[eh].sh_type != SHT_NOBITS) {
      out_.eh_frame_offset = *off;
      out_.eh_frame_size = elf_.sections()[eh].sh_size;
    }
    HS_CHECK(write_unwind_block());
    HS_CHECK(write_descriptor());
    return std::move(out_);
  }

 private:
  u64 got_addr() const { return base_ + lay_.got_off; }

  // Pass 3.
  void copy_sections() {
    for (size_t i = 1; i < lay_.sec_off.size(); ++i) {
      if (!lay_.sec_off[i] || elf_.sections()[i].sh_type == SHT_NOBITS) continue;
      ByteView data = elf_.section_data(i);
      data = data.first(std::min<u64>(data.size(), elf_.sections()[i].sh_size));
      std::copy(data.begin(), data.end(), out_.image.begin() + static_cast<std::ptrdiff_t>(*lay_.sec_off[i]));
    }
  }

  // Pass 4, on demand: the value of symbol `si`, cached.
  Result<SymValue> symbol_value(u32 si) {
    if (si >= cache_.size())
      return fail(ErrorKind::BadPayload, "symbol index {:#x} is past the symbol table ({:#x})", si, cache_.size());
    if (!cache_[si]) cache_[si] = HS_TRY(compute_symbol_value(si));
    return *cache_[si];
  }

  Result<SymValue> compute_symbol_value(u32 si) {
    if (si == 0) return SymValue{};  // STN_UNDEF: S = 0
    const ElfSymbol& sym = lay_.syms[si];
    std::string name = display_name(elf_, sym);
    switch (sym.st_shndx) {
      case SHN_UNDEF:
      case kShnLivepatch: {
        if (sym.name == kGotSymbol) return SymValue{got_addr(), 0};
        if (sym.name.empty()) return fail(ErrorKind::BadPayload, "undefined {} has no name", name);
        Result<TargetSymbol> ts = sym.st_shndx == kShnLivepatch ? resolve_klp(si) : resolver_.resolve_symbol(sym.name);
        if (!ts) {
          // An unresolved weak reference is 0, as in any ELF link (not a
          // livepatch symbol: those must all resolve).
          if (sym.st_shndx == SHN_UNDEF && sym.bind() == STB_WEAK && ts.error().kind() == ErrorKind::BadTarget)
            return SymValue{};
          return std::unexpected(std::move(ts.error()));
        }
        // An IFUNC's symbol value is its resolver, not the function; a TLS
        // symbol's is an offset in its object's TLS block. Neither is an
        // address the payload may use.
        if (ts->type == STT_GNU_IFUNC)
          return fail(ErrorKind::BadTarget,
                      "symbol '{}' in {} is an indirect function (STT_GNU_IFUNC), which is not supported", name,
                      ts->object);
        if (ts->type == STT_TLS)
          return SymValue{ts->addr.value(), ts->size, {}, HS_TRY(resolver_.resolve_tls(name, *ts))};
        return SymValue{ts->addr.value(), ts->size, ts->implementation};
      }
      case SHN_ABS:
        return SymValue{sym.st_value, sym.st_size};
      default:
        break;  // a section index: ElfFile::create() refused SHN_COMMON and every other one
    }
    if (!lay_.sec_off[sym.st_shndx])
      return fail(ErrorKind::BadPayload, "symbol '{}' is defined in {}, which is not loaded (no SHF_ALLOC)", name,
                  elf_.describe_section(sym.st_shndx));
    if (sym.type() == STT_GNU_IFUNC)
      return fail(ErrorKind::BadPayload, "symbol '{}' is an indirect function (STT_GNU_IFUNC), which is not supported",
                  name);
    // A weak or unique definition the program has too (C++: inline
    // functions, template instances, typeinfo, vtables, static locals of
    // inline functions) is the program's, as the dynamic linker would bind
    // it: one static local, one typeinfo object. A replacement stays the
    // payload's own.
    if (!sym.name.empty() && (sym.bind() == STB_WEAK || sym.bind() == STB_GNU_UNIQUE) &&
        ELF64_ST_VISIBILITY(sym.st_other) == STV_DEFAULT && (sym.type() == STT_FUNC || sym.type() == STT_OBJECT) &&
        !sym.name.starts_with("hotsplice_") && !replacements_.contains(si))
      if (std::optional<TargetSymbol> ts = resolver_.program_definition(sym.name))
        return SymValue{ts->addr.value(), ts->size};
    return SymValue{base_ + *lay_.sec_off[sym.st_shndx] + sym.st_value, sym.st_size};
  }

  // A livepatch symbol, as the .klp.rela section using it names it
  // (Payload::parse() modelled every one a relocation uses).
  Result<TargetSymbol> resolve_klp(u32 si) {
    auto it = p_.klp.symbols.find(si);
    if (it == p_.klp.symbols.end())
      return fail(ErrorKind::BadPayload, "livepatch symbol '{}' is used outside a .klp.rela section",
                  ElfFile::printable(lay_.syms[si].name));
    return resolver_.resolve_klp(it->second);
  }

  // Pass 5.
  Status relocate() {
    const auto& shdrs = elf_.sections();
    for (size_t ri : lay_.relas) {
      std::string ctx = elf_.describe_section(ri);
      size_t ti = shdrs[ri].sh_info;
      u64 sec_off = *lay_.sec_off[ti];
      std::span<u8> section(out_.image.data() + sec_off, shdrs[ti].sh_size);
      for (const Elf64_Rela& rel : HS_TRY_CTX(elf_.relocations(ri), ctx)) {
        u32 si = ELF64_R_SYM(rel.r_info);
        SymValue sv = HS_TRY_CTX(symbol_value(si), ctx);
        std::string name = display_name(elf_, lay_.syms[si]);
        x86_64::RelocInput in{
            .type = static_cast<u32>(ELF64_R_TYPE(rel.r_info)),
            .offset = rel.r_offset,
            .symbol = name,
            .S = sv.S,
            .A = rel.r_addend,
            .P = base_ + sec_off + rel.r_offset,
            .Z = sv.Z,
            .GOT = got_addr(),
        };
        if (auto it = lay_.got_slot.find(si); it != lay_.got_slot.end()) {
          in.G = it->second;
          in.has_got_slot = true;
        }
        HS_CHECK_CTX(prepare_tls(in, sv, si), ctx);
        if (auto it = lay_.veneer_off.find(si); it != lay_.veneer_off.end()) {
          in.L = base_ + it->second;
          in.has_veneer = true;
        }
        HS_CHECK_CTX(x86_64::apply_relocation(section, in), ctx);
      }
    }
    return {};
  }

  // A TLS relocation must name a thread-local symbol and a non-TLS one must
  // not; a TLS one gets its slot (G) or its TP offset (T).
  Status prepare_tls(x86_64::RelocInput& in, const SymValue& sv, u32 si) const {
    const x86_64::TlsAccess access = HS_TRY(x86_64::scan_relocation(in.type, in.offset, in.symbol)).tls;
    const std::string what = x86_64::describe_relocation(in.type, in.offset, in.symbol);
    if (access == x86_64::TlsAccess::None) {
      if (sv.tls)
        return fail(ErrorKind::BadPayload, "{}: '{}' in {} is thread-local (STT_TLS) and can only be reached "
                    "through TLS relocations", what, in.symbol, sv.tls->object);
      return {};
    }
    if (!sv.tls)
      return fail(ErrorKind::BadPayload, "{}: '{}' is not a thread-local variable of the target", what, in.symbol);
    const bool descriptor =
        access == x86_64::TlsAccess::Descriptor || access == x86_64::TlsAccess::DescriptorCall;
    if (access != x86_64::TlsAccess::GeneralDynamic && !sv.tls->tp_offset)
      return fail(ErrorKind::BadTarget,
                  "{}: '{}' in {} is in dynamic TLS (its block is not at a fixed offset from the thread pointer), "
                  "which {} access cannot reach; build the patch with {}",
                  what, in.symbol, sv.tls->object,
                  descriptor                                  ? "TLS descriptor (relaxed to initial-exec)"
                  : access == x86_64::TlsAccess::InitialExec ? "initial-exec"
                                                              : "local-exec",
                  descriptor ? "-mtls-dialect=gnu" : "-ftls-model=global-dynamic");
    switch (access) {
      case x86_64::TlsAccess::GeneralDynamic:
        in.G = lay_.tls_gd_slot.at(si);
        in.has_got_slot = true;
        break;
      case x86_64::TlsAccess::InitialExec:
      case x86_64::TlsAccess::Descriptor:
        in.G = lay_.tls_ie_slot.at(si);
        in.has_got_slot = true;
        break;
      case x86_64::TlsAccess::LocalExec:
        in.T = tp_offset_of(sv);
        break;
      case x86_64::TlsAccess::DescriptorCall:
      case x86_64::TlsAccess::None:
        break;
    }
    return {};
  }

  static u64 tp_offset_of(const SymValue& sv) { return static_cast<u64>(*sv.tls->tp_offset) + sv.S; }

  // Pass 6. Every slot's symbol was referenced by a relocation, so its value
  // is already cached.
  Status fill_got_and_veneers() {
    for (const auto& [si, slot] : lay_.got_slot) {
      SymValue sv = HS_TRY(symbol_value(si));
      store_le<u64>(out_.image.data() + lay_.got_off + slot, sv.S);
    }
    // A real tls_index for __tls_get_addr, and IE slots holding TP offsets.
    for (const auto& [si, slot] : lay_.tls_gd_slot) {
      SymValue sv = HS_TRY(symbol_value(si));
      store_le<u64>(out_.image.data() + lay_.got_off + slot, sv.tls ? sv.tls->module_id : 0);
      store_le<u64>(out_.image.data() + lay_.got_off + slot + x86_64::kGotEntrySize, sv.S);
    }
    for (const auto& [si, slot] : lay_.tls_ie_slot) {
      SymValue sv = HS_TRY(symbol_value(si));
      if (sv.tls && sv.tls->tp_offset) store_le<u64>(out_.image.data() + lay_.got_off + slot, tp_offset_of(sv));
    }
    for (const auto& [si, off] : lay_.veneer_off) {
      Bytes v = HS_TRY(x86_64::make_veneer(RemoteAddr(base_ + off), RemoteAddr(got_addr() + lay_.got_slot.at(si))));
      std::copy(v.begin(), v.end(), out_.image.begin() + static_cast<std::ptrdiff_t>(off));
    }
    return {};
  }

  // Offset from the base of a loaded section named `name`, if any.
  std::optional<u64> loaded_section(std::string_view name, size_t* index = nullptr) const {
    std::optional<size_t> i = elf_.find_section(name);
    if (!i || !lay_.sec_off[*i]) return std::nullopt;
    if (index) *index = *i;
    return lay_.sec_off[*i];
  }

  // Pass 7: livepatch_funcs.
  Status link_funcs() {
    size_t funcs_index = 0;
    // Payload::parse() has checked that .livepatch.funcs is SHF_ALLOC.
    std::optional<u64> funcs_off = loaded_section(".livepatch.funcs", &funcs_index);
    if (funcs_off) out_.funcs_addr = RemoteAddr(base_ + *funcs_off);

    for (const FuncSpec& f : p_.funcs) {
      std::string ctx = fmt::format("function '{}'", f.name);
      LinkedFunc lf{.index = f.index, .name = f.name, .new_size = f.new_size, .expect = f.expect};
      if (f.new_ref) {
        SymValue sv = HS_TRY_CTX(symbol_value(f.new_ref->sym_index), ctx);
        lf.new_addr = RemoteAddr(sv.S + static_cast<u64>(f.new_ref->addend));
      }

      u64 old_addr = 0, sym_size = 0;  // sym_size 0: unknown
      if (f.old_addr_abs != 0) {
        old_addr = f.old_addr_abs;
      } else if (f.old_ref) {
        SymValue sv = HS_TRY_CTX(symbol_value(f.old_ref->sym_index), ctx);
        old_addr = sv.S + static_cast<u64>(f.old_ref->addend);
        if (f.old_ref->addend == 0) {
          sym_size = sv.Z;
          lf.implementation = sv.implementation;
        }
      } else {
        TargetSymbol ts = HS_TRY_CTX(resolver_.resolve_function(f.name), ctx);
        old_addr = ts.addr.value();
        sym_size = ts.size;
        lf.implementation = ts.implementation;
      }
      if (old_addr == 0) return fail(ErrorKind::BadTarget, "{}: resolves to address 0", ctx);

      u64 old_size = f.old_size;
      // An indirect function: the builder could only fill in its resolver's
      // size, and no payload can know which implementation a process uses.
      // The implementation's own extent is the one that counts.
      if (!lf.implementation.empty()) old_size = sym_size;
      if (old_size == 0) {  // left for the loader: take the symbol's size
        if (sym_size == 0 || sym_size > UINT32_MAX)
          return fail(ErrorKind::BadPayload, "{}: old_size is 0 and the symbol's size is unknown", ctx);
        old_size = sym_size;
      } else if (sym_size != 0 && old_size > sym_size) {
        return fail(ErrorKind::BadTarget, "{}: old_size {:#x} is larger than the symbol ({:#x})", ctx, old_size,
                    sym_size);
      }
      lf.old_addr = RemoteAddr(old_addr);
      lf.old_size = static_cast<u32>(old_size);

      // The target's copy of the livepatch_func says what was resolved.
      u64 entry = f.index * kFuncSize;
      const u64 funcs_size = elf_.sections()[funcs_index].sh_size;
      if (!funcs_off || entry > funcs_size || kFuncSize > funcs_size - entry)
        return fail(ErrorKind::Internal, "{}: entry {} is outside .livepatch.funcs", ctx, f.index);
      u8* e = out_.image.data() + *funcs_off + entry;
      store_le<u64>(e + kFuncOldAddrOff, old_addr);
      store_le<u32>(e + kFuncOldSizeOff, lf.old_size);
      out_.funcs.push_back(std::move(lf));
    }
    return {};
  }

  std::vector<RemoteAddr> hook_array(std::string_view name) const {
    std::vector<RemoteAddr> v;
    size_t i = 0;
    std::optional<u64> off = loaded_section(name, &i);
    if (!off) return v;
    u64 n = elf_.sections()[i].sh_size / kHookSlotSize;
    for (u64 k = 0; k < n; ++k) v.emplace_back(load_le<u64>(out_.image.data() + *off + k * kHookSlotSize));
    return v;
  }

  RemoteAddr single_hook(std::string_view name) const {
    std::vector<RemoteAddr> v = hook_array(name);
    return v.empty() ? RemoteAddr() : v.front();
  }

  // Hooks are what the relocated sections hold.
  void read_hooks() {
    LinkedHooks& h = out_.hooks;
    h.load = hook_array(".livepatch.hooks.load");
    h.unload = hook_array(".livepatch.hooks.unload");
    h.preapply = single_hook(".livepatch.hooks.preapply");
    h.apply = single_hook(".livepatch.hooks.apply");
    h.postapply = single_hook(".livepatch.hooks.postapply");
    h.prerevert = single_hook(".livepatch.hooks.prerevert");
    h.revert = single_hook(".livepatch.hooks.revert");
    h.postrevert = single_hook(".livepatch.hooks.postrevert");
  }

  // The relocated .eh_frame must be a table the target's unwinder can
  // read; if it has an FDE, the unwind block says where it is.
  Status write_unwind_block() {
    if (lay_.unwind_off == 0 || out_.eh_frame_size == 0) return {};
    EhFrameSummary sum = HS_TRY(check_eh_frame(out_.image, base_, out_.eh_frame_offset, out_.eh_frame_size));
    if (sum.probe_pc == 0) return {};
    Bytes b = encode_unwind_block({base_ + out_.eh_frame_offset, out_.eh_frame_size, sum.probe_pc});
    std::copy(b.begin(), b.end(), out_.image.begin() + static_cast<std::ptrdiff_t>(lay_.unwind_off));
    out_.unwind_block_offset = lay_.unwind_off;
    return {};
  }

  // The image descriptor: where the relocated function entries, hooks,
  // .eh_frame and .modinfo are, and the build-ids (payload/descriptor.h).
  Status write_descriptor() {
    ImageDescriptor d = descriptor_of(p_);
    auto section = [&](std::string_view name, u64 unit) {
      size_t i = 0;
      std::optional<u64> off = loaded_section(name, &i);
      if (!off || elf_.sections()[i].sh_type == SHT_NOBITS) return ImageSpan{};
      return ImageSpan{*off, elf_.sections()[i].sh_size / unit};
    };
    d.funcs = section(".livepatch.funcs", kFuncSize);
    d.eh_frame = {out_.eh_frame_offset, out_.eh_frame_size};
    d.modinfo = section(".modinfo", 1);
    for (size_t k = 0; k < kHookKinds.size(); k++)
      d.hooks[k] = section(fmt::format(".livepatch.hooks.{}", kHookKinds[k]), kHookSlotSize);
    Bytes b = HS_TRY(encode_descriptor(d));
    if (b.size() != lay_.desc_size) return fail(ErrorKind::Internal, "image descriptor size changed");
    std::copy(b.begin(), b.end(), out_.image.begin() + static_cast<std::ptrdiff_t>(lay_.desc_off));
    out_.descriptor_offset = lay_.desc_off;
    return {};
  }

  // Global definitions, for payloads loaded later; hotsplice's own
  // (hotsplice_*) stay private, and weak ones bound to the program's copy
  // are the program's.
  void collect_exports() {
    for (const ElfSymbol& s : lay_.syms) {
      if (s.bind() != STB_GLOBAL && s.bind() != STB_WEAK) continue;
      if (!s.defined() || s.st_shndx == kShnLivepatch || s.name.empty() || s.name.starts_with("hotsplice_")) continue;
      if (s.type() == STT_SECTION || s.type() == STT_FILE || s.st_shndx == SHN_COMMON) continue;
      // A weak definition bound to the program's copy is not the payload's.
      if (auto sv = symbol_value(s.index); sv && sv->S >= base_ && sv->S - base_ < lay_.size)
        out_.exports.emplace_back(std::string(s.name), RemoteAddr(sv->S));
    }
  }

  const Payload& p_;
  const ElfFile& elf_;
  Layout lay_;
  u64 base_;
  SymbolResolver& resolver_;
  std::vector<std::optional<SymValue>> cache_;
  std::set<u32> replacements_;  // symbols some livepatch_func's new_addr names
  LinkedPayload out_;
};

}  // namespace

Result<TlsModule> SymbolResolver::resolve_tls(std::string_view name, const TargetSymbol& sym) {
  return fail(ErrorKind::BadTarget, "symbol '{}' in {} is thread-local (STT_TLS), which is not supported here", name,
              sym.object);
}

Result<u64> image_size(const Payload& p) {
  Layout lay = HS_TRY(compute_layout(p));
  return lay.size;
}

Result<LinkedPayload> link_payload(const Payload& p, RemoteAddr base, SymbolResolver& resolver) {
  if (base.value() % kPageSize != 0)
    return fail(ErrorKind::Internal, "link base {} is not page-aligned", base);
  Layout lay = HS_TRY(compute_layout(p));
  return Linker(p, std::move(lay), base, resolver).run();
}

}  // namespace hs
