// Resolves a payload's symbols against a live process: see resolver.h.
#include "engine/resolver.h"

#include <elf.h>

#include <algorithm>

#include "engine/ifunc.h"

namespace hs {

namespace {

std::string_view basename(std::string_view p) {
  auto slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

}  // namespace

Result<TargetSymbol> ProcessResolver::resolve_function(std::string_view name) {
  auto syms = HS_TRY(target_.symbols());
  auto sym = HS_TRY(syms->lookup_function(name));  // also by source name (demangled, GCC's renamed copies)
  if (sym.type != STT_GNU_IFUNC) return sym;
  auto impl = HS_TRY(ifunc_implementation(proc_, objs_, target_, name, sym));
  HS_CHECK(check_entry_not_branched_into(target_, name, impl, proc_.pid()));
  return impl;
}

Result<TargetSymbol> ProcessResolver::resolve_symbol(std::string_view name) {
  // Linux's ".klp.sym.OBJ.NAME,POS" names the object itself.
  // Linux's ".klp.sym.OBJ.NAME,POS" written as a plain undefined symbol:
  // OBJ is the longest mapped file name the rest starts with (so
  // "libfoo.so.1" wins over "libfoo.so"), then resolved as a SHN_LIVEPATCH
  // symbol is (klp_resolve.cc).
  constexpr std::string_view kKlpSym = ".klp.sym.";
  if (name.starts_with(kKlpSym)) {
    std::string_view rest = name.substr(kKlpSym.size());
    std::string_view object;
    for (const auto& o : objs_) {
      std::string_view base = basename(o.path);
      if (base.size() > object.size() && rest.size() > base.size() + 1 && rest.starts_with(base) &&
          rest[base.size()] == '.')
        object = base;
    }
    if (object.empty()) return fail(ErrorKind::BadTarget, "unresolved symbol '{}': no such object is mapped", name);
    std::string_view sym_pos = rest.substr(object.size() + 1);
    const size_t comma = sym_pos.rfind(',');
    u64 pos = 0;
    const std::string_view digits = comma == std::string_view::npos ? std::string_view{} : sym_pos.substr(comma + 1);
    if (digits.empty() || digits.size() > 9 || !std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; }))
      return fail(ErrorKind::BadTarget, "invalid symbol '{}': expected '.klp.sym.OBJ.name,N'", name);
    for (char c : digits) pos = pos * 10 + u64(c - '0');
    return resolve_klp(KlpSymbol{std::string(object), std::string(sym_pos.substr(0, comma)), pos, std::string(name)});
  }
  // 1. the target object, locals included
  auto syms = HS_TRY(target_.symbols());
  auto own = syms->lookup(name);
  if (own && own->type == STT_GNU_IFUNC) return ifunc_implementation(proc_, objs_, target_, name, *own);
  if (own) return own;
  if (own.error().kind() == ErrorKind::Ambiguous) return own;
  // 2. globals of payloads already loaded in this process, oldest first
  for (const auto& p : state_.payloads)
    for (const auto& [n, addr] : p.exports)
      if (n == name) return TargetSymbol{RemoteAddr(addr), 0, "payload '" + p.name + "'"};
  // 3. the other objects, in link-map order
  for (const auto& o : objs_) {
    if (&o == &target_) continue;
    auto os = o.global_symbols();
    if (!os) continue;  // an object we cannot read cannot provide symbols
    if (auto s = (*os)->lookup_global(name)) {
      if (s->type == STT_GNU_IFUNC) return ifunc_implementation(proc_, objs_, o, name, *s);
      return *s;
    }
  }
  if (!syms->stripped().empty())  // its locals may be what is missing: say where they were looked for
    return fail(ErrorKind::BadTarget, "unresolved symbol '{}': not in {} ({}), any loaded payload or the other objects",
                name, syms->path(), syms->stripped());
  return fail(ErrorKind::BadTarget, "unresolved symbol '{}'", name);
}

// A weak definition of the payload that the program has as well: the
// target object's global, weak or unique symbol of that name (hidden ones
// included: a program built with -fvisibility=hidden keeps its typeinfo and
// static locals so in .symtab), else the first other object's in link-map
// order. An indirect function or a TLS symbol is not an address to use: the
// payload keeps its copy.
std::optional<TargetSymbol> ProcessResolver::program_definition(std::string_view name) {
  auto pick = [&](const MappedObject& o) -> std::optional<TargetSymbol> {
    auto os = o.symbols();
    if (!os) return std::nullopt;
    auto s = (*os)->lookup_global(name);
    if (!s || s->type == STT_GNU_IFUNC || s->type == STT_TLS) return std::nullopt;
    return s;
  };
  if (auto s = pick(target_)) return s;
  for (const auto& o : objs_)
    if (&o != &target_)
      if (auto s = pick(o)) return s;
  return std::nullopt;
}

}  // namespace hs
