// Thread-local variables of a live process: module IDs and static TLS
// offsets asked of the process with dlinfo on a borrowed thread (tls.h).
#include "engine/tls.h"

#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>

#include <chrono>

#include "engine/instrument.h"
#include "process/remote_call.h"

namespace hs {

namespace {

// dlinfo writes its answer through a pointer: into the borrowed thread's own
// stack, this far below its stack pointer (well past the red zone and the
// few hundred bytes dlinfo's frames take, above rsp - 16 KiB), memory no
// live frame uses, as a signal frame would. It must lie in the mapping that
// holds the stack pointer.
constexpr u64 kScratchDepth = 8192;
constexpr u64 kScratchSize = 16;
constexpr std::chrono::milliseconds kCallTimeout{1000};

const Elf64_Phdr* segment(const ElfFile& elf, u32 type) {
  for (const auto& ph : elf.program_headers())
    if (ph.p_type == type) return &ph;
  return nullptr;
}

const MapEntry* mapping_of(std::span<const MapEntry> maps, u64 addr) {
  for (const auto& m : maps)
    if (m.range.begin.value() <= addr && addr < m.range.end.value()) return &m;
  return nullptr;
}

}  // namespace

std::optional<i64> static_tls_offset(u64 fs_base, u64 block, u64 memsz, std::span<const MapEntry> maps) {
  if (block == 0 || block >= fs_base || fs_base - block < memsz) return std::nullopt;
  const MapEntry* m = mapping_of(maps, fs_base);
  if (!m || block < m->range.begin.value()) return std::nullopt;
  return -static_cast<i64>(fs_base - block);
}

Result<TlsModule> TlsResolver::resolve_tls(std::string_view name, const TargetSymbol& sym) {
  if (auto it = cache_.find(sym.object); it != cache_.end()) return it->second;
  const MappedObject* obj = nullptr;
  for (const auto& o : objs_)
    if (o.path == sym.object || o.file == sym.object) obj = &o;
  if (!obj)
    return fail(ErrorKind::Internal, "thread-local symbol '{}': its object {} is not among the mapped objects", name,
                sym.object);
  TlsModule m = HS_TRY_CTX(query(*obj), fmt::format("thread-local symbol '{}'", name));
  cache_.emplace(sym.object, m);
  return m;
}

Result<TlsModule> TlsResolver::query(const MappedObject& obj) {
  PhaseTimer timer("tls");  // HOTSPLICE_TIMING=1: "hotsplice: timing tls find=... ask=..."
  const pid_t pid = proc_.pid();
  const Elf64_Phdr* tls = segment(*obj.elf, PT_TLS);
  if (!tls) return fail(ErrorKind::BadTarget, "{} has no TLS segment (PT_TLS)", obj.path);
  const Elf64_Phdr* dyn = segment(*obj.elf, PT_DYNAMIC);
  if (objs_.empty() || !dyn)
    return fail(ErrorKind::BadTarget, "{} has no dynamic section: its TLS module cannot be asked for", obj.path);

  // The object's handle: its entry in the link map, matched by l_ld.
  const RemoteAddr l_ld = obj.bias + static_cast<i64>(dyn->p_vaddr);
  RemoteAddr handle;
  for (const LinkMapEntry& e : link_map_entries(proc_, objs_.front()))
    if (e.l_ld == l_ld) handle = e.link_map;
  if (handle.is_null())
    return fail(ErrorKind::BadTarget, "PID {}: {} is not in the dynamic linker's link map", pid, obj.path);

  // dlinfo: libc.so.6 since glibc 2.34, libdl.so.2 before.
  std::optional<TargetSymbol> dlinfo;
  for (const auto& o : objs_) {
    auto syms = o.symbols();
    if (!syms) continue;
    dlinfo = (*syms)->lookup_global("dlinfo");
    if (dlinfo && (dlinfo->type == STT_FUNC || dlinfo->type == STT_NOTYPE)) break;
    dlinfo.reset();
  }
  if (!dlinfo)
    return fail(ErrorKind::BadTarget,
                "PID {}: no mapped object defines dlinfo (glibc's libc.so.6 or libdl.so.2), which finds the TLS "
                "module of {}",
                pid, obj.path);

  timer.mark("find");
  // One thread stops; the others run on. Every way out resumes it.
  TracedThread* t = HS_TRY(group_.stop_one());
  const pid_t tid = t->tid;
  const u64 fs_base = t->regs.fs_base;
  const u64 rsp = t->regs.rsp;
  u64 module_id = 0, block = 0;
  std::vector<MapEntry> maps;
  Status asked = [&]() -> Status {
    maps = HS_TRY(proc_.maps());
    const u64 scratch = (rsp - kScratchDepth) & ~u64{15};
    const MapEntry* stack = mapping_of(maps, rsp - 1);
    if (!stack || !(stack->prot & PROT_WRITE) || scratch < stack->range.begin.value())
      return fail(ErrorKind::BadTarget, "thread {} has no {} bytes of stack below its stack pointer {:#x}", tid,
                  kScratchDepth, rsp);
    auto rc = HS_TRY(RemoteCall::create(group_, *t, proc_));
    rc.set_timeout(kCallTimeout);
    auto ask = [&](int request, u64* out) -> Status {
      u64 r = HS_TRY(rc.call(dlinfo->addr, handle.value(), static_cast<u64>(request), scratch));
      if (static_cast<int>(static_cast<u32>(r)) != 0)
        return fail(ErrorKind::BadTarget, "dlinfo({:#x}, {}) in thread {} failed", handle.value(), request, tid);
      *out = HS_TRY(proc_.read_value<u64>(RemoteAddr(scratch)));
      return {};
    };
    Status st = ask(RTLD_DI_TLS_MODID, &module_id);
    if (st) st = ask(RTLD_DI_TLS_DATA, &block);
    Status fin = rc.finish();
    if (!st) return st;
    return fin;
  }();
  Status resumed = group_.resume_all();
  timer.mark("ask");
  HS_CHECK_CTX(asked, fmt::format("PID {}: asking for the TLS module of {}", pid, obj.path));
  HS_CHECK(resumed);
  if (module_id == 0)
    return fail(ErrorKind::BadTarget, "PID {}: the dynamic linker gave {} no TLS module ID", pid, obj.path);

  TlsModule m;
  m.module_id = module_id;
  m.object = obj.path;
  m.tp_offset = static_tls_offset(fs_base, block, tls->p_memsz, maps);
  return m;
}

}  // namespace hs
