// Source names (source_names.h): demangling, GCC's clone suffixes, and the
// lookups of ObjectSymbols that use them (lookup_function, the demangled
// form of lookup, cold_parts).
//
// Demangling is abi::__cxa_demangle, the compiler runtime's: no new
// dependency, and the same spelling gdb, c++filt and the target's own
// libstdc++ print (libiberty's cplus_demangle could drop return types and
// parameters for us, but would be one more library to build against for
// what split_demangled does in a page).
//
// Cost: nothing until a name needs it. The first demangled or source-name
// lookup in an object demangles each "_Z" symbol once (one reused buffer)
// and keeps a sorted table of hashes of each spelling; later lookups are a
// binary search. See DESIGN.md for the figures.
#include "elf/source_names.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <set>

#include "elf/symbols.h"

namespace hs {

namespace {

bool is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

bool is_function(u8 type) { return type == STT_FUNC || type == STT_GNU_IFUNC; }

bool all_digits(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) { return c >= '0' && c <= '9'; });
}

// The operator characters after "operator" in a demangled name: skipped, so
// "operator<" does not open a template and "operator()" is no parameter list.
size_t skip_operator(std::string_view s, size_t i) {
  if (s.substr(i).starts_with("()")) return i + 2;
  constexpr std::string_view kOpChars = "<>=!+-*/%^&|~,[]";
  while (i < s.size() && kOpChars.find(s[i]) != std::string_view::npos) ++i;
  return i;
}

// True if the word "operator" starts at i.
bool operator_at(std::string_view s, size_t i) {
  return s.substr(i).starts_with("operator") && (i == 0 || !is_ident(s[i - 1])) &&
         (i + 8 == s.size() || !is_ident(s[i + 8]));
}

}  // namespace

std::optional<CloneName> split_clone(std::string_view name) {
  static constexpr std::string_view kKinds[] = {"isra", "constprop", "part", "cold", "lto_priv", "localalias",
                                                "specialized"};
  const size_t first = name.find('.');
  if (first == 0 || first == std::string_view::npos) return std::nullopt;
  CloneName out{name.substr(0, first), name.substr(first), false};
  // Each piece after a '.' is a kind, optionally followed by a number piece.
  std::string_view rest = name.substr(first + 1);
  bool expect_kind = true;
  while (true) {
    const size_t dot = rest.find('.');
    const std::string_view piece = rest.substr(0, dot);
    if (std::ranges::find(kKinds, piece) != std::end(kKinds)) {
      out.cold = piece == "cold";
      expect_kind = false;
    } else if (!expect_kind && all_digits(piece)) {
      expect_kind = true;
    } else {
      return std::nullopt;
    }
    if (dot == std::string_view::npos) break;
    rest = rest.substr(dot + 1);
  }
  return out;
}

std::optional<std::string> demangle(std::string_view mangled) {
  if (!mangled.starts_with("_Z")) return std::nullopt;
  int status = 0;
  char* d = abi::__cxa_demangle(std::string(mangled).c_str(), nullptr, nullptr, &status);
  if (status != 0 || !d) {
    std::free(d);
    return std::nullopt;
  }
  std::string out(d);
  std::free(d);
  return out;
}

DemangledName split_demangled(std::string_view d) {
  DemangledName out;
  out.full = std::string(d);
  // The parameter list: the last '(' at depth 0 whose group is not followed
  // by "::" (that would be "(anonymous namespace)::x").
  size_t params = std::string_view::npos;
  int angle = 0, paren = 0;
  size_t open = 0;
  for (size_t i = 0; i < d.size();) {
    if (operator_at(d, i)) {
      i = skip_operator(d, i + 8);
      continue;
    }
    const char c = d[i];
    if (c == '<') ++angle;
    if (c == '>' && angle > 0) --angle;
    if (angle == 0 && c == '(') {
      if (paren++ == 0) open = i;
    }
    if (angle == 0 && c == ')' && paren > 0 && --paren == 0 && !d.substr(i + 1).starts_with("::")) params = open;
    ++i;
  }
  const std::string_view name = params == std::string_view::npos ? d : d.substr(0, params);
  // A template function's return type: up to the last space at depth 0
  // before the name (not the one of "operator int").
  size_t start = 0;
  angle = paren = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    if (operator_at(name, i)) break;
    const char c = name[i];
    if (c == '<') ++angle;
    if (c == '>' && angle > 0) --angle;
    if (c == '(') ++paren;
    if (c == ')' && paren > 0) --paren;
    if (c == ' ' && angle == 0 && paren == 0) start = i + 1;
  }
  out.qualified = std::string(name.substr(start));
  out.signature = std::string(d.substr(start));
  return out;
}

