// ObjectSymbols: the symbols of one ELF object (executable or shared
// library) and the name forms a payload may use to pick one.
//
// Where the symbols come from, best first: the object's own .symtab (locals
// included, with the STT_FILE symbols that say which source file each local
// came from); the separate debug file found by build-id
// or .gnu_debuglink or from debuginfod (debug_file.h), whose .symtab
// describes the same addresses; the .dynsym (globals only) of a stripped object.
//
// Versioned names: in a .symtab, "memcpy@@GLIBC_2.14" (the default version) is
// found as "memcpy", "memcpy@GLIBC_2.2.5" (an old one) only by its full name;
// in a .dynsym, entries whose .gnu.version entry has the hidden bit are not
// found by name at all.
#include "elf/symbols.h"

#include <unistd.h>

#include <algorithm>

#include "elf/source_names.h"

namespace hs {
namespace {

constexpr u16 kVersymHidden = 0x8000;
constexpr size_t kSymbolizeWindow = 64;  // how far back symbolize() looks for an enclosing function

template <class... Args>
std::unexpected<Error> bad_target(fmt::format_string<Args...> f, Args&&... args) {
  return fail(ErrorKind::BadTarget, f, std::forward<Args>(args)...);
}

// Several definitions match: the resolver stops here instead of looking in
// the other objects.
template <class... Args>
std::unexpected<Error> ambiguous(fmt::format_string<Args...> f, Args&&... args) {
  return fail(ErrorKind::Ambiguous, f, std::forward<Args>(args)...);
}

bool counts(const ElfSymbol& s) {
  switch (s.type()) {
    case STT_FUNC:
    case STT_OBJECT:
    case STT_NOTYPE:
    case STT_TLS:
    case STT_GNU_IFUNC: break;
    default: return false;
  }
  if (s.st_shndx == SHN_UNDEF || s.st_shndx == SHN_ABS || s.st_shndx == SHN_COMMON) return false;
  return s.st_shndx < SHN_LORESERVE || s.st_shndx == SHN_XINDEX;
}

bool is_function(u8 type) { return type == STT_FUNC || type == STT_GNU_IFUNC; }

std::string_view basename_of(std::string_view p) {
  const size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// Parses the decimal position of "name,N"; nullopt if not all digits.
std::optional<u64> parse_position(std::string_view s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  u64 v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<u64>(c - '0');
  }
  return v;
}

// The first SHT_SYMTAB section of `elf`.
std::optional<size_t> first_symtab(const ElfFile& elf) {
  for (size_t i = 1; i < elf.sections().size(); ++i)
    if (elf.sections()[i].sh_type == SHT_SYMTAB) return i;
  return std::nullopt;
}

}  // namespace

Result<std::shared_ptr<ObjectSymbols>> ObjectSymbols::load(const ElfFile& elf, u64 bias) {
  return load(elf, bias, DebugSearch{});
}

Result<std::shared_ptr<ObjectSymbols>> ObjectSymbols::load(const ElfFile& elf, u64 bias,
                                                           const std::string& debug_root) {
  return load(elf, bias, DebugSearch{.dirs = {debug_root}, .debuginfod = false});
}

Result<std::shared_ptr<ObjectSymbols>> ObjectSymbols::load(const ElfFile& elf, u64 bias, const DebugSearch& search,
                                                           std::string_view object_path) {
  auto out = std::make_shared<ObjectSymbols>();
  out->path_ = elf.path();

  // Adds the definitions of one symbol table.
  auto add_table = [&](const ElfFile& file, size_t index) -> Status {
    const std::vector<ElfSymbol> syms = HS_TRY(file.symbols(index));
    // .gnu.version for a .dynsym: one u16 per symbol.
    ByteView versym;
    for (size_t i = 1; i < file.sections().size(); ++i) {
      const Elf64_Shdr& sh = file.sections()[i];
      if (sh.sh_type == SHT_GNU_versym && sh.sh_link == index && file.section_data(i).size() >= syms.size() * 2)
        versym = file.section_data(i);
    }
    u32 file_index = ~0u;
    for (const ElfSymbol& s : syms) {
      if (s.index == 0) continue;
      if (s.type() == STT_FILE) {
        if (s.name.empty()) {
          file_index = ~0u;  // the linker's own locals follow
        } else {
          out->files_.emplace_back(s.name);
          file_index = static_cast<u32>(out->files_.size() - 1);
        }
        continue;
      }
      if (!counts(s)) continue;
      Sym sym;
      sym.name = std::string(s.name);
      if (const size_t at = sym.name.find('@'); at != std::string::npos) {
        if (sym.name.compare(at, 2, "@@") == 0)
          sym.name.resize(at);  // the default version: found by its plain name
      }
      if (!versym.empty() && (load_le<u16>(versym.data() + 2 * s.index) & kVersymHidden))
        sym.hidden_version = true;
      sym.addr = s.type() == STT_TLS ? s.st_value : s.st_value + bias;
      sym.size = s.st_size;
      sym.bind = s.bind();
      sym.type = s.type();
      sym.file_index = s.bind() == STB_LOCAL ? file_index : ~0u;
      out->syms_.push_back(std::move(sym));
    }
    return {};
  };

  if (const auto symtab = first_symtab(elf)) {
    HS_CHECK_CTX(add_table(elf, *symtab), elf.path());
    out->source_ = "symtab";
  } else {
    DebugFileSearch dbg = find_debug_file(elf, object_path, search);
    if (dbg.found) {
      if (add_table(dbg.found->elf, dbg.found->symtab)) {
        out->source_ = "debug file " + dbg.found->path;
      } else {  // unusable after all: start again from the .dynsym
        out->syms_.clear();
        out->files_.clear();
        dbg.by_build_id.push_back(dbg.found->path + " (unreadable .symtab)");
      }
    }
    if (out->source_.empty()) {
      // Stripped, and no usable debug file: say so, and where it was
      // looked for, in every "not found".
      out->stripped_ = dbg.describe();
      if (auto dyn = elf.dynsym_index()) {
        HS_CHECK_CTX(add_table(elf, *dyn), elf.path());
        out->source_ = "dynsym";
      } else {
        out->source_ = "none";
      }
    }
  }

  // Indexes.
  const auto& syms = out->syms_;
  for (u32 i = 0; i < syms.size(); ++i) {
    if (!syms[i].hidden_version) out->by_name_.push_back(i);
    if (is_function(syms[i].type)) out->by_addr_.push_back(i);
  }
  std::stable_sort(out->by_name_.begin(), out->by_name_.end(),
                   [&](u32 a, u32 b) { return syms[a].name < syms[b].name; });
  std::stable_sort(out->by_addr_.begin(), out->by_addr_.end(), [&](u32 a, u32 b) {
    if (syms[a].addr != syms[b].addr) return syms[a].addr < syms[b].addr;
    return (syms[a].bind != STB_LOCAL) > (syms[b].bind != STB_LOCAL);
  });
  return out;
}

std::pair<const u32*, const u32*> ObjectSymbols::named(std::string_view name) const {
  struct Cmp {
    const std::vector<Sym>& syms;
    bool operator()(u32 a, std::string_view b) const { return syms[a].name < b; }
    bool operator()(std::string_view a, u32 b) const { return a < syms[b].name; }
  };
  auto [lo, hi] = std::equal_range(by_name_.begin(), by_name_.end(), name, Cmp{syms_});
  return {by_name_.data() + (lo - by_name_.begin()), by_name_.data() + (hi - by_name_.begin())};
}

TargetSymbol ObjectSymbols::target_symbol(const Sym& s) const {
  TargetSymbol t;
  t.addr = RemoteAddr(s.addr);
  t.size = s.size;
  t.object = path_;
  t.type = s.type;
  t.name = s.name;
  return t;
}

std::string ObjectSymbols::files_of(const std::vector<const Sym*>& syms) const {
  std::string out;
  for (const Sym* s : syms) {
    if (!out.empty()) out += ", ";
    out += s->file_index < files_.size() ? ElfFile::printable(files_[s->file_index]) : "?";
  }
  return out;
}

Result<TargetSymbol> ObjectSymbols::lookup(std::string_view name) const {
  if (name.starts_with(kKlpSymPrefix)) return lookup_klp(name);
  // "ns::f(int, char)" (source_names.cc): its ',' is no position.
  if (looks_demangled(name)) return lookup_demangled(name);
  if (const size_t hash = name.find('#'); hash != std::string_view::npos)
    return lookup_in_file(name.substr(0, hash), name.substr(hash + 1), name);
  if (const size_t comma = name.rfind(','); comma != std::string_view::npos) {
    const auto pos = parse_position(name.substr(comma + 1));
    if (!pos)
      return bad_target("invalid symbol position '{}' in '{}' (expected a decimal number)",
                        ElfFile::printable(name.substr(comma + 1)), ElfFile::printable(name));
    return lookup_nth(name.substr(0, comma), name, *pos);
  }
  return lookup_plain(name);
}

std::string ObjectSymbols::where() const {
  return stripped_.empty() ? path_ : fmt::format("{} ({})", path_, stripped_);
}

Result<TargetSymbol> ObjectSymbols::lookup_plain(std::string_view name) const {
  if (auto g = lookup_global(name)) return *g;
  std::vector<const Sym*> locals;
  for (auto [it, end] = named(name); it != end; ++it)
    if (syms_[*it].bind == STB_LOCAL) locals.push_back(&syms_[*it]);
  if (locals.size() == 1) return target_symbol(*locals[0]);
  const std::string n = ElfFile::printable(name);
  if (locals.empty()) return bad_target("symbol '{}' not found in {}", n, where());
  return ambiguous("ambiguous symbol '{}' in {}: {} local definitions ({}), use '{},N' or 'file.c#{}'", n, path_,
                    locals.size(), files_of(locals), n, n);
}

Result<TargetSymbol> ObjectSymbols::lookup_nth(std::string_view name, std::string_view written, u64 pos) const {
  std::vector<const Sym*> defs;
  for (auto [it, end] = named(name); it != end; ++it) defs.push_back(&syms_[*it]);
  const std::string w = ElfFile::printable(written), n = ElfFile::printable(name);
  if (defs.empty()) return bad_target("symbol '{}' not found in {}", w, where());
  if (pos == 0) {  // Linux: 0 = the name must be unique
    if (defs.size() == 1) return target_symbol(*defs[0]);
    return ambiguous("ambiguous symbol '{}' in {}: {} definitions ({}), use '{},N' or 'file.c#{}'", w, path_,
                      defs.size(), files_of(defs), n, n);
  }
  if (pos > defs.size())
    return bad_target("symbol '{}' not found in {}: '{}' has only {} definition{}", w, where(), n, defs.size(),
                      defs.size() == 1 ? "" : "s");
  return target_symbol(*defs[pos - 1]);
}

Result<TargetSymbol> ObjectSymbols::lookup_in_file(std::string_view file, std::string_view name,
                                                   std::string_view written) const {
  const std::string w = ElfFile::printable(written);
  if (file.empty() || name.empty()) return bad_target("invalid symbol '{}': expected 'file.c#name'", w);
  std::vector<bool> file_matches(files_.size());
  bool any_file = false;
  for (size_t i = 0; i < files_.size(); ++i) {
    const std::string_view f = files_[i];
    file_matches[i] = f == file || basename_of(f) == file || f == basename_of(file);
    any_file = any_file || file_matches[i];
  }
  if (!any_file)
    return bad_target("symbol '{}' not found in {}: no STT_FILE symbol '{}'", w, where(), ElfFile::printable(file));
  std::vector<const Sym*> found;
  for (auto [it, end] = named(name); it != end; ++it) {
    const Sym& s = syms_[*it];
    if (s.bind == STB_LOCAL && s.file_index < files_.size() && file_matches[s.file_index]) found.push_back(&s);
  }
  if (found.empty())
    return bad_target("symbol '{}' not found in {}: no local '{}' in '{}'", w, where(), ElfFile::printable(name),
                      ElfFile::printable(file));
  if (found.size() > 1)
    return ambiguous("ambiguous symbol '{}' in {}: {} local definitions ({}), use '{},N'", w, path_, found.size(),
                      files_of(found), ElfFile::printable(name));
  return target_symbol(*found[0]);
}

Result<TargetSymbol> ObjectSymbols::lookup_klp(std::string_view written) const {
  std::string_view body = written.substr(kKlpSymPrefix.size());
  u64 pos = 0;
  if (const size_t comma = body.rfind(','); comma != std::string_view::npos) {
    const auto p = parse_position(body.substr(comma + 1));
    if (!p)
      return bad_target("invalid symbol position '{}' in '{}' (expected a decimal number)",
                        ElfFile::printable(body.substr(comma + 1)), ElfFile::printable(written));
    pos = *p;
    body = body.substr(0, comma);
  }
  // OBJ may contain dots ("libc.so.6"), and so may the symbol ("foo.cold"):
  // the first split whose symbol part exists in this object wins.
  bool split = false;
  for (size_t dot = body.find('.'); dot != std::string_view::npos; dot = body.find('.', dot + 1)) {
    const std::string_view name = body.substr(dot + 1);
    if (dot == 0 || name.empty()) continue;
    split = true;
    auto [it, end] = named(name);
    if (it != end) return lookup_nth(name, written, pos);
  }
  if (!split) return bad_target("invalid symbol '{}': expected '.klp.sym.OBJ.name,N'", ElfFile::printable(written));
  return bad_target("symbol '{}' not found in {}", ElfFile::printable(written), where());
}

std::optional<TargetSymbol> ObjectSymbols::lookup_global(std::string_view name) const {
  const Sym* weak = nullptr;
  for (auto [it, end] = named(name); it != end; ++it) {
    const Sym& s = syms_[*it];
    if (s.bind == STB_GLOBAL || s.bind == STB_GNU_UNIQUE) return target_symbol(s);
    if (s.bind == STB_WEAK && !weak) weak = &s;
  }
  if (weak) return target_symbol(*weak);
  return std::nullopt;
}

std::optional<std::pair<std::string, TargetSymbol>> ObjectSymbols::symbolize(RemoteAddr addr) const {
  const u64 a = addr.value();
  // First function starting after a; look back from there.
  const auto upper = std::upper_bound(by_addr_.begin(), by_addr_.end(), a,
                                      [&](u64 v, u32 i) { return v < syms_[i].addr; });
  const auto contains = [&](const Sym& s) { return a >= s.addr && (a - s.addr < s.size || a == s.addr); };
  const Sym* best = nullptr;
  size_t looked = 0;
  for (auto it = upper; it != by_addr_.begin() && looked < kSymbolizeWindow; ++looked) {
    --it;
    const Sym& s = syms_[*it];
    if (best && s.addr != best->addr) break;  // only aliases of the innermost match remain interesting
    if (contains(s)) best = &s;               // sorted non-local first: the last seen here wins
  }
  if (!best) return std::nullopt;
  return std::make_pair(best->name, target_symbol(*best));
}

}  // namespace hs
