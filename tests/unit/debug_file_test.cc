// Separate debug files of stripped objects (issue 10, "symbols of real
// binaries"): found by build-id under each debug directory, by
// .gnu_debuglink in the three places gdb uses (checked by CRC), from a
// local debuginfod server; refused when the build-id or CRC is another's;
// and a "not found" that names every place looked at.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "elf/debug_file.h"
#include "elf/symbols.h"
#include "support/debuginfod_server.h"
#include "support/files.h"

namespace hs {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr std::string_view kId = "d0bb1e0123456789";  // the program's build-id
constexpr std::string_view kOtherId = "d0bb1e0123456780";

// prog (stripped, with a .gnu_debuglink naming prog.debug), its debug file,
// the debug file of another build, and one with the right build-id whose
// contents (so CRC) differ.
struct Built {
  std::string full, stripped, debug, other_debug, bad_crc_debug;
};

const Built& built() {
  static const TempDir dir("hs-debugfile");
  static const Built b = [] {
    Built r;
    const TempDir& d = dir;
    test::write_file(d.file("prog.c"),
                     "__attribute__((noinline, used)) static int secret(int x) { return x * FACTOR; }\n"
                     "int visible(int x) { return secret(x) + 1; }\n"
                     "int main(int c, char** v) { (void)v; return visible(c); }\n");
    r.full = d.file("prog-full");
    r.debug = d.file("prog.debug");
    r.stripped = d.file("prog");
    test::run(fmt::format("cd {0} && gcc -g -O1 -DFACTOR=3 -Wl,--build-id=0x{1} prog.c -o prog-full && "
                          "objcopy --only-keep-debug prog-full prog.debug && strip -o prog prog-full && "
                          "objcopy --add-gnu-debuglink=prog.debug prog",
                          d.path(), kId));
    r.other_debug = d.file("other.debug");
    test::run(fmt::format("cd {0} && gcc -g -O1 -DFACTOR=5 -Wl,--build-id=0x{1} prog.c -o other-full && "
                          "objcopy --only-keep-debug other-full other.debug",
                          d.path(), kOtherId));
    r.bad_crc_debug = d.file("bad-crc.debug");
    test::write_file(d.file("extra"), "not in the original\n");
    test::run(fmt::format("cd {0} && objcopy --add-section .hs_extra=extra prog.debug bad-crc.debug", d.path()));
    return r;
  }();
  return b;
}

void copy(const std::string& from, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

std::string build_id_path(const std::string& root, std::string_view id) {
  return fmt::format("{}/.build-id/{}/{}.debug", root, id.substr(0, 2), id.substr(2));
}

// The stripped program copied into dir/bin (its own directory for the
// .gnu_debuglink places).
std::string place_program(const TempDir& d) {
  const std::string p = d.file("bin/prog");
  copy(built().stripped, p);
  return p;
}

// Environment variables set for one test.
class Env {
 public:
  void set(const char* k, const std::string& v) {
    keep(k);
    ::setenv(k, v.c_str(), 1);
  }
  void unset(const char* k) {
    keep(k);
    ::unsetenv(k);
  }
  ~Env() {
    for (auto& [k, v] : saved_)
      if (v)
        ::setenv(k.c_str(), v->c_str(), 1);
      else
        ::unsetenv(k.c_str());
  }

 private:
  void keep(const char* k) {
    const char* v = ::getenv(k);
    saved_.emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::shared_ptr<ObjectSymbols> load(const std::string& path, const DebugSearch& s) {
  auto elf = ElfFile::open(path);
  EXPECT_TRUE(elf.has_value()) << elf.error().message();
  if (!elf) return nullptr;
  auto syms = ObjectSymbols::load(*elf, 0, s);
  EXPECT_TRUE(syms.has_value()) << syms.error().message();
  return syms ? *syms : nullptr;
}

// secret() is a static: only a debug file has it.
void expect_secret_found(const ObjectSymbols& syms) {
  auto s = syms.lookup("secret");
  ASSERT_TRUE(s.has_value()) << s.error().message();
  auto full = ElfFile::open(built().full);
  ASSERT_TRUE(full.has_value());
  auto table = full->symbols(*full->symtab_index());
  ASSERT_TRUE(table.has_value());
  bool seen = false;
  for (const ElfSymbol& sym : *table) {
    if (sym.name != "secret") continue;
    EXPECT_EQ(s->addr.value(), sym.st_value);
    seen = true;
  }
  EXPECT_TRUE(seen);
}

TEST(DebugFile, DebuglinkCrcIsTheOneObjcopyWrote) {
  auto elf = ElfFile::open(built().stripped);
  ASSERT_TRUE(elf.has_value());
  auto link = read_debuglink(*elf);
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->name, "prog.debug");
  EXPECT_EQ(link->crc, debuglink_crc32(test::read_bytes(built().debug)));
  EXPECT_NE(link->crc, debuglink_crc32(test::read_bytes(built().bad_crc_debug)));
  // The CRC-32 check value ("123456789").
  const std::string_view nine = "123456789";
  EXPECT_EQ(debuglink_crc32(ByteView(reinterpret_cast<const u8*>(nine.data()), nine.size())), 0xcbf43926u);
}

TEST(DebugFile, FoundByBuildIdInTheFirstDebugDirHoldingIt) {
  TempDir d("hs-debugfile");
  const std::string prog = place_program(d);
  copy(built().debug, build_id_path(d.file("second"), kId));
  auto syms = load(prog, DebugSearch{.dirs = {d.file("first"), d.file("second")}, .debuginfod = false});
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "debug file " + build_id_path(d.file("second"), kId));
  expect_secret_found(*syms);
}

TEST(DebugFile, FoundByDebuglinkInEachPlaceGdbLooks) {
  TempDir d("hs-debugfile");
  const std::string prog = place_program(d);
  const std::string root = d.file("root");
  for (const std::string& place :
       {d.file("bin/prog.debug"), d.file("bin/.debug/prog.debug"), root + d.file("bin/prog.debug")}) {
    SCOPED_TRACE(place);
    copy(built().debug, place);
    auto syms = load(prog, DebugSearch{.dirs = {root}, .debuginfod = false});
    ASSERT_NE(syms, nullptr);
    EXPECT_EQ(syms->source(), "debug file " + place);
    expect_secret_found(*syms);
    fs::remove(place);
  }
}

TEST(DebugFile, AnotherBuildsDebugFileIsNotUsed) {
  TempDir d("hs-debugfile");
  const std::string prog = place_program(d);
  const std::string root = d.file("root");
  // Another build's debug file where this one's belongs, both ways.
  copy(built().other_debug, build_id_path(root, kId));
  copy(built().other_debug, d.file("bin/prog.debug"));
  // Right build-id, other contents: the CRC says no.
  copy(built().bad_crc_debug, d.file("bin/.debug/prog.debug"));
  auto syms = load(prog, DebugSearch{.dirs = {root}, .debuginfod = false});
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "dynsym");
  auto s = syms->lookup("secret");
  ASSERT_FALSE(s.has_value());
  const u32 want = debuglink_crc32(test::read_bytes(built().debug));
  const u32 got = debuglink_crc32(test::read_bytes(built().bad_crc_debug));
  EXPECT_EQ(s.error().message(),
            fmt::format("symbol 'secret' not found in {0} (stripped: no .symtab, and no debug file: by build-id at "
                        "{1} (build-id {2} differs); by its .gnu_debuglink 'prog.debug' at {3}/bin/prog.debug "
                        "(build-id {2} differs), {3}/bin/.debug/prog.debug (CRC {4:08x}, not the {5:08x} "
                        ".gnu_debuglink gives), {6}{3}/bin/prog.debug (absent))",
                        prog, build_id_path(root, kId), kOtherId, d.path(), got, want, root));
}

TEST(DebugFile, NotFoundNamesEveryPlaceAndThatDebuginfodIsNotConfigured) {
  TempDir d("hs-debugfile");
  const std::string prog = place_program(d);
  Env env;
  env.unset("DEBUGINFOD_URLS");
  auto syms = load(prog, DebugSearch::with_default({d.file("a"), d.file("b")}));
  ASSERT_NE(syms, nullptr);
  auto s = syms->lookup("secret");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().message(),
            fmt::format("symbol 'secret' not found in {0} (stripped: no .symtab, and no debug file: by build-id at "
                        "{1} (absent), {2} (absent), {3} (absent); by its .gnu_debuglink 'prog.debug' at "
                        "{4}/bin/prog.debug (absent), {4}/bin/.debug/prog.debug (absent), {5}{4}/bin/prog.debug "
                        "(absent), {6}{4}/bin/prog.debug (absent), /usr/lib/debug{4}/bin/prog.debug (absent); "
                        "debuginfod not configured (DEBUGINFOD_URLS is unset))",
                        prog, build_id_path(d.file("a"), kId), build_id_path(d.file("b"), kId),
                        build_id_path("/usr/lib/debug", kId), d.path(), d.file("a"), d.file("b")));
  EXPECT_EQ(syms->source(), "dynsym");
}

