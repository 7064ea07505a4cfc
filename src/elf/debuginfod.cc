// ask_debuginfod: libdebuginfod loaded on first use (see debuginfod.h).
#include "elf/debuginfod.h"

#include <dlfcn.h>
#include <elfutils/debuginfod.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace hs {
namespace {

// The three entry points we use, typed from the library's own header.
struct Library {
  decltype(&debuginfod_begin) begin = nullptr;
  decltype(&debuginfod_find_debuginfo) find_debuginfo = nullptr;
  decltype(&debuginfod_end) end = nullptr;
  std::string error;  // why it could not be loaded
};

const Library& library() {
  static const Library lib = [] {
    Library l;
    void* h = ::dlopen("libdebuginfod.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      l.error = e ? e : "dlopen failed";
      return l;
    }
    l.begin = reinterpret_cast<decltype(l.begin)>(::dlsym(h, "debuginfod_begin"));
    l.find_debuginfo = reinterpret_cast<decltype(l.find_debuginfo)>(::dlsym(h, "debuginfod_find_debuginfo"));
    l.end = reinterpret_cast<decltype(l.end)>(::dlsym(h, "debuginfod_end"));
    if (!l.begin || !l.find_debuginfo || !l.end) l.error = "libdebuginfod.so.1 lacks debuginfod_find_debuginfo";
    return l;
  }();
  return lib;
}

}  // namespace

DebuginfodAnswer ask_debuginfod(ByteView build_id) {
  DebuginfodAnswer out;
  const char* urls = std::getenv("DEBUGINFOD_URLS");
  if (!urls || !*urls) {
    out.said = "debuginfod not configured (DEBUGINFOD_URLS is unset)";
    return out;
  }
  if (build_id.empty()) {
    out.said = "debuginfod not asked (no build-id)";
    return out;
  }
  const Library& lib = library();
  if (!lib.error.empty()) {
    out.said = fmt::format("debuginfod not asked: {}", lib.error);
    return out;
  }
  debuginfod_client* client = lib.begin();
  if (!client) {
    out.said = "debuginfod not asked: debuginfod_begin failed";
    return out;
  }
  char* path = nullptr;
  const int fd = lib.find_debuginfo(client, build_id.data(), static_cast<int>(build_id.size()), &path);
  lib.end(client);
  if (fd >= 0) {
    ::close(fd);
    if (path) out.path = path;
  } else {
    out.said = fmt::format("debuginfod at {} has none ({})", urls, std::strerror(-fd));
  }
  std::free(path);
  if (fd >= 0 && !out.path) out.said = fmt::format("debuginfod at {} gave no path", urls);
  return out;
}

}  // namespace hs
