// Checks and models the Linux livepatch ELF form of a payload: see klp.h.
//
// The names carry no separator that cannot also appear inside a part:
// object file names have dots ("libc.so.6"), section names start with one
// (".text.fixed", so a section's name reads ".klp.rela.libc.so.6..text.fixed"),
// and symbol names may have them ("f.cold"). So nothing is split by
// guessing: a .klp.rela section's object is what its name leaves once the
// name of the section it applies to (sh_info) is taken off the end, and a
// livepatch symbol is read with the object of the section that uses it.
#include "payload/klp.h"

#include <optional>

namespace hs {
namespace {

template <class... Args>
std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args) {
  return fail(ErrorKind::BadPayload, f, std::forward<Args>(args)...);
}

constexpr size_t kMaxPosDigits = 9;

// The decimal <pos> after the last ',' of a livepatch symbol's name; the
// part before it in *body (without the prefix). A reason on failure.
Result<u64> split_pos(std::string_view name, std::string_view* body) {
  const size_t comma = name.rfind(',');
  if (comma == std::string_view::npos) return bad("has no ',<pos>' (0 for a unique symbol)");
  const std::string_view digits = name.substr(comma + 1);
  if (digits.empty() || digits.size() > kMaxPosDigits)
    return bad("position '{}' is not a decimal number of 1 to {} digits", ElfFile::printable(digits), kMaxPosDigits);
  u64 pos = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return bad("position '{}' is not a decimal number of 1 to {} digits", ElfFile::printable(digits), kMaxPosDigits);
    pos = pos * 10 + static_cast<u64>(c - '0');
  }
  *body = name.substr(kKlpSymbolPrefix.size(), comma - kKlpSymbolPrefix.size());
  return pos;
}

// Why `name` (of a SHN_LIVEPATCH symbol) is not ".klp.sym.<object>.<name>,<pos>";
// nullopt if it is.
std::optional<std::string> malformed_symbol(std::string_view name) {
  if (!name.starts_with(kKlpSymbolPrefix)) return "does not start with '.klp.sym.'";
  std::string_view body;
  auto pos = split_pos(name, &body);
  if (!pos) return pos.error().message();
  const size_t dot = body.find('.', 1);
  if (body.empty() || body.front() == '.' || dot == std::string_view::npos || dot + 1 == body.size())
    return "has no '<object>.<name>' before the position";
  return std::nullopt;
}

std::string sym_label(const ElfFile& elf, size_t symtab, const ElfSymbol& s) {
  return fmt::format("{}: symbol [index {}] '{}'", elf.describe_section(symtab), s.index, ElfFile::printable(s.name));
}

}  // namespace

