// Resolves a payload's symbols against a live process: see resolver.h.
#include "engine/resolver.h"

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <optional>

#include "process/process.h"

namespace hs {

namespace {

std::string_view basename(std::string_view p) {
  auto slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

}  // namespace

// The tool runs on the same machine: if it has the same library (same
// build-id) loaded, the implementation its own dynamic linker picked sits at
// the same offset in the target's copy.
Result<TargetSymbol> resolve_ifunc(const MappedObject& obj, std::string_view name, const TargetSymbol& sym) {
  static const auto self = []() -> std::optional<std::vector<MappedObject>> {
    auto me = Process::open(getpid());
    if (!me) return std::nullopt;
    auto objs = mapped_objects(*me);
    if (!objs) return std::nullopt;
    return std::move(*objs);
  }();
  if (self) {
    for (const auto& mine : *self) {
      if (mine.build_id != obj.build_id) continue;
      void* impl = dlsym(RTLD_DEFAULT, std::string(name).c_str());
      RemoteAddr at(reinterpret_cast<u64>(impl));
      if (impl && mine.span.contains(at)) {
        TargetSymbol out = sym;
        out.addr = obj.bias + (at - mine.bias);
        out.type = STT_FUNC;
        return out;
      }
    }
  }
  return fail(ErrorKind::BadTarget,
              "symbol '{}' in {} is an indirect function (STT_GNU_IFUNC) and hotsplice cannot resolve it (the tool "
              "does not have the same {} loaded)",
              name, obj.path, obj.path);
}

Result<TargetSymbol> ProcessResolver::resolve_function(std::string_view name) {
  auto syms = HS_TRY(target_.symbols());
  return syms->lookup_function(name);  // also by source name (demangled, GCC's renamed copies)
}

Result<TargetSymbol> ProcessResolver::resolve_symbol(std::string_view name) {
  // Linux's ".klp.sym.OBJ.NAME,POS" names the object itself.
  constexpr std::string_view kKlpSym = ".klp.sym.";
  if (name.starts_with(kKlpSym)) {
    std::string_view rest = name.substr(kKlpSym.size());
    for (const auto& o : objs_) {
      std::string_view base = basename(o.path);
      if (rest.starts_with(base) && rest.size() > base.size() && rest[base.size()] == '.') {
        auto syms = HS_TRY(o.symbols());
        return syms->lookup(name);
      }
    }
    return fail(ErrorKind::BadTarget, "unresolved symbol '{}': no such object is mapped", name);
  }
  // 1. the target object, locals included
  auto syms = HS_TRY(target_.symbols());
  auto own = syms->lookup(name);
  if (own && own->type == STT_GNU_IFUNC) return resolve_ifunc(target_, name, *own);
  if (own) return own;
  if (own.error().kind() == ErrorKind::Ambiguous) return own;
  // 2. globals of payloads already loaded in this process, oldest first
  for (const auto& p : state_.payloads)
    for (const auto& [n, addr] : p.exports)
      if (n == name) return TargetSymbol{RemoteAddr(addr), 0, "payload '" + p.name + "'"};
  // 3. the other objects, in link-map order
  for (const auto& o : objs_) {
    if (&o == &target_) continue;
    auto os = o.symbols();
    if (!os) continue;  // an object we cannot read cannot provide symbols
    if (auto s = (*os)->lookup_global(name)) {
      if (s->type == STT_GNU_IFUNC) return resolve_ifunc(o, name, *s);
      return *s;
    }
  }
  return fail(ErrorKind::BadTarget, "unresolved symbol '{}'", name);
}

}  // namespace hs
