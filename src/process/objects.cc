// The ELF objects mapped in a target: which files, where, in which order.
//
// Where. ld.so maps an object's PT_LOAD segments at `bias + p_vaddr`; the
// mapping with file offset 0 starts at bias + (lowest p_vaddr, page
// aligned), which gives the bias.
//
// Which file. The path in /proc/PID/maps is seen from the target's mount
// namespace and may name a file that has been replaced or deleted since it
// was mapped. So the file is opened as <path>, else /proc/PID/root/<path>,
// and only accepted if its device and inode are the mapped ones; failing
// that, /proc/PID/map_files/<range> opens the mapped file itself (root
// only). Overlayfs reports the underlying device and inode in maps, so if
// nothing matches exactly, the first of those that exists is used.
//
// Which order. Symbol resolution searches "the process's other objects in
// link-map order", the order ld.so uses. The link map is in the target:
// the executable's DT_DEBUG entry points at ld.so's `struct r_debug`, whose
// r_map heads a list of `struct link_map` (l_addr, l_name, l_ld, l_next,
// l_prev). Entries are matched to mappings by l_ld, the runtime address of
// the object's dynamic section.
#include "process/objects.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

namespace hs {

namespace {

bool starts_with_elf_magic(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  u8 magic[SELFMAG] = {};
  ssize_t n = ::pread(fd, magic, sizeof magic, 0);
  ::close(fd);
  return n == SELFMAG && std::memcmp(magic, ELFMAG, SELFMAG) == 0;
}

bool is_mapped_inode(const std::string& file, const MapEntry& m) {
  struct stat sb;
  return ::stat(file.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_ino == m.inode && sb.st_dev == m.dev;
}

// The file to read for an object whose offset-0 mapping is `m`, or "".
// The plain path comes first when it is the mapped file (device and inode
// match), so that messages name the file as the user knows it.
std::string openable_file(pid_t pid, const std::string& path, const MapEntry& m) {
  std::vector<std::string> candidates;
  if (!path.ends_with(" (deleted)")) {
    candidates.push_back(path);
    candidates.push_back(fmt::format("/proc/{}/root{}", pid, path));
  }
  candidates.push_back(fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.range.begin.value(), m.range.end.value()));
  for (const auto& c : candidates)
    if (is_mapped_inode(c, m)) return c;
  // Nothing matched (overlayfs): the map_files link opens what is mapped,
  // if we may; else the path as seen by the target.
  std::reverse(candidates.begin(), candidates.end());  // map_files, root/path, path
  for (const auto& c : candidates) {
    struct stat sb;
    if (::stat(c.c_str(), &sb) == 0 && S_ISREG(sb.st_mode)) return c;
  }
  return {};
}

// Of the offset-0 mappings of a file (usually one), the one ld.so made: the
// bias it implies puts the executable PT_LOAD on an executable mapping of
// the same file. Else the lowest.
const MapEntry* pick_base(const std::vector<MapEntry>& maps, const ElfFile& elf) {
  const MapEntry* first = nullptr;
  const Elf64_Phdr* exec_load = nullptr;
  for (const auto& ph : elf.program_headers())
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X)) {
      exec_load = &ph;
      break;
    }
  for (const auto& m : maps) {
    if (m.offset != 0) continue;
    if (!first) first = &m;
    if (!exec_load) break;
    u64 bias = m.range.begin.value() - elf.first_load_vaddr();
    u64 want = (bias + exec_load->p_vaddr) & ~u64{0xfff};
    for (const auto& x : maps)
      if ((x.prot & PROT_EXEC) && x.range.begin.value() == want) return &m;
  }
  return first;
}

}  // namespace

std::vector<LinkMapEntry> link_map_entries(const Process& proc, const MappedObject& exe) {
  std::vector<LinkMapEntry> out;
  const Elf64_Phdr* dyn = nullptr;
  for (const auto& ph : exe.elf->program_headers())
    if (ph.p_type == PT_DYNAMIC) dyn = &ph;
  if (!dyn || dyn->p_memsz < sizeof(Elf64_Dyn)) return out;
  const u64 count = std::min<u64>(dyn->p_memsz / sizeof(Elf64_Dyn), 4096);
  auto bytes = proc.read(exe.bias + static_cast<i64>(dyn->p_vaddr), count * sizeof(Elf64_Dyn));
  if (!bytes) return out;
  u64 r_debug = 0;
  for (u64 i = 0; i < count; ++i) {
    auto d = load_le<Elf64_Dyn>(bytes->data() + i * sizeof(Elf64_Dyn));
    if (d.d_tag == DT_NULL) break;
    if (d.d_tag == DT_DEBUG) r_debug = d.d_un.d_ptr;
  }
  if (r_debug == 0) return out;
  // struct r_debug { int r_version; struct link_map *r_map; ... }
  auto r_map = proc.read_value<u64>(RemoteAddr(r_debug + 8));
  if (!r_map) return out;
  std::set<u64> seen;
  for (u64 lm = *r_map; lm != 0 && seen.insert(lm).second && seen.size() <= 65536;) {
    // struct link_map { l_addr, l_name, l_ld, l_next, l_prev }
    u64 f[4];
    if (!proc.read(RemoteAddr(lm), std::span<u8>(reinterpret_cast<u8*>(f), sizeof f))) break;
    out.push_back(LinkMapEntry{.link_map = RemoteAddr(lm), .l_ld = RemoteAddr(f[2])});
    lm = f[3];
  }
  return out;
}