Result<KlpForm> parse_klp_form(const ElfFile& elf, const std::vector<ElfSymbol>& syms) {
  KlpForm out;
  const auto& shdrs = elf.sections();
  std::optional<size_t> symtab;
  for (size_t i = 1; i < shdrs.size(); ++i)
    if (shdrs[i].sh_type == SHT_SYMTAB) symtab = i;

  // Livepatch symbols: the name form, whether or not a relocation uses them.
  for (const ElfSymbol& s : syms) {
    if (s.st_shndx != kShnLivepatch) continue;
    if (auto why = malformed_symbol(s.name))
      return bad("{}: SHN_LIVEPATCH symbol's name is not '.klp.sym.<object>.<name>,<pos>': it {}",
                 sym_label(elf, symtab.value_or(0), s), *why);
  }

  // The .klp.rela sections, and which SHT_RELA sections are not.
  std::map<std::string_view, size_t> seen;
  for (size_t i = 1; i < shdrs.size(); ++i) {
    const Elf64_Shdr& sh = shdrs[i];
    const std::string_view name = elf.section_name(i);
    const bool named = name.starts_with(kKlpRelaPrefix);
    const bool flagged = (sh.sh_flags & kShfRelaLivepatch) != 0;
    if (!named && !flagged) continue;
    const std::string what = elf.describe_section(i);
    if (!named)
      return bad("{}: SHF_RELA_LIVEPATCH (0x{:x}) is set but the name does not start with '{}'", what,
                 kShfRelaLivepatch, kKlpRelaPrefix);
    if (sh.sh_type != SHT_RELA)
      return bad("{}: sh_type 0x{:x} is not SHT_RELA (0x4), as a '{}' section must be", what, sh.sh_type,
                 kKlpRelaPrefix);
    if (!flagged)
      return bad("{}: SHF_RELA_LIVEPATCH (0x{:x}) is not set, as a '{}' section must have it", what, kShfRelaLivepatch,
                 kKlpRelaPrefix);
    if (!(sh.sh_flags & SHF_ALLOC))
      return bad("{}: SHF_ALLOC is not set, as a '{}' section must have it", what, kKlpRelaPrefix);
    if (auto [it, inserted] = seen.emplace(name, i); !inserted)
      return bad("{}: duplicate section name (also {})", what, elf.describe_section(it->second));
    // ElfFile::create() has checked sh_info is a section with data.
    const size_t target = sh.sh_info;
    const std::string_view target_name = elf.section_name(target);
    const std::string_view rest = name.substr(kKlpRelaPrefix.size());
    if (target_name.empty() || rest.size() <= target_name.size() + 1 || !rest.ends_with(target_name) ||
        rest[rest.size() - target_name.size() - 1] != '.')
      return bad("{}: name is not '.klp.rela.<object>.{}' (<section> is the name of {}, which sh_info says it "
                 "applies to)",
                 what, ElfFile::printable(target_name), elf.describe_section(target));
    if (!(shdrs[target].sh_flags & SHF_ALLOC))
      return bad("{}: applies to {}, which is not allocated (no SHF_ALLOC)", what, elf.describe_section(target));
    if (target_name.starts_with(".livepatch."))
      return bad("{}: applies to {}; the livepatch sections are not relocated through '{}' sections", what,
                 elf.describe_section(target), kKlpRelaPrefix);
    out.sections.push_back(KlpRelaSection{
        .index = i, .target = target, .object = std::string(rest.substr(0, rest.size() - target_name.size() - 1))});
  }

  // Every relocation: livepatch symbols in .klp.rela sections only, and
  // only the section's object's. ElfFile::create() has checked the indexes.
  std::vector<const KlpRelaSection*> klp_of(shdrs.size(), nullptr);
  for (const KlpRelaSection& k : out.sections) klp_of[k.index] = &k;
  for (size_t i = 1; i < shdrs.size(); ++i) {
    if (shdrs[i].sh_type != SHT_RELA) continue;
    const std::string what = elf.describe_section(i);
    // A .klp.rela section is not loaded, so nothing may relocate it.
    if (const KlpRelaSection* t = klp_of[shdrs[i].sh_info])
      return bad("{}: applies to {}, a '{}' section, which is not loaded", what, elf.describe_section(t->index),
                 kKlpRelaPrefix);
    const auto relas = HS_TRY(elf.relocations(i));
    const KlpRelaSection* sec = klp_of[i];
    for (size_t r = 0; r < relas.size(); ++r) {
      const auto si = static_cast<u32>(ELF64_R_SYM(relas[r].r_info));
      if (si >= syms.size()) return bad("{}: relocation [index {}]: symbol index 0x{:x} is out of range", what, r, si);
      const ElfSymbol& s = syms[si];
      const std::string sname = ElfFile::printable(s.name);
      if (!sec) {
        if (s.st_shndx == kShnLivepatch)
          return bad("{}: relocation [index {}] at r_offset 0x{:x} uses livepatch symbol '{}' (SHN_LIVEPATCH), which "
                     "only '{}' sections may use",
                     what, r, relas[r].r_offset, sname, kKlpRelaPrefix);
        continue;
      }
      if (s.st_shndx != kShnLivepatch)
        return bad("{}: relocation [index {}] at r_offset 0x{:x} uses symbol [index {}] '{}', which is not a "
                   "livepatch symbol (st_shndx 0x{:x}, not SHN_LIVEPATCH 0x{:x})",
                   what, r, relas[r].r_offset, si, sname, s.st_shndx, kShnLivepatch);
      std::string_view body;
      const u64 pos = HS_TRY(split_pos(s.name, &body));  // well-formed: checked above
      const std::string prefix = sec->object + ".";
      if (!body.starts_with(prefix) || body.size() == prefix.size())
        return bad("{}: relocation [index {}] uses livepatch symbol '{}', which is not one of object '{}' that the "
                   "section names (expected '.klp.sym.{}.<name>,<pos>')",
                   what, r, sname, ElfFile::printable(sec->object), ElfFile::printable(sec->object));
      KlpSymbol ks{.object = sec->object,
                   .name = std::string(body.substr(prefix.size())),
                   .pos = pos,
                   .written = std::string(s.name)};
      if (auto [it, inserted] = out.symbols.try_emplace(si, std::move(ks));
          !inserted && it->second.object != sec->object)
        return bad("{}: relocation [index {}] uses livepatch symbol '{}' as one of object '{}', but another section "
                   "uses it as one of '{}'",
                   what, r, sname, ElfFile::printable(sec->object), ElfFile::printable(it->second.object));
    }
  }
  return out;
}

}  // namespace hs