// ---------------------------------------------------------------------------
// debuginfod: elfutils' server on 127.0.0.1, serving a directory the test
// fills with the debug file, with a private client cache.

TEST(Debuginfod, FetchedIntoItsCacheWhenNoLocalPlaceHasIt) {
  TempDir d("hs-debuginfod");
  const std::string prog = place_program(d);
  copy(built().debug, d.file("served/prog.debug"));
  auto server = test::DebuginfodServer::start(d.file("served"), d.path());
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->serves(std::string(kId))) << server->log();
  Env env;
  env.set("DEBUGINFOD_URLS", server->url());
  env.set("DEBUGINFOD_CACHE_PATH", d.file("cache"));
  env.set("DEBUGINFOD_TIMEOUT", "20");
  const std::string cached = d.file(fmt::format("cache/{}/debuginfo", kId));

  auto syms = load(prog, DebugSearch{.dirs = {d.file("none")}});
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "debug file " + cached);
  expect_secret_found(*syms);
  EXPECT_EQ(test::read_bytes(cached), test::read_bytes(built().debug));

  // The cache answers once the server is gone.
  server->stop();
  auto again = load(prog, DebugSearch{.dirs = {d.file("none")}});
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->source(), "debug file " + cached);

  // Not asked when the caller says so (another object's exports).
  auto local = load(prog, DebugSearch{.dirs = {d.file("none")}, .debuginfod = false});
  ASSERT_NE(local, nullptr);
  EXPECT_EQ(local->source(), "dynsym");
}

TEST(Debuginfod, AServerWithoutItIsNamedInTheMessage) {
  TempDir d("hs-debuginfod");
  const std::string prog = place_program(d);
  copy(built().other_debug, d.file("served/other.debug"));  // not this build's
  auto server = test::DebuginfodServer::start(d.file("served"), d.path());
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->serves(std::string(kOtherId))) << server->log();
  Env env;
  env.set("DEBUGINFOD_URLS", server->url());
  env.set("DEBUGINFOD_CACHE_PATH", d.file("cache"));
  env.set("DEBUGINFOD_TIMEOUT", "20");
  auto syms = load(prog, DebugSearch{.dirs = {d.file("none")}});
  ASSERT_NE(syms, nullptr);
  auto s = syms->lookup("secret");
  ASSERT_FALSE(s.has_value());
  const std::string msg = s.error().message();
  EXPECT_TRUE(msg.ends_with(fmt::format("; debuginfod at {} has none (No such file or directory))", server->url())))
      << msg;
}

}  // namespace
}  // namespace hs
