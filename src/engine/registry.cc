// The registry (see registry.h): its byte format, described once per record
// (io_payload, io_journal, ...) and run by a Writer to serialise or by a
// Reader to parse with every count, length and bound checked (the bytes come
// back from a target, which may have changed them); finding it in a process
// (a mapping named as the registry is one: if anything about it is wrong,
// that is corruption, never "no registry"), loading it (read_registry in
// registry_layout.cc checks the header, slot, checksum and generation;
// check_state in registry_check.cc bounds the contents), creating it, and
// committing a new state atomically.
#include "engine/registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "process/named_memfd.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"
#include "support/text.h"

namespace hs {

const char* state_name(PayloadState s) {
  switch (s) {
    case PayloadState::Checked: return "CHECKED";
    case PayloadState::Applied: return "APPLIED";
  }
  return "?";
}

const char* op_name(JournalOp op) {
  switch (op) {
    case JournalOp::None: return "none";
    case JournalOp::Upload: return "upload";
    case JournalOp::Apply: return "apply";
    case JournalOp::Revert: return "revert";
    case JournalOp::Replace: return "replace";
    case JournalOp::Unload: return "unload";
  }
  return "?";
}

PayloadRecord* RegistryState::find(std::string_view name) {
  for (auto& p : payloads)
    if (p.name == name) return &p;
  return nullptr;
}

const PayloadRecord* RegistryState::find(std::string_view name) const {
  return const_cast<RegistryState*>(this)->find(name);
}

std::vector<const PayloadRecord*> RegistryState::applied_stack(std::string_view object_path) const {
  std::vector<const PayloadRecord*> v;
  for (const auto& p : payloads)
    if (p.state == PayloadState::Applied && p.object_path == object_path) v.push_back(&p);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->apply_seq > b->apply_seq; });
  return v;
}

std::vector<const HookRecord*> PayloadRecord::hooks_of(std::string_view kind) const {
  std::vector<const HookRecord*> v;
  for (const auto& h : hooks)
    if (h.kind == kind) v.push_back(&h);
  return v;
}

const HookRecord* PayloadRecord::hook(std::string_view kind) const {
  for (const auto& h : hooks)
    if (h.kind == kind) return &h;
  return nullptr;
}

const PayloadRecord* RegistryState::top_of_stack(std::string_view object_path) const {
  auto v = applied_stack(object_path);
  return v.empty() ? nullptr : v.front();
}

// ---- serialisation: a flat little-endian stream, versioned by the header ----

namespace {

// 2: call sites (kExtCallSites). A registry with redirected call sites must
// not be handled by a tool that would revert without putting them back, so
// the version changed with them; version 1 is still read (it has none).
constexpr u32 kFormatVersion = 2;
constexpr u32 kOldestReadable = 1;

// The format is described once, by the io_* templates below, which name each
// field in order. A Writer emits the fields of a const record; a Reader fills
// those of a record being read. Both take every field by reference, through
// u8_/u32_/u64_ (an integer, enum or bool stored at that width), str, bytes
// and seq (a u64 count, then each element).
class Writer {
 public:
  template <class T>
  void u8_(const T& v) {
    out_.push_back(static_cast<u8>(v));
  }
  template <class T>
  void u32_(const T& v) {
    u32 x = static_cast<u32>(v);
    put(&x, sizeof x);
  }
  template <class T>
  void u64_(const T& v) {
    u64 x = static_cast<u64>(v);
    put(&x, sizeof x);
  }
  void bytes(ByteView b) {
    u64_(b.size());
    put(b.data(), b.size());
  }
  void str(std::string_view s) { bytes(ByteView(reinterpret_cast<const u8*>(s.data()), s.size())); }
  template <class V, class F>
  void seq(const V& v, size_t /*min_each*/, F&& each) {
    u64_(v.size());
    for (const auto& x : v) each(x);
  }
  Bytes take() { return std::move(out_); }

