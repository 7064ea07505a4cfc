// Resolving a payload's Linux livepatch symbols (SHN_LIVEPATCH,
// ".klp.sym.<object>.<name>,<pos>", payload/klp.h) against a live process:
// <object> is the file name of a mapped object (the executable's, or a shared
// library's such as "libc.so.6"), which must be mapped exactly once; <name>
// is looked up there, locals included, the <pos>-th definition (0: the only
// one).
#include <elf.h>

#include "engine/ifunc.h"
#include "engine/resolver.h"

namespace hs {

Result<TargetSymbol> ProcessResolver::resolve_klp(const KlpSymbol& sym) {
  const std::string written = ElfFile::printable(sym.written);
  const auto file_name = [](std::string_view path) {
    const size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
  };
  const MappedObject* found = nullptr;
  std::string all, same;
  for (const MappedObject& o : objs_) {
    const std::string_view name = file_name(o.path);
    all += fmt::format("{}{}", all.empty() ? "" : ", ", ElfFile::printable(name));
    if (name != sym.object) continue;
    same += fmt::format("{}{}", same.empty() ? "" : ", ", ElfFile::printable(o.path));
    if (found)
      return fail(ErrorKind::BadTarget, "livepatch symbol '{}': more than one mapped object is named '{}' ({})",
                  written, ElfFile::printable(sym.object), same);
    found = &o;
  }
  if (!found)
    return fail(ErrorKind::BadTarget, "livepatch symbol '{}': no object named '{}' is mapped (mapped: {})", written,
                ElfFile::printable(sym.object), all);
  auto syms = HS_TRY(found->symbols());
  TargetSymbol ts = HS_TRY(syms->lookup_position(sym.name, sym.pos, sym.written));
  if (ts.type == STT_GNU_IFUNC) return ifunc_implementation(proc_, objs_, *found, sym.name, ts);
  return ts;
}

}  // namespace hs
