// find_debug_file: the separate debug file of a stripped object, by
// build-id, by .gnu_debuglink, then from debuginfod (see debug_file.h).
#include "elf/debug_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "elf/debuginfod.h"

namespace hs {
namespace {

std::string_view dirname_of(std::string_view p) {
  const size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return ".";
  return slash == 0 ? std::string_view("/") : p.substr(0, slash);
}

// ROOT + DIR without doubling the slash ("/usr/lib/debug" + "/opt/x").
std::string join(std::string_view root, std::string_view dir, std::string_view name) {
  std::string out(root);
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (!dir.empty() && dir.front() != '/') out += '/';
  out += dir;
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

std::optional<size_t> symtab_of(const ElfFile& elf) {
  for (size_t i = 1; i < elf.sections().size(); ++i)
    if (elf.sections()[i].sh_type == SHT_SYMTAB) return i;
  return std::nullopt;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// How a candidate is checked against the object.
struct Want {
  ByteView build_id;            // empty: the object has none
  std::optional<u32> crc;       // set for a .gnu_debuglink candidate
  const std::string* object = nullptr;  // the object's file: never its own debug file
};

// Opens `path` as the debug file `want` describes; on failure, why (for
// "PATH (why)").
std::expected<DebugFile, std::string> try_candidate(const std::string& path, const Want& want) {
  if (::access(path.c_str(), F_OK) != 0) return std::unexpected(errno == ENOENT ? "absent" : std::strerror(errno));
  if (want.object && same_file(path, *want.object)) return std::unexpected("the object itself");
  auto elf = ElfFile::open(path);
  if (!elf) {  // the message without the "PATH: " the reader puts first
    std::string m = elf.error().message();
    if (m.starts_with(path + ": ")) m.erase(0, path.size() + 2);
    return std::unexpected(m);
  }
  auto id = elf->build_id();
  if (!want.build_id.empty()) {
    // A .gnu_debuglink candidate without a build-id is left to its CRC.
    if (!id && !want.crc) return std::unexpected("no build-id");
    if (id && !std::ranges::equal(*id, want.build_id))
      return std::unexpected(fmt::format("build-id {} differs", to_hex(*id)));
  }
  if (want.crc) {
    const u32 crc = debuglink_crc32(elf->bytes());
    if (crc != *want.crc) return std::unexpected(fmt::format("CRC {:08x}, not the {:08x} .gnu_debuglink gives", crc, *want.crc));
  }
  auto symtab = symtab_of(*elf);
  if (!symtab) return std::unexpected("no .symtab");
  return DebugFile{path, std::move(*elf), *symtab};
}

}  // namespace

DebugSearch DebugSearch::with_default(std::vector<std::string> dirs) {
  DebugSearch s;
  s.dirs = std::move(dirs);
  if (std::ranges::find(s.dirs, std::string(kDefaultDebugDir)) == s.dirs.end())
    s.dirs.emplace_back(kDefaultDebugDir);
  return s;
}

u32 debuglink_crc32(ByteView data, u32 crc) {
  static const auto table = [] {
    std::array<u32, 256> t{};
    for (u32 i = 0; i < 256; ++i) {
      u32 c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (u8 b : data) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::optional<DebugLink> read_debuglink(const ElfFile& elf) {
  auto i = elf.find_section(".gnu_debuglink");
  if (!i) return std::nullopt;
  const ByteView d = elf.section_data(*i);
  auto nul = std::find(d.begin(), d.end(), u8{0});
  if (nul == d.end() || nul == d.begin()) return std::nullopt;
  const size_t len = static_cast<size_t>(nul - d.begin());
  const size_t crc_at = (len + 1 + 3) & ~size_t{3};
  if (crc_at + 4 > d.size()) return std::nullopt;
  DebugLink out;
  out.name.assign(reinterpret_cast<const char*>(d.data()), len);
  out.crc = load_le<u32>(d.data() + crc_at);
  return out;
}

DebugFileSearch find_debug_file(const ElfFile& elf, std::string_view object_path, const DebugSearch& search) {
  DebugFileSearch out;
  const std::string& file = elf.path();
  Want want;
  want.object = &file;
  if (auto id = elf.build_id(); id && id->size() >= 2) want.build_id = *id;
  out.has_build_id = !want.build_id.empty();

  // 1. ROOT/.build-id/ab/cdef....debug
  if (out.has_build_id) {
    const std::string hex = to_hex(want.build_id);
    for (const std::string& root : search.dirs) {
      const std::string path = join(root, fmt::format(".build-id/{}", hex.substr(0, 2)), hex.substr(2) + ".debug");
      auto f = try_candidate(path, want);
      if (f) {
        out.found = std::move(*f);
        return out;
      }
      out.by_build_id.push_back(fmt::format("{} ({})", path, f.error()));
    }
  }

  // 2. .gnu_debuglink: beside the object, in .debug/ beside it, under each
  // ROOT + the object's directory. A name with a '/' is not a file name.
  if (auto link = read_debuglink(elf)) {
    out.debuglink = ElfFile::printable(link->name);
    if (link->name.find('/') == std::string::npos) {
      Want by_crc = want;
      by_crc.crc = link->crc;
      // The file's own directory (which may be /proc/PID/root/...), unless
      // it was opened through /proc/PID/map_files (no directory there).
      const std::string_view logical = object_path.empty() ? std::string_view(file) : object_path;
      const std::string_view beside = file.find("/map_files/") == std::string::npos ? dirname_of(file) : dirname_of(logical);
      std::vector<std::string> places{join(beside, "", link->name), join(beside, ".debug", link->name)};
      // Under ROOT the object's directory is absolute, as gdb makes it.
      std::error_code ec;
      const std::string abs_dir = std::filesystem::absolute(std::string(dirname_of(logical)), ec).lexically_normal();
      const std::string_view dir = ec ? dirname_of(logical) : std::string_view(abs_dir);
      for (const std::string& root : search.dirs) places.push_back(join(root, dir, link->name));
      for (size_t i = 0; i < places.size(); ++i) {
        const std::string& path = places[i];
        if (std::find(places.begin(), places.begin() + static_cast<long>(i), path) != places.begin() + static_cast<long>(i))
          continue;  // the same place twice (a debug dir that is the object's directory)
        auto f = try_candidate(path, by_crc);
        if (f) {
          out.found = std::move(*f);
          return out;
        }
        out.by_debuglink.push_back(fmt::format("{} ({})", path, f.error()));
      }
    } else {
      out.by_debuglink.push_back("(not a file name, not looked for)");
    }
  }

  // 3. debuginfod, by build-id.
  if (search.debuginfod) {
    DebuginfodAnswer a = ask_debuginfod(want.build_id);
    if (a.path) {
      auto f = try_candidate(*a.path, want);
      if (f) {
        out.found = std::move(*f);
        return out;
      }
      out.debuginfod = fmt::format("debuginfod gave {} ({})", *a.path, f.error());
    } else {
      out.debuginfod = std::move(a.said);
    }
  }
  return out;
}

std::string DebugFileSearch::describe() const {
  std::string out = "stripped: no .symtab, and no debug file";
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::vector<std::string> parts;
  if (!has_build_id)
    parts.push_back("no build-id to look one up by");
  else if (!by_build_id.empty())
    parts.push_back("by build-id at " + list(by_build_id));
  if (!debuglink.empty()) parts.push_back(fmt::format("by its .gnu_debuglink '{}' at {}", debuglink, list(by_debuglink)));
  if (!debuginfod.empty()) parts.push_back(debuginfod);
  for (size_t i = 0; i < parts.size(); ++i) out += (i == 0 ? ": " : "; ") + parts[i];
  return out;
}

}  // namespace hs