 private:
  void put(const void* p, size_t n) {
    auto* b = static_cast<const u8*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  Bytes out_;
};

// Once a read fails, every later one yields zero (empty) and ok() is false.
class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}
  bool ok() const { return ok_; }
  u8 u8_() { return get<u8>(); }
  u32 u32_() { return get<u32>(); }
  u64 u64_() { return get<u64>(); }
  template <class T>
  void u8_(T& v) {
    v = static_cast<T>(get<u8>());
  }
  template <class T>
  void u32_(T& v) {
    v = static_cast<T>(get<u32>());
  }
  template <class T>
  void u64_(T& v) {
    v = static_cast<T>(get<u64>());
  }
  Bytes bytes() {
    u64 n = u64_();
    if (!ok_ || n > d_.size() - pos_) return fail_(), Bytes{};
    Bytes b(d_.begin() + pos_, d_.begin() + pos_ + n);
    pos_ += n;
    return b;
  }
  void bytes(Bytes& b) { b = bytes(); }
  void str(std::string& s) {
    Bytes b = bytes();
    s.assign(b.begin(), b.end());
  }
  // Appends the elements, each read by `each`; the count must fit in the
  // remaining bytes at `min_each` bytes per element.
  template <class V, class F>
  void seq(V& v, size_t min_each, F&& each) {
    u64 n = count(min_each);
    for (u64 i = 0; i < n && ok_; i++) each(v.emplace_back());
  }
  bool at_end() const { return pos_ == d_.size(); }
  // A count that must fit in the remaining bytes at `min_each` bytes per item.
  u64 count(size_t min_each) {
    u64 n = u64_();
    if (!ok_ || n > (d_.size() - pos_) / min_each) return fail_(), 0;
    return n;
  }

