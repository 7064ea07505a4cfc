// Thread-local variables of a live process, for payloads that use them.
//
// A thread-local symbol of the target is (object, offset in the object's TLS
// block). To reach it from payload code the loader needs, per object, the
// module ID the dynamic linker gave it (for __tls_get_addr) and, where the
// block sits at the same distance below the thread pointer in every thread
// (static TLS), that distance (for initial-exec and local-exec code). Both
// are read from the process itself, never guessed: `dlinfo` with
// RTLD_DI_TLS_MODID and RTLD_DI_TLS_DATA (documented glibc requests) is
// called on one borrowed thread, with the object's `struct link_map` from
// the target's link map as the handle (what dlopen returns in glibc), and the
// block's address is compared with that thread's thread pointer (fs_base
// from ptrace). docs/DESIGN.md, "Thread-local storage", says why this way.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "payload/loader.h"
#include "process/objects.h"
#include "process/thread_group.h"

namespace hs {

// The TP offset of a TLS block found at `block` in a thread whose thread
// pointer is `fs_base`, if the block is static TLS: it lies below the
// thread pointer, inside the one mapping that also holds the thread pointer
// (glibc allocates a thread's static TLS together with its thread control
// block: in a new thread's stack mapping, in the initial thread's startup
// allocation; dynamic blocks come from malloc, never from there). nullopt:
// dynamic (or not allocated in that thread).
std::optional<i64> static_tls_offset(u64 fs_base, u64 block, u64 memsz, std::span<const MapEntry> maps);

// A SymbolResolver that answers resolve_tls() from the process and passes
// everything else to `inner`. The first thread-local symbol of each object
// costs one borrowed thread and two remote calls (the others keep running);
// objects are asked at most once.
class TlsResolver final : public ForwardingResolver {
 public:
  TlsResolver(SymbolResolver& inner, ThreadGroup& group, const Process& proc, const std::vector<MappedObject>& objs)
      : ForwardingResolver(inner), group_(group), proc_(proc), objs_(objs) {}

  Result<TlsModule> resolve_tls(std::string_view name, const TargetSymbol& sym) override;

 private:
  Result<TlsModule> query(const MappedObject& obj);

  ThreadGroup& group_;
  const Process& proc_;
  const std::vector<MappedObject>& objs_;
  std::map<std::string, TlsModule, std::less<>> cache_;  // by object path
};

}  // namespace hs
