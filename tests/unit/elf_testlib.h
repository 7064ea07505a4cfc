// Helpers shared by elf_test and payload_test: a scratch directory, running
// the toolchain, and a real payload built at test time from a patch source
// that uses the public header, the way `hotsplice build` would build it.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "elf/elf_file.h"
#include "support/bytes.h"

namespace hs::testlib {

// A directory under /tmp, removed (with its contents) at exit.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hs-elf-test-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) std::abort();
}

inline void write_bytes(const std::string& path, ByteView b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) std::abort();
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Runs a shell command; true on exit status 0. Output goes to the test log.
inline bool run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc != 0) ADD_FAILURE() << "command failed (" << rc << "): " << cmd;
  return rc == 0;
}

// A GNU build-id note in assembler, for `.livepatch.depends` and friends.
inline std::string note_asm(std::string_view section, u8 fill) {
  std::string s = fmt::format(".section {},\"a\",@note\n.balign 4\n.long 4\n.long 20\n.long 3\n.asciz \"GNU\"\n.byte ",
                              section);
  for (int i = 0; i < 20; ++i) s += fmt::format("{}{}", i ? "," : "", fill);
  return s + "\n";
}

// The patch source of the good payload: two replacements (one with an
// expectation), one NOP-out, metadata, a load hook and a pre-apply hook.
inline constexpr std::string_view kPatchSource = R"(#include <hotsplice/livepatch.h>
int helper_global = 5;
static int fixed_hello(void) { return 2 + helper_global; }
int fixed_other(int x) { return x * 3 + helper_global; }
static void on_load(void) { helper_global = 1; }
static int pre(void *p) { (void)p; return 0; }
HOTSPLICE_REPLACE("hello", fixed_hello);
HOTSPLICE_REPLACE_EXPECT("main.c#other", fixed_other, 0x55, 0x48, 0x89, 0xe5);
HOTSPLICE_NOP("debug_log,2", 5);
HOTSPLICE_INFO("cve", "CVE-2026-0001");
HOTSPLICE_INFO("description", "fix hello");
HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_PREAPPLY_HOOK(pre);
)";

inline constexpr u8 kDependsFill = 0x11;
inline constexpr u8 kObjectDependsFill = 0x22;
inline constexpr u32 kOldSize = 0x20;

// Builds `name`.lp in dir from kPatchSource: compile, add the two dependency
// notes, `ld -r --build-id=sha1`, then fill in old_size like the builder does.
inline std::string build_payload(const TempDir& dir, std::string_view source = kPatchSource,
                                 std::string_view name = "fix") {
  const std::string c = dir.file(fmt::format("{}.c", name)), o = dir.file(fmt::format("{}.o", name));
  const std::string s = dir.file(fmt::format("{}-deps.s", name)), so = dir.file(fmt::format("{}-deps.o", name));
  const std::string lp = dir.file(fmt::format("{}.lp", name));
  write_file(c, source);
  write_file(s, note_asm(".livepatch.depends", kDependsFill) + note_asm(".livepatch.object_depends", kObjectDependsFill) +
                    ".section .note.GNU-stack,\"\",@progbits\n");
  if (!run(fmt::format("gcc -O2 -fPIC -ffunction-sections -fdata-sections -I{}/include -c {} -o {}", HS_SOURCE_DIR, c,
                       o)))
    return {};
  if (!run(fmt::format("gcc -c {} -o {}", s, so))) return {};
  if (!run(fmt::format("ld -r --build-id=sha1 {} {} -o {}", o, so, lp))) return {};

  Bytes bytes = read_bytes(lp);
  auto elf = ElfFile::create(bytes);
  if (!elf) {
    ADD_FAILURE() << elf.error().message();
    return {};
  }
  if (auto idx = elf->find_section(".livepatch.funcs")) {
    const Elf64_Shdr& sh = elf->sections()[*idx];
    for (u64 off = 0; off + 104 <= sh.sh_size; off += 104) {
      u8* f = bytes.data() + sh.sh_offset + off;
      if (load_le<u32>(f + 28) == 0) store_le<u32>(f + 28, kOldSize);
    }
  }
  write_bytes(lp, bytes);
  return lp;
}

}  // namespace hs::testlib