 private:
  template <class T>
  T get() {
    if (!ok_ || sizeof(T) > d_.size() - pos_) return fail_(), T{};
    T v = load_le<T>(d_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  void fail_() { ok_ = false; }
  ByteView d_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// `P` is PayloadRecord (reading) or const PayloadRecord (writing); the same
// for the other records.
template <class Io, class P>
void io_payload(Io& io, P& p) {
  io.str(p.name);
  io.str(p.file);
  io.u8_(p.state);
  io.bytes(p.build_id);
  io.bytes(p.depends);
  io.bytes(p.object_depends);
  io.str(p.object_path);
  io.u64_(p.base);
  io.u64_(p.size);
  io.seq(p.regions, 20, [&](auto& r) {
    io.u64_(r.offset);
    io.u64_(r.size);
    io.u32_(r.prot);
  });
  io.seq(p.funcs, 16, [&](auto& f) {
    io.str(f.name);
    io.u64_(f.old_addr);
    io.u32_(f.old_size);
    io.u64_(f.new_addr);
    io.u32_(f.new_size);
    io.u32_(f.patch_offset);
    io.bytes(f.insn);
    io.bytes(f.undo);
    io.bytes(f.expect);
    io.u8_(f.applied);
  });
  io.seq(p.exports, 16, [&](auto& e) {
    io.str(e.first);
    io.u64_(e.second);
  });
  io.seq(p.modinfo, 16, [&](auto& m) {
    io.str(m.first);
    io.str(m.second);
  });
  io.u64_(p.upload_seq);
  io.u64_(p.apply_seq);
}

template <class Io, class J>
void io_journal(Io& io, J& j) {
  io.u8_(j.op);
  io.str(j.payload);
  io.u64_(j.tool_pid);
  io.seq(j.writes, 24, [&](auto& x) {
    io.u64_(x.addr);
    io.bytes(x.before);
    io.bytes(x.after);
  });
  io.u64_(j.map_base);
  io.u64_(j.map_size);
}

// Extensions follow the journal: each is a u32 tag and a length-prefixed
// body. A reader skips tags it does not know, and a registry written before
// an extension existed simply has none (its fields keep their defaults), so
// adding one needs no new format version, in either direction.
enum ExtensionTag : u32 {
  kExtUnwind = 1,  // per payload, in order: eh_frame_offset, eh_frame_size
  kExtHooks = 2,   // per payload, in order: unload_hooks_started, hooks (kind, name, addr)
  kExtCallSites = 3,  // per payload, per function, in order: its call sites (count, addresses)
  kExtGeneration = 4,  // the commit generation the state was written as (u64, non-zero)
  // Tags are never reused (5..15 are unused: issue 10's parts were numbered apart).
  kExtImplementations = 16,  // per payload, per function: the IFUNC implementation's name (FuncState::implementation)
  kExtFuncParts = 17,  // per payload, per function, in order: its symbol, its cold parts (count, addr, size)
};

// Every extension holds one entry per payload, in order, after their count.
// The entries of the three, for one payload:

template <class Io, class P>
void io_unwind(Io& io, P& p) {
  io.u64_(p.eh_frame_offset);
  io.u64_(p.eh_frame_size);
}

template <class Io, class P>
void io_hooks(Io& io, P& p) {
  io.u8_(p.unload_hooks_started);
  io.seq(p.hooks, 24, [&](auto& h) {
    io.str(h.kind);
    io.str(h.name);
    io.u64_(h.addr);
  });
}

// Call sites: a count of functions (which must match the payload's) and then
// this, for each function.
template <class Io, class F>
void io_call_sites(Io& io, F& f) {
  io.seq(f.call_sites, 8, [&](auto& a) { io.u64_(a); });
}

// Function parts: a count of functions (which must match the payload's),
// then this for each.
template <class Io, class F>
void io_func_parts(Io& io, F& f) {
  io.str(f.symbol);
  io.seq(f.cold, 16, [&](auto& c) {
    io.u64_(c.first);
    io.u64_(c.second);
  });
}

template <class F>
void put_per_payload(Writer& w, ExtensionTag tag, const RegistryState& s, F&& each) {
  Writer body;
  body.u64_(s.payloads.size());
  for (const auto& p : s.payloads) each(body, p);
  w.u32_(tag);
  w.bytes(body.take());
}

// Reads one extension's body: the payload count (entries of at least
// `min_each` bytes; it must match), then `each` (returning a Status) for
// every payload. If `truncation_checked`, running out of bytes is an error;
// otherwise the fields past the end stay zero.
template <class F>
Status get_per_payload(ByteView body, RegistryState& s, size_t min_each, std::string_view what,
                       bool truncation_checked, std::string_view who, F&& each) {
  Reader e(body);
  u64 n = e.count(min_each);
  if (!e.ok() || n != s.payloads.size())
    return fail(ErrorKind::Corrupt, "{} is corrupt: {} for {} payloads, expected {}", who, what, n,
                s.payloads.size());
  for (auto& p : s.payloads) HS_CHECK(each(e, p));
  if (truncation_checked && !e.ok()) return fail(ErrorKind::Corrupt, "{} is corrupt: truncated {}", who, what);
  return {};
}

void put_extensions(Writer& w, const RegistryState& s, u64 generation) {
  put_per_payload(w, kExtUnwind, s, [](Writer& body, const PayloadRecord& p) { io_unwind(body, p); });
  put_per_payload(w, kExtHooks, s, [](Writer& body, const PayloadRecord& p) { io_hooks(body, p); });
  put_per_payload(w, kExtCallSites, s, [](Writer& body, const PayloadRecord& p) {
    body.u64_(p.funcs.size());
    for (const auto& f : p.funcs) io_call_sites(body, f);
  });
  if (std::ranges::any_of(s.payloads, [](const PayloadRecord& p) {
        return std::ranges::any_of(p.funcs, [](const FuncState& f) { return !f.implementation.empty(); });
      }))
    put_per_payload(w, kExtImplementations, s, [](Writer& body, const PayloadRecord& p) {
      body.u64_(p.funcs.size());
      for (const auto& f : p.funcs) body.str(f.implementation);
    });
  put_per_payload(w, kExtFuncParts, s, [](Writer& body, const PayloadRecord& p) {
    body.u64_(p.funcs.size());
    for (const auto& f : p.funcs) io_func_parts(body, f);
  });
  if (generation) {
    Writer body;
    body.u64_(generation);
    w.u32_(kExtGeneration);
    w.bytes(body.take());
  }
}

Status get_extension(u32 tag, ByteView body, RegistryState& s, std::string_view who) {
  switch (tag) {
    case kExtUnwind:
      return get_per_payload(body, s, 16, "unwind information", false, who,
                             [who](Reader& e, PayloadRecord& p) -> Status {
                               io_unwind(e, p);
                               if (p.eh_frame_offset > p.size || p.eh_frame_size > p.size - p.eh_frame_offset)
                                 return fail(ErrorKind::Corrupt,
                                             "{} is corrupt: payload '{}' has .eh_frame at {:#x}+{:#x} outside its "
                                             "{:#x} bytes",
                                             who, escape_for_terminal(p.name), p.eh_frame_offset,
                                             p.eh_frame_size, p.size);
                               return {};
                             });
    case kExtHooks:
      return get_per_payload(body, s, 9, "hooks", true, who, [](Reader& e, PayloadRecord& p) -> Status {
        io_hooks(e, p);
        return {};
      });
    case kExtCallSites:
      return get_per_payload(body, s, 8, "call sites", true, who, [who](Reader& e, PayloadRecord& p) -> Status {
        u64 nf = e.count(8);
        if (!e.ok() || nf != p.funcs.size())
          return fail(ErrorKind::Corrupt, "{} is corrupt: call sites for {} functions of payload '{}', expected {}",
                      who, nf, escape_for_terminal(p.name), p.funcs.size());
        for (auto& f : p.funcs) io_call_sites(e, f);
        return {};
      });
    case kExtImplementations:
      return get_per_payload(body, s, 8, "implementations", true, who, [who](Reader& e, PayloadRecord& p) -> Status {
        u64 nf = e.count(8);
        if (!e.ok() || nf != p.funcs.size())
          return fail(ErrorKind::Corrupt, "{} is corrupt: implementations for {} functions of payload '{}', expected {}",
                      who, nf, escape_for_terminal(p.name), p.funcs.size());
        for (auto& f : p.funcs) e.str(f.implementation);
        return {};
      });
    case kExtFuncParts:
      return get_per_payload(body, s, 8, "function parts", true, who, [who](Reader& e, PayloadRecord& p) -> Status {
        u64 nf = e.count(16);
        if (!e.ok() || nf != p.funcs.size())
          return fail(ErrorKind::Corrupt, "{} is corrupt: function parts for {} functions of payload '{}', expected {}",
                      who, nf, escape_for_terminal(p.name), p.funcs.size());
        for (auto& f : p.funcs) io_func_parts(e, f);
        return {};
      });
    case kExtGeneration: {
      Reader e(body);
      s.generation = e.u64_();
      if (!e.ok() || !e.at_end() || s.generation == 0)
        return fail(ErrorKind::Corrupt, "{} is corrupt: a generation record of {} bytes holding {}", who,
                    body.size(), s.generation);
      return {};
    }
  }
  return {};  // a later extension: skipped
}

Status get_extensions(Reader& r, RegistryState& s, std::string_view who) {
  while (r.ok() && !r.at_end()) {
    u32 tag = r.u32_();
    Bytes body = r.bytes();
    if (!r.ok()) break;
    HS_CHECK(get_extension(tag, body, s, who));
  }
  return {};
}

}  // namespace

Bytes serialize(const RegistryState& s, u64 generation) {
  Writer w;
  w.u32_(kFormatVersion);
  w.u64_(s.next_seq);
  w.u64_(s.payloads.size());
  for (const auto& p : s.payloads) io_payload(w, p);
  w.u8_(s.journal.has_value());
  if (s.journal) io_journal(w, *s.journal);
  put_extensions(w, s, generation);
  return w.take();
}

Result<RegistryState> deserialize(ByteView data, std::string_view who) {
  RegistryState s;
  if (data.empty()) return s;  // a fresh registry
  Reader r(data);
  u32 version = r.u32_();
  if (r.ok() && (version < kOldestReadable || version > kFormatVersion))
    return fail(ErrorKind::BadTarget, "{} format version {} is not supported (expected {} to {})", who, version,
                kOldestReadable, kFormatVersion);
  s.next_seq = r.u64_();
  u64 n = r.count(16);
  for (u64 i = 0; i < n && r.ok(); i++) {
    PayloadRecord p;
    io_payload(r, p);
    if (r.ok() && p.state != PayloadState::Checked && p.state != PayloadState::Applied)
      return fail(ErrorKind::Corrupt, "{} is corrupt: payload '{}' has state {}", who, escape_for_terminal(p.name),
                  static_cast<int>(p.state));
    s.payloads.push_back(std::move(p));
  }
  bool has_journal = false;
  if (r.ok()) {
    u8 j = r.u8_();
    if (r.ok() && j > 1) return fail(ErrorKind::Corrupt, "{} is corrupt: journal flag {}", who, j);
    has_journal = j == 1;
  }
  if (has_journal) io_journal(r, s.journal.emplace());
  if (!r.ok()) return fail(ErrorKind::Corrupt, "{} is corrupt: truncated state", who);
  HS_CHECK(get_extensions(r, s, who));
  if (!r.ok()) return fail(ErrorKind::Corrupt, "{} is corrupt: truncated state", who);
  HS_CHECK(check_state(s, who));
  return s;
}

// ---- the mapping ----

namespace {

bool is_registry_path(std::string_view path) { return is_memfd_named(path, Registry::kMemfdName); }

}  // namespace

Result<std::optional<MapEntry>> Registry::find_mapping(const Process& proc) {
  auto maps = HS_TRY(proc.maps());
  std::optional<MapEntry> found;
  for (const auto& m : maps) {
    if (!is_registry_path(m.path)) continue;
    if (found)
      return fail(ErrorKind::Corrupt, "registry of PID {} is corrupt: two registry mappings, at {} and {}",
                  proc.pid(), found->range.begin, m.range.begin);
    found = m;
  }
  return found;
}

Result<std::optional<Registry>> Registry::find(const Process& proc) {
  auto m = HS_TRY(find_mapping(proc));
  if (!m) return std::optional<Registry>();
  // MAP_SHARED or MAP_PRIVATE: both are ours (a forked child's is private).
  auto corrupt = [&](std::string_view why) {
    return fail(ErrorKind::Corrupt, "registry of PID {} at {} is corrupt: {}", proc.pid(), m->range.begin, why);
  };
  if (m->range.size() != kCapacity)
    return corrupt(fmt::format("mapping of {:#x} bytes, expected {:#x}", m->range.size(), kCapacity));
  if (m->prot != (PROT_READ | PROT_WRITE))
    return corrupt(fmt::format("mapping protection {}{}{}, expected rw-", m->prot & PROT_READ ? 'r' : '-',
                               m->prot & PROT_WRITE ? 'w' : '-', m->prot & PROT_EXEC ? 'x' : '-'));
  if (m->range.begin.value() % 4096 != 0 || m->offset != 0)
    return corrupt(fmt::format("mapping at file offset {:#x}", m->offset));
  Bytes page = HS_TRY(proc.read(m->range.begin, kRegistryHeaderSize));
  if (auto why = registry_header_problem(page, m->range.begin.value()); !why.empty()) return corrupt(why);
  return std::optional<Registry>(Registry(&proc, m->range.begin));
}

// Closes registry memfds that a killed tool left open in the target (it dies
// between memfd_create and close only in a tiny window, but then the fd
// would stay open for the life of the process).
static Status close_stray_fds(const Process& proc, RemoteSyscalls& rs) {
  std::string dir = fmt::format("/proc/{}/fd", proc.pid());
  DIR* d = opendir(dir.c_str());
  if (!d) return {};
  std::vector<int> stray;
  while (dirent* e = readdir(d)) {
    char buf[256];
    std::string link = dir + "/" + e->d_name;
    ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
    if (n <= 0) continue;
    if (is_registry_path(std::string_view(buf, static_cast<size_t>(n)))) stray.push_back(atoi(e->d_name));
  }
  closedir(d);
  for (int fd : stray) HS_CHECK(rs.syscall(SYS_close, fd));
  return {};
}

Result<Registry> Registry::create(const Process& proc, ThreadGroup& group) {
  TracedThread* t = HS_TRY(group.stop_one());
  RemoteAddr addr;
  {
    auto rs = HS_TRY(RemoteSyscalls::create(group, *t, proc));
    HS_CHECK(close_stray_fds(proc, rs));
    // Private: a child forked later gets a copy-on-write copy, its own state
    // (it inherits the patched code, so it inherits the state that describes
    // it, and from then on each process changes alone). No swap space is
    // reserved for the 32 MiB: only the pages written are ever used.
    addr = HS_TRY(map_named_memfd(proc, rs, *t, kMemfdName, RemoteAddr(), kCapacity, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_NORESERVE));
    HS_CHECK(rs.finish());
  }
  HS_CHECK(group.resume_all());

  RegistryHeader h = registry_header(addr.value());
  HS_CHECK(proc.write(addr, ByteView(reinterpret_cast<const u8*>(&h), sizeof h)));
  return Registry(&proc, addr);
}

Result<RegistryState> Registry::load() const {
  const Process* proc = proc_;
  const RemoteAddr base = base_;
  return read_registry(
      [proc, base](u64 offset, size_t len) { return proc->read(base + static_cast<i64>(offset), len); },
      base_.value(), fmt::format("registry of PID {}", proc_->pid()));
}

Status Registry::commit(const RegistryState& s) {
  auto h = HS_TRY(proc_->read_value<RegistryHeader>(base_));
  u64 slot = (h.commit & 1) ^ 1;
  u64 generation = (h.commit >> 1) + 1;
  Bytes out = registry_slot_image(s, generation);
  if (out.size() > registry_slot_capacity())
    return fail(ErrorKind::Internal, "registry state of {:#x} bytes does not fit the registry", out.size());
  HS_CHECK(proc_->write(base_ + static_cast<i64>(registry_slot_offset(slot)), out));
  u64 commit = (generation << 1) | slot;
  return proc_->write(base_ + static_cast<i64>(offsetof(RegistryHeader, commit)),
                      ByteView(reinterpret_cast<const u8*>(&commit), sizeof commit));
}

}  // namespace hs
