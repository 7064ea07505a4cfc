// The shadow-variable table's home in a target process (the runtime itself
// is include/hotsplice/shadow.h, compiled into each payload that uses it).
//
// Payload code refers to the undefined symbol `hotsplice_shadow_root_v1`;
// ShadowResolver answers it with the address of a small private memfd
// mapping "hotsplice-shadow" (read-write, page-rounded struct
// hotsplice_shadow_root: header, futex word, hash buckets), made the first
// time a payload of the process needs it and never unmapped by hotsplice.
// Every payload of the process, whatever object it patches, so resolves to
// the same table; unloading any payload leaves it (and the shadows, blocks of
// the target's malloc) alone. The process's exit or exec drops it; a fork
// copies it (private, like the registry), so parent and child each keep
// their own shadows. recover leaves it alone.
//
// Made with the process running, during the link of the first upload that
// needs it (a link that then fails leaves it: empty, valid, reused). A tool
// killed between the mmap and the header write leaves a mapping whose header
// is all zero; the next upload that needs it writes the header. A mapping of
// that name with the wrong size or protection, a header that is neither zero
// nor ours, or two such mappings: refused (BadTarget, naming the PID; `recover` does not
// rebuild it, it holds the target's data).
//
// A payload built for another layout (`hotsplice_shadow_root_vN`, N != 1)
// is refused at upload naming the symbol and the version this hotsplice
// provides.
#pragma once

#include <optional>
#include <string_view>

#include "payload/loader.h"
#include "process/process.h"
#include "process/thread_group.h"

namespace hs {

inline constexpr std::string_view kShadowMemfdName = "hotsplice-shadow";
inline constexpr std::string_view kShadowRootSymbol = "hotsplice_shadow_root_v1";
inline constexpr std::string_view kShadowRootPrefix = "hotsplice_shadow_root_v";

// Size of the mapping (page multiple).
u64 shadow_mapping_size();

// The table's mapping in `proc`, if there is one (checked as above).
Result<std::optional<RemoteAddr>> find_shadow_table(const Process& proc);

// The table's address, mapping it (and writing its header) if needed.
Result<RemoteAddr> ensure_shadow_table(const Process& proc, ThreadGroup& group);

// Answers the shadow runtime's symbols, passes every other one to `inner`.
class ShadowResolver final : public ForwardingResolver {
 public:
  ShadowResolver(SymbolResolver& inner, const Process& proc, ThreadGroup& group)
      : ForwardingResolver(inner), proc_(proc), group_(group) {}
  Result<TargetSymbol> resolve_symbol(std::string_view name) override;

 private:
  const Process& proc_;
  ThreadGroup& group_;
  std::optional<RemoteAddr> table_;
};

}  // namespace hs