namespace {

// l_ld of every entry of the target's link map, in list order; empty if it
// cannot be found (static executable, r_debug not set up yet, unreadable).
std::vector<RemoteAddr> link_map_order(const Process& proc, const MappedObject& exe) {
  std::vector<RemoteAddr> out;
  for (const LinkMapEntry& e : link_map_entries(proc, exe)) out.push_back(e.l_ld);
  return out;
}

}  // namespace

Result<std::vector<MappedObject>> mapped_objects(const Process& proc, const DebugSearch& debug) {
  const pid_t pid = proc.pid();
  auto maps = HS_TRY(proc.maps());

  // Group the file-backed mappings by path, in address order.
  std::vector<MappedObject> found;
  for (const auto& m : maps) {
    const std::string& p = m.path;
    if (p.empty() || p.front() != '/' || p.starts_with("/memfd:") || p.starts_with("/dev/")) continue;
    auto it = std::find_if(found.begin(), found.end(), [&](const MappedObject& o) { return o.path == p; });
    if (it == found.end()) {
      found.push_back(MappedObject{.path = p, .span = m.range});
      it = found.end() - 1;
    }
    it->maps.push_back(m);
    it->span.begin = std::min(it->span.begin, m.range.begin);
    it->span.end = std::max(it->span.end, m.range.end);
  }

  std::vector<MappedObject> objs;
  for (auto& o : found) {
    auto zero = std::find_if(o.maps.begin(), o.maps.end(), [](const MapEntry& m) { return m.offset == 0; });
    if (zero == o.maps.end()) continue;
    std::string file = openable_file(pid, o.path, *zero);
    if (file.empty() || !starts_with_elf_magic(file)) continue;
    auto elf = ElfFile::open(file);
    if (!elf || elf->is_relocatable()) continue;
    const MapEntry* base = pick_base(o.maps, *elf);
    if (base != &*zero) {
      // Another offset-0 mapping of the same path is the loaded one; it is
      // the same inode unless the file was replaced in between.
      std::string f2 = openable_file(pid, o.path, *base);
      if (f2.empty()) continue;
      file = f2;
    }
    o.bias = RemoteAddr(base->range.begin.value() - elf->first_load_vaddr());
    if (auto id = elf->build_id()) o.build_id.assign(id->begin(), id->end());
    o.elf = std::make_shared<const ElfFile>(std::move(*elf));
    o.file = std::move(file);
    o.debug = debug;
    objs.push_back(std::move(o));
  }

  // Order: the executable, then link-map order, then whatever is left
  // (objects mapped by other means) in address order.
  std::vector<MappedObject> out;
  out.reserve(objs.size());
  std::vector<bool> taken(objs.size(), false);
  auto take = [&](size_t i) {
    if (!taken[i]) {
      taken[i] = true;
      out.push_back(std::move(objs[i]));
    }
  };
  std::optional<size_t> exe;
  if (auto exe_path = proc.exe_path()) {
    for (size_t i = 0; i < objs.size(); ++i)
      if (objs[i].path == *exe_path) exe = i;
  }
  std::vector<RemoteAddr> lds;
  if (exe) lds = link_map_order(proc, objs[*exe]);
  if (exe) take(*exe);
  for (RemoteAddr ld : lds) {
    for (size_t i = 0; i < objs.size(); ++i) {
      if (taken[i]) continue;
      bool hit = std::any_of(objs[i].maps.begin(), objs[i].maps.end(),
                             [&](const MapEntry& m) { return m.range.contains(ld); });
      if (hit) {
        take(i);
        break;
      }
    }
  }
  for (size_t i = 0; i < objs.size(); ++i) take(i);
  return out;
}

Result<const MappedObject*> find_object(const std::vector<MappedObject>& objs, ByteView build_id, pid_t pid) {
  for (const auto& o : objs)
    if (!o.build_id.empty() && std::equal(o.build_id.begin(), o.build_id.end(), build_id.begin(), build_id.end()))
      return &o;
  return fail(ErrorKind::BadTarget, "no object with build-id {} is mapped in PID {}", to_hex(build_id), pid);
}

Result<std::shared_ptr<ObjectSymbols>> MappedObject::symbols() const {
  if (symbols_cache) return symbols_cache;
  std::shared_ptr<const ElfFile> e = elf;
  if (!e) e = std::make_shared<const ElfFile>(HS_TRY(ElfFile::open(file.empty() ? path : file)));
  symbols_cache = HS_TRY(ObjectSymbols::load(*e, bias.value(), debug, path));
  return symbols_cache;
}

Result<std::shared_ptr<ObjectSymbols>> MappedObject::global_symbols() const {
  if (symbols_cache) return symbols_cache;
  if (global_symbols_cache) return global_symbols_cache;
  std::shared_ptr<const ElfFile> e = elf;
  if (!e) e = std::make_shared<const ElfFile>(HS_TRY(ElfFile::open(file.empty() ? path : file)));
  DebugSearch local = debug;
  local.debuginfod = false;
  global_symbols_cache = HS_TRY(ObjectSymbols::load(*e, bias.value(), local, path));
  return global_symbols_cache;
}

}  // namespace hs