std::string normalize_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool space = false;
  for (char c : name) {
    if (c == ' ' || c == '\t' || c == '\n') {
      space = true;
      continue;
    }
    if (space && !out.empty() && is_ident(out.back()) && is_ident(c)) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

bool looks_demangled(std::string_view name) {
  return name.find("::") != std::string_view::npos || name.find_first_of("(< ") != std::string_view::npos;
}

size_t edit_distance(std::string_view a, std::string_view b, size_t limit) {
  const size_t diff = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (diff > limit) return limit + 1;
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0], best = i;
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
      best = std::min(best, row[j]);
    }
    if (best > limit) return limit + 1;
  }
  return std::min(row[b.size()], limit + 1);
}

// ---- ObjectSymbols' source-name lookups ----

// One symbol that has a source name other than its own: a C++ one (demangled)
// or a GCC copy (clone suffix), or both.
struct ObjectSymbols::SourceIndex {
  struct Entry {
    u32 sym = 0;
    std::string full;       // demangled (C++), else the name without its clone suffix
    std::string qualified;  // without return type and parameters (C: the same as full)
    std::string signature;  // without return type
    std::string base;       // the symbol's name without its clone suffix (mangled for C++)
    std::string suffix;     // ".isra.0", ...; empty if none
    bool cold = false;
    bool cxx = false;
  };
  std::vector<Entry> entries;
  std::vector<std::pair<size_t, u32>> keys;  // (hash of a normalised spelling, entry), sorted

  // The normalised spellings an entry answers to.
  static std::vector<std::string> spellings(const Entry& e) {
    std::vector<std::string> s{normalize_name(e.full)};
    for (const std::string* x : {&e.signature, &e.qualified, &e.base}) {
      std::string n = normalize_name(*x);
      if (std::ranges::find(s, n) == s.end()) s.push_back(std::move(n));
    }
    return s;
  }
};

const ObjectSymbols::SourceIndex& ObjectSymbols::source_index() const {
  std::call_once(source_once_, [this] {
    auto idx = std::make_shared<SourceIndex>();
    size_t cap = 0;
    char* buf = nullptr;  // one buffer for every demangling (__cxa_demangle reallocates it)
    for (u32 i = 0; i < syms_.size(); ++i) {
      if (syms_[i].hidden_version) continue;
      const std::string& n = syms_[i].name;
      const auto clone = split_clone(n);
      const std::string_view base = clone ? clone->base : std::string_view(n);
      const bool cxx = base.starts_with("_Z");
      if (!cxx && !clone) continue;
      SourceIndex::Entry e;
      e.sym = i;
      e.base = std::string(base);
      e.suffix = clone ? std::string(clone->suffix) : std::string();
      e.cold = clone && clone->cold;
      if (cxx) {
        int status = 0;
        char* d = abi::__cxa_demangle(e.base.c_str(), buf, &cap, &status);
        if (status == 0 && d) {
          buf = d;
          DemangledName dn = split_demangled(d);
          e.full = std::move(dn.full);
          e.signature = std::move(dn.signature);
          e.qualified = std::move(dn.qualified);
          e.cxx = true;
        }
      }
      if (!e.cxx) e.full = e.signature = e.qualified = e.base;
      const u32 at = static_cast<u32>(idx->entries.size());
      for (const std::string& s : SourceIndex::spellings(e)) idx->keys.emplace_back(std::hash<std::string>{}(s), at);
      idx->entries.push_back(std::move(e));
    }
    std::free(buf);
    std::ranges::sort(idx->keys);
    source_names_ = std::move(idx);
  });
  return *source_names_;
}

Result<TargetSymbol> ObjectSymbols::lookup_demangled(std::string_view written) const {
  // A symbol literally named so (none a compiler emits) still wins.
  if (auto [it, end] = named(written); it != end) return lookup_plain(written);
  return lookup_source(written, false, false, {});
}

Result<TargetSymbol> ObjectSymbols::lookup_function(std::string_view name) const {
  const std::string w = ElfFile::printable(name);
  const bool plain = !looks_demangled(name) && !name.starts_with(kKlpSymPrefix) &&
                     name.find_first_of("#,") == std::string_view::npos;
  Result<TargetSymbol> r = looks_demangled(name) ? [&]() -> Result<TargetSymbol> {
    if (auto [it, end] = named(name); it != end) return lookup_plain(name);
    return lookup_source(name, true, true, {});
  }()
                                                 : lookup(name);
  if (r) {
    if (auto c = split_clone(r->name); c && c->cold)
      return fail(ErrorKind::BadTarget,
                  "symbol '{}' in {} is the cold part GCC split out of '{}{}', not a function entry: name '{}{}'", w,
                  path_, ElfFile::printable(c->base), c->suffix.substr(0, c->suffix.rfind(".cold")),
                  ElfFile::printable(c->base), c->suffix.substr(0, c->suffix.rfind(".cold")));
    return r;
  }
  if (!plain || r.error().kind() != ErrorKind::BadTarget) return r;
  // A plain name nothing is called: a C++ function's name, or a GCC copy's.
  return lookup_source(name, true, true, r.error().message());
}

