// Symbol resolution for a payload being linked into a live process.
//
// The loader (payload/loader.h) asks a SymbolResolver for every symbol a
// payload leaves undefined and for every function it replaces. Here they are
// answered from the process, in the spec's order: the target object's own
// symbols (locals included, and Linux's ".klp.sym.OBJ.NAME,POS" form naming
// any mapped object), then the exports of payloads already loaded, then the
// other objects' globals in link-map order.
//
// An indirect function (STT_GNU_IFUNC), as a function to replace or as a
// symbol a payload uses, resolves to the implementation the target's own
// resolver chose, read from the process (engine/ifunc.h).
#pragma once

#include <string_view>
#include <vector>

#include "engine/registry.h"
#include "payload/loader.h"
#include "process/objects.h"

namespace hs {

class ProcessResolver final : public SymbolResolver {
 public:
  // `target` is the object the payload patches, one of `objs` (the process's
  // objects in link-map order); `state` holds the payloads loaded already.
  ProcessResolver(const MappedObject& target, const std::vector<MappedObject>& objs, const RegistryState& state,
                  const Process& proc)
      : target_(target), objs_(objs), state_(state), proc_(proc) {}

  Result<TargetSymbol> resolve_function(std::string_view name) override;
  Result<TargetSymbol> resolve_symbol(std::string_view name) override;
  std::optional<TargetSymbol> program_definition(std::string_view name) override;
  // In the mapped object whose file name is sym.object (engine/klp_resolve.cc).
  Result<TargetSymbol> resolve_klp(const KlpSymbol& sym) override;

 private:
  const MappedObject& target_;
  const std::vector<MappedObject>& objs_;
  const RegistryState& state_;
  const Process& proc_;
};

}  // namespace hs
