// Registering payload unwind tables with the target's unwinder: see
// unwind_frames.h.
#include "engine/unwind_frames.h"

#include <sys/mman.h>

#include <fmt/format.h>

#include "engine/placement.h"
#include "payload/eh_frame.h"
#include "process/named_memfd.h"
#include "process/remote_call.h"

namespace hs {

namespace {

// One call of an unwinder function on thread `tid`.
Result<u64> call_unwinder(ThreadGroup& group, pid_t tid, const Process& proc, RemoteAddr fn, u64 a, u64 b) {
  TracedThread* t = group.find(tid);
  if (!t || !t->stopped) return fail(ErrorKind::TargetGone, "process {} exited during the operation", proc.pid());
  auto rc = HS_TRY(RemoteCall::create(group, *t, proc));
  auto r = rc.call(fn, a, b);
  auto fin = rc.finish();
  if (!r) return r;
  HS_CHECK(fin);
  return r;
}

struct Block {
  RemoteAddr at;
  UnwindBlock u;
  RemoteAddr scratch() const { return at + static_cast<i64>(kUnwindBlockScratchOff); }
  RemoteAddr object(size_t i) const {
    return at + static_cast<i64>(kUnwindBlockObjectOff + i * kUnwindObjectSize);
  }
  bool holds(u64 fde) const { return fde >= u.eh_frame && fde < u.eh_frame + u.eh_size; }
};

Result<std::optional<Block>> read_block(const Process& proc, RemoteAddr at) {
  Bytes b = HS_TRY(proc.read(at, kUnwindBlockSize));
  auto u = decode_unwind_block(b);
  if (!u) return std::optional<Block>();
  return std::optional<Block>(Block{at, *u});
}

Result<bool> ask(ThreadGroup& group, pid_t tid, const Process& proc, const Unwinder& uw, const Block& b) {
  u64 fde = HS_TRY(call_unwinder(group, tid, proc, uw.find_fde, b.u.probe_pc, b.scratch().value()));
  return b.holds(fde);
}

// Whether the object's string tables name the unwinder's lookup at all: a
// scan of two sections, where loading its symbols (libc's, say) costs
// milliseconds.
bool may_define_unwinder(const ElfFile& elf) {
  static constexpr std::string_view kName("_Unwind_Find_FDE\0", 17);
  for (std::string_view sec : {".dynstr", ".strtab"}) {
    auto i = elf.find_section(sec);
    if (!i) continue;
    ByteView d = elf.section_data(*i);
    std::string_view text(reinterpret_cast<const char*>(d.data()), d.size());
    if (text.find(kName) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace

std::vector<Unwinder> find_unwinders(const std::vector<MappedObject>& objs) {
  std::vector<Unwinder> out;
  for (const auto& o : objs) {
    if (out.size() == kUnwindBlockObjects) break;
    if (!o.elf || !may_define_unwinder(*o.elf)) continue;
    auto os = o.symbols();
    if (!os) continue;
    auto find = (*os)->lookup("_Unwind_Find_FDE");
    if (!find || find->type == STT_GNU_IFUNC) continue;
    auto reg = (*os)->lookup("__register_frame_info");
    auto dereg = (*os)->lookup("__deregister_frame_info");
    if (!reg || !dereg) continue;
    out.push_back(Unwinder{o.path, find->addr, reg->addr, dereg->addr});
  }
  return out;
}

std::optional<RemoteAddr> unwind_block_of(const PayloadRecord& p) {
  for (const auto& r : p.regions)
    if (r.prot & PROT_WRITE) return RemoteAddr(p.base + r.offset);
  return std::nullopt;
}

std::optional<RemoteAddr> unwind_block_in(std::span<const MapEntry> maps, RemoteRange mapping) {
  for (const auto& m : maps)
    if (m.range.begin >= mapping.begin && m.range.end <= mapping.end && (m.prot & PROT_WRITE)) return m.range.begin;
  return std::nullopt;
}

Result<FrameChange> settle_frames_running(ThreadGroup& group, const Process& proc,
                                          const std::vector<MappedObject>& objs, RemoteAddr block, bool registered,
                                          std::string_view payload) {
  TracedThread* t = HS_TRY(group.stop_one());
  auto r = settle_frames(group, t->tid, proc, objs, block, registered, payload);
  auto resumed = group.resume_all();
  if (!r) return r;
  HS_CHECK(resumed);
  return r;
}

Result<FrameChange> settle_frames(ThreadGroup& group, pid_t tid, const Process& proc,
                                  const std::vector<MappedObject>& objs, RemoteAddr block, bool registered,
                                  std::string_view payload) {
  auto b = HS_TRY(read_block(proc, block));
  if (!b) return FrameChange::None;
  FrameChange change = FrameChange::None;
  // Unwinder i keeps its object in slot i: link-map order, which loading
  // more objects only extends.
  const auto uws = find_unwinders(objs);
  for (size_t i = 0; i < uws.size(); i++) {
    const Unwinder& uw = uws[i];
    const std::string what =
        fmt::format("payload '{}': {} its unwind table (.eh_frame at {:#x}) {} the unwinder of {}", payload,
                    registered ? "registering" : "deregistering", b->u.eh_frame, registered ? "with" : "from",
                    uw.object);
    auto known = ask(group, tid, proc, uw, *b);
    if (!known) return std::unexpected(Error(known.error()).context(what));
    if (*known == registered) continue;
    if (registered) {
      // libgcc's object starts zeroed, as a static one in crtbegin.o does.
      HS_CHECK_CTX(proc.write(b->object(i), Bytes(kUnwindObjectSize, 0)), what);
      HS_CHECK_CTX(call_unwinder(group, tid, proc, uw.register_info, b->u.eh_frame, b->object(i).value()), what);
      auto now = ask(group, tid, proc, uw, *b);
      if (!now) return std::unexpected(Error(now.error()).context(what));
      if (!*now)
        return fail(ErrorKind::BadTarget, "{}: the unwinder still finds no FDE for {:#x}", what, b->u.probe_pc);
      change = FrameChange::Registered;
      continue;
    }
    u64 ob = HS_TRY_CTX(call_unwinder(group, tid, proc, uw.deregister_info, b->u.eh_frame, 0), what);
    if (ob != b->object(i).value())
      return fail(ErrorKind::BadTarget, "{}: it returned {:#x}, not the table's object at {:#x}", what, ob,
                  b->object(i).value());
    change = FrameChange::Deregistered;
  }
  return change;
}

}  // namespace hs