Result<TargetSymbol> ObjectSymbols::lookup_source(std::string_view written, bool functions_only, bool clones,
                                                  std::string_view not_found) const {
  const SourceIndex& idx = source_index();
  const std::string key = normalize_name(written);
  const size_t h = std::hash<std::string>{}(key);
  std::vector<const SourceIndex::Entry*> exact, copies, cold;
  for (auto it = std::ranges::lower_bound(idx.keys, std::make_pair(h, u32{0})); it != idx.keys.end() && it->first == h;
       ++it) {
    const SourceIndex::Entry& e = idx.entries[it->second];
    if (const auto sp = SourceIndex::spellings(e); std::ranges::find(sp, key) == sp.end()) continue;
    if (functions_only && !is_function(syms_[e.sym].type)) continue;
    (e.cold ? cold : e.suffix.empty() ? exact : copies).push_back(&e);
  }
  const std::string w = ElfFile::printable(written);
  // How a candidate is shown: its source name, and its own name when that differs.
  auto shown = [&](const SourceIndex::Entry& e) {
    const Sym& s = syms_[e.sym];
    std::string out = e.cxx ? fmt::format("'{}'", ElfFile::printable(e.full)) : std::string();
    if (!e.suffix.empty() || !e.cxx)
      out = e.cxx ? fmt::format("{} as {}", out, ElfFile::printable(s.name)) : fmt::format("'{}'", ElfFile::printable(s.name));
    return out;
  };
  // One function per address (aliases: a constructor's C1 and C2, a local
  // alias): global definitions first.
  auto pick = [&](std::vector<const SourceIndex::Entry*>& c, std::string_view what) -> std::optional<Result<TargetSymbol>> {
    if (c.empty()) return std::nullopt;
    std::ranges::stable_sort(c, [&](const auto* a, const auto* b) {
      const Sym &x = syms_[a->sym], &y = syms_[b->sym];
      if (x.addr != y.addr) return x.addr < y.addr;
      return (x.bind != STB_LOCAL) > (y.bind != STB_LOCAL);
    });
    std::vector<const SourceIndex::Entry*> distinct;
    for (const auto* e : c)
      if (distinct.empty() || syms_[distinct.back()->sym].addr != syms_[e->sym].addr) distinct.push_back(e);
    if (distinct.size() == 1) return Result<TargetSymbol>(target_symbol(syms_[distinct[0]->sym]));
    std::vector<std::string> names;
    for (const auto* e : distinct) names.push_back(shown(*e));
    // Same spelling twice (statics of two files): say which file.
    const std::vector<std::string> plain_names = names;
    for (size_t i = 0; i < names.size(); ++i)
      if (std::ranges::count(plain_names, plain_names[i]) > 1) {
        const Sym& s = syms_[distinct[i]->sym];
        if (s.file_index < files_.size()) names[i] += fmt::format(" in {}", ElfFile::printable(files_[s.file_index]));
      }
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    return Result<TargetSymbol>(fail(ErrorKind::Ambiguous, "ambiguous symbol '{}' in {}: {} {}: {}; name one of them", w,
                                     path_, distinct.size(), what, list));
  };
  if (auto r = pick(exact, functions_only ? "functions match" : "symbols match")) return std::move(*r);
  if (clones) {
    if (auto r = pick(copies, "copies of it were made by GCC")) return std::move(*r);
    if (!cold.empty())
      return fail(ErrorKind::BadTarget,
                  "'{}' has no entry point in {}: only its cold part '{}' is left (GCC inlined the rest into its "
                  "callers)",
                  w, path_, ElfFile::printable(syms_[cold[0]->sym].name));
  }
  std::string msg = not_found.empty() ? fmt::format("symbol '{}' not found in {}", w, where()) : std::string(not_found);
  return fail(ErrorKind::BadTarget, "{}{}", msg, closest(written, functions_only));
}

