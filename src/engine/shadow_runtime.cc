// The shadow-variable table's mapping in a target, and the resolver that
// hands its address to payloads: see shadow_runtime.h.
#include "engine/shadow_runtime.h"

#include <elf.h>
#include <sys/mman.h>

#include <hotsplice/shadow.h>

#include "arch/x86_64.h"
#include "process/named_memfd.h"
#include "process/remote_syscall.h"

namespace hs {

namespace {

// The fields hotsplice writes; everything after them starts at zero.
struct ShadowHeader {
  u64 magic;
  u32 version;
  u32 lock;
  u64 live, allocated, freed, nbuckets;
};
static_assert(offsetof(hotsplice_shadow_root, magic) == offsetof(ShadowHeader, magic));
static_assert(offsetof(hotsplice_shadow_root, version) == offsetof(ShadowHeader, version));
static_assert(offsetof(hotsplice_shadow_root, nbuckets) == offsetof(ShadowHeader, nbuckets));

ShadowHeader our_header() {
  ShadowHeader h{};
  h.magic = HOTSPLICE_SHADOW_MAGIC;
  h.version = HOTSPLICE_SHADOW_VERSION;
  h.nbuckets = HOTSPLICE_SHADOW_BUCKETS;
  return h;
}

// Whether the header is ours (true), all zero (false: made, not yet
// written), or an error.
Result<bool> check_header(const Process& proc, RemoteAddr at) {
  auto h = HS_TRY(proc.read_value<ShadowHeader>(at));
  const ShadowHeader want = our_header();
  if (h.magic == want.magic && h.version == want.version && h.nbuckets == want.nbuckets) return true;
  if (h.magic == 0 && h.version == 0 && h.nbuckets == 0) return false;
  return fail(ErrorKind::BadTarget,
              "shadow-variable table of PID {} at {} is corrupt: header magic {:#x} version {} buckets {}, expected "
              "{:#x} version {} buckets {}",
              proc.pid(), at, h.magic, h.version, h.nbuckets, want.magic, want.version, want.nbuckets);
}

Status write_header(const Process& proc, RemoteAddr at) {
  const ShadowHeader h = our_header();
  return proc.write(at, ByteView(reinterpret_cast<const u8*>(&h), sizeof h));
}

}  // namespace

u64 shadow_mapping_size() {
  const u64 page = x86_64::kPageSize;
  return (sizeof(hotsplice_shadow_root) + page - 1) / page * page;
}

Result<std::optional<RemoteAddr>> find_shadow_table(const Process& proc) {
  auto maps = HS_TRY(proc.maps());
  std::optional<MapEntry> found;
  for (const auto& m : maps) {
    if (!is_memfd_named(m.path, kShadowMemfdName)) continue;
    if (found)
      return fail(ErrorKind::BadTarget, "shadow-variable table of PID {} is corrupt: two mappings, at {} and {}",
                  proc.pid(), found->range.begin, m.range.begin);
    found = m;
  }
  if (!found) return std::optional<RemoteAddr>();
  if (found->range.size() != shadow_mapping_size() || found->prot != (PROT_READ | PROT_WRITE) || found->offset != 0)
    return fail(ErrorKind::BadTarget,
                "shadow-variable table of PID {} at {} is corrupt: a mapping of {:#x} bytes, {}{}{}, expected {:#x} "
                "bytes, rw-",
                proc.pid(), found->range.begin, found->range.size(), found->prot & PROT_READ ? 'r' : '-',
                found->prot & PROT_WRITE ? 'w' : '-', found->prot & PROT_EXEC ? 'x' : '-', shadow_mapping_size());
  return std::optional<RemoteAddr>(found->range.begin);
}

Result<RemoteAddr> ensure_shadow_table(const Process& proc, ThreadGroup& group) {
  if (auto have = HS_TRY(find_shadow_table(proc))) {
    if (!HS_TRY(check_header(proc, *have))) HS_CHECK(write_header(proc, *have));
    return *have;
  }
  TracedThread* t = HS_TRY(group.stop_one());
  RemoteAddr addr;
  {
    auto rs = HS_TRY(RemoteSyscalls::create(group, *t, proc));
    // Private: a fork copies it, as it copies the malloc'd shadows.
    addr = HS_TRY(map_named_memfd(proc, rs, *t, kShadowMemfdName, RemoteAddr(), shadow_mapping_size(),
                                  PROT_READ | PROT_WRITE, MAP_PRIVATE));
    HS_CHECK(rs.finish());
  }
  HS_CHECK(group.resume_all());
  HS_CHECK(write_header(proc, addr));
  return addr;
}

Result<TargetSymbol> ShadowResolver::resolve_symbol(std::string_view name) {
  if (!name.starts_with(kShadowRootPrefix)) return inner_.resolve_symbol(name);
  if (name != kShadowRootSymbol)
    return fail(ErrorKind::BadPayload,
                "symbol '{}': the payload was built for another layout of the shadow-variable table; this hotsplice "
                "provides '{}'",
                name, kShadowRootSymbol);
  if (!table_) table_ = HS_TRY(ensure_shadow_table(proc_, group_));
  return TargetSymbol{*table_, sizeof(hotsplice_shadow_root), std::string(kShadowMemfdName), STT_OBJECT};
}

}  // namespace hs