std::string ObjectSymbols::closest(std::string_view written, bool functions_only) const {
  const SourceIndex& idx = source_index();
  const std::string key = normalize_name(written);
  const bool with_params = key.find('(') != std::string::npos;
  std::vector<std::pair<size_t, std::string>> found;  // (distance, shown)
  auto offer = [&](size_t d, std::string shown) {
    if (std::ranges::find(found, shown, &std::pair<size_t, std::string>::second) == found.end())
      found.emplace_back(d, std::move(shown));
  };
  // The same name with other parameters: every overload.
  if (with_params) {
    const std::string q = normalize_name(split_demangled(written).qualified);
    for (const auto& e : idx.entries)
      if (e.cxx && e.suffix.empty() && normalize_name(e.qualified) == q) offer(0, e.full);
    if (!found.empty()) {
      std::string out = "; closest:";
      for (size_t i = 0; i < found.size() && i < 6; ++i) out += fmt::format("{} '{}'", i ? "," : "", ElfFile::printable(found[i].second));
      return out;
    }
  }
  const size_t limit = std::max<size_t>(2, key.size() / 4);
  for (const auto& e : idx.entries) {
    if (e.cold || !e.suffix.empty() || !e.cxx || (functions_only && !is_function(syms_[e.sym].type))) continue;
    const std::string cand = normalize_name(with_params ? e.signature : e.qualified);
    if (const size_t d = edit_distance(key, cand, limit); d <= limit) offer(d, with_params ? e.signature : e.qualified);
  }
  if (!with_params)
    for (u32 i : by_addr_) {  // functions only: C names close to a data symbol's are not offered
      const Sym& s = syms_[i];
      if (s.name.starts_with("_Z") || split_clone(s.name)) continue;
      if (const size_t d = edit_distance(key, s.name, limit); d <= limit) offer(d, s.name);
    }
  if (found.empty()) return {};
  // The nearest ones only (a tie lists each).
  const size_t best = std::ranges::min(found, {}, &std::pair<size_t, std::string>::first).first;
  std::erase_if(found, [&](const auto& f) { return f.first != best; });
  std::string out = "; closest:";
  for (size_t i = 0; i < found.size() && i < 4; ++i) out += fmt::format("{} '{}'", i ? "," : "", ElfFile::printable(found[i].second));
  return out;
}

std::vector<std::string> ObjectSymbols::copies_of(std::string_view symbol) const {
  const std::string prefix = std::string(symbol) + ".";
  std::vector<std::string> out;
  auto it = std::ranges::lower_bound(by_name_, std::string_view(prefix), {},
                                     [&](u32 i) -> std::string_view { return syms_[i].name; });
  for (; it != by_name_.end() && std::string_view(syms_[*it].name).starts_with(prefix); ++it) {
    const Sym& s = syms_[*it];
    const auto clone = split_clone(s.name);
    if (!clone || clone->cold || clone->base != symbol || !is_function(s.type)) continue;
    if (std::ranges::find(out, s.name) == out.end()) out.push_back(s.name);
  }
  return out;
}

std::vector<RemoteRange> ObjectSymbols::cold_parts(std::string_view symbol, RemoteAddr entry) const {
  const Sym* fn = nullptr;
  for (auto [it, end] = named(symbol); it != end; ++it)
    if (syms_[*it].addr == entry.value()) fn = &syms_[*it];
  const std::string prefix = std::string(symbol) + ".cold";
  std::vector<const Sym*> parts, same_file, unclaimed;
  auto it = std::ranges::lower_bound(by_name_, std::string_view(prefix), {}, [&](u32 i) -> std::string_view { return syms_[i].name; });
  for (; it != by_name_.end() && std::string_view(syms_[*it].name).starts_with(prefix); ++it) {
    const Sym& s = syms_[*it];
    const std::string_view rest = std::string_view(s.name).substr(prefix.size());
    if (!(rest.empty() || (rest.starts_with('.') && all_digits(rest.substr(1))))) continue;
    if (!is_function(s.type)) continue;
    parts.push_back(&s);
    if (fn && fn->bind == STB_LOCAL && s.file_index == fn->file_index) same_file.push_back(&s);
    // A global function's cold part: one in a file with no static of the same name.
    bool claimed = false;
    for (auto [jt, jend] = named(symbol); jt != jend; ++jt)
      claimed = claimed || (syms_[*jt].bind == STB_LOCAL && syms_[*jt].file_index == s.file_index);
    if (!claimed) unclaimed.push_back(&s);
  }
  // When the files cannot tell, all of them: guarding too much only delays.
  const std::vector<const Sym*>& chosen = fn && fn->bind == STB_LOCAL ? (same_file.empty() ? parts : same_file)
                                                                      : (unclaimed.empty() ? parts : unclaimed);
  std::vector<RemoteRange> out;
  for (const Sym* s : chosen) out.push_back({RemoteAddr(s->addr), RemoteAddr(s->addr + std::max<u64>(s->size, 1))});
  return out;
}

}  // namespace hs
