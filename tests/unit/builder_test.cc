// Tests of the hand-written-mode payload builder: real gcc, real ld, a target
// compiled by the test, and the e2e patches against the e2e targets.
#include "builder/builder.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "elf/elf_file.h"
#include "payload/payload.h"
#include "elf/symbols.h"
#include "support/files.h"

namespace hs {
namespace {

namespace fs = std::filesystem;

// A scratch directory per test, removed afterwards.
class TempTree : public test::TempDir {
 public:
  TempTree() : TempDir("hs-builder-test") {}
  std::string path(const std::string& name) const { return file(name); }
};

constexpr const char* kTargetSource = R"(
volatile int sink;
__attribute__((noipa)) int hello(void) { sink++; return 1; }
__attribute__((noipa)) int world(void) { sink += 2; return 10; }
__attribute__((noipa)) static int local_twice(int x) { sink++; return x * 2; }
int main(void) { return hello() + world() + local_twice(sink); }
)";

constexpr const char* kPatchSource = R"(
#include <hotsplice/livepatch.h>
static int fixed_hello(void) { return 2; }
HOTSPLICE_REPLACE("hello", fixed_hello);
HOTSPLICE_NOP("world", 3);
HOTSPLICE_INFO("cve", "CVE-0000-0001");
)";

// Compiles a C file into an executable with gcc; fails the test on error.
std::string compile_target(const TempTree& t, const std::string& name, const std::string& source,
                           const std::vector<std::string>& extra = {}) {
  std::string src = t.write(name + ".c", source);
  std::string exe = t.path(name);
  std::vector<std::string> argv = {"gcc", "-O2", "-g", "-o", exe, src};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto run = run_tool(argv);
  EXPECT_TRUE(run.has_value()) << (run ? "" : run.error().message());
  if (run) {
    EXPECT_EQ(run->exit_status, 0) << run->output;
  }
  return exe;
}

Bytes build_id_of(const std::string& path) {
  auto elf = ElfFile::open(path);
  EXPECT_TRUE(elf.has_value()) << (elf ? "" : elf.error().message());
  if (!elf) return {};
  auto id = elf->build_id();
  EXPECT_TRUE(id.has_value());
  return id ? Bytes(id->begin(), id->end()) : Bytes{};
}

// st_size of a symbol by exact name in the file's .symtab (first match).
std::optional<ElfSymbol> symbol_of(const ElfFile& elf, std::string_view name) {
  auto idx = elf.symtab_index();
  if (!idx) return std::nullopt;
  auto syms = elf.symbols(*idx);
  if (!syms) return std::nullopt;
  for (const ElfSymbol& s : *syms) {
    if (s.name == name && s.defined()) return s;
  }
  return std::nullopt;
}

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = compile_target(tree_, "target", kTargetSource);
    patch_ = tree_.write("fix.c", kPatchSource);
  }
  BuildOptions options(const std::string& out) const {
    BuildOptions o;
    o.sources = {patch_};
    o.target = target_;
    o.output = tree_.path(out);
    return o;
  }

  TempTree tree_;
  std::string target_, patch_;
};

TEST_F(BuilderTest, FillsSizesFromPatchAndTarget) {
  auto report = build_payload(options("fix.lp"));
  ASSERT_TRUE(report.has_value()) << report.error().message();
  ASSERT_EQ(report->funcs.size(), 2u);

  auto target = ElfFile::open(target_);
  ASSERT_TRUE(target.has_value());
  auto hello = symbol_of(*target, "hello");
  auto world = symbol_of(*target, "world");
  ASSERT_TRUE(hello && world);

  auto payload = Payload::open(report->output);
  ASSERT_TRUE(payload.has_value()) << payload.error().message();
  ASSERT_EQ(payload->funcs.size(), 2u);
  auto fixed = symbol_of(payload->elf, "fixed_hello");
  ASSERT_TRUE(fixed);

  // The compiler may emit the entries in any order.
  auto by_name = [&](const std::string& n) -> const FuncSpec& {
    auto it = std::find_if(payload->funcs.begin(), payload->funcs.end(), [&](const FuncSpec& f) { return f.name == n; });
    EXPECT_NE(it, payload->funcs.end()) << n;
    return it == payload->funcs.end() ? payload->funcs.front() : *it;
  };
  auto report_of = [&](const std::string& n) -> const BuiltFunc& {
    auto it = std::find_if(report->funcs.begin(), report->funcs.end(), [&](const BuiltFunc& f) { return f.name == n; });
    EXPECT_NE(it, report->funcs.end()) << n;
    return it == report->funcs.end() ? report->funcs.front() : *it;
  };
  const FuncSpec& f0 = by_name("hello");
  ASSERT_TRUE(f0.new_ref.has_value());
  EXPECT_EQ(f0.new_size, fixed->st_size);
  EXPECT_EQ(f0.old_size, hello->st_size);
  EXPECT_TRUE(report_of("hello").new_size_filled);
  EXPECT_TRUE(report_of("hello").old_size_filled);
  EXPECT_FALSE(report_of("hello").nop);

  const FuncSpec& f1 = by_name("world");
  EXPECT_FALSE(f1.new_ref.has_value());
  EXPECT_EQ(f1.new_size, 3u);  // as written
  EXPECT_EQ(f1.old_size, world->st_size);
  EXPECT_TRUE(report_of("world").nop);
  EXPECT_FALSE(report_of("world").new_size_filled);
  EXPECT_TRUE(report_of("world").old_size_filled);

  ASSERT_EQ(payload->modinfo.size(), 1u);
  EXPECT_EQ(payload->modinfo[0].first, "cve");
  EXPECT_EQ(payload->modinfo[0].second, "CVE-0000-0001");
}

TEST_F(BuilderTest, NotesNameTheTarget) {
  auto report = build_payload(options("fix.lp"));
  ASSERT_TRUE(report.has_value()) << report.error().message();
  const Bytes target_id = build_id_of(target_);
  ASSERT_FALSE(target_id.empty());

  auto payload = Payload::open(report->output);
  ASSERT_TRUE(payload.has_value()) << payload.error().message();
  EXPECT_EQ(payload->depends, target_id);
  EXPECT_EQ(payload->object_depends, target_id);
  EXPECT_EQ(report->depends, target_id);
  EXPECT_EQ(report->object_depends, target_id);
  EXPECT_EQ(report->build_id, payload->build_id);
  EXPECT_EQ(report->build_id.size(), 20u);  // sha1
  EXPECT_NE(report->build_id, target_id);

  // The raw sections are single GNU build-id notes.
  const ElfFile& elf = payload->elf;
  for (const char* name : {".livepatch.depends", ".livepatch.object_depends"}) {
    auto idx = elf.find_section(name);
    ASSERT_TRUE(idx.has_value()) << name;
    EXPECT_EQ(elf.sections()[*idx].sh_type, static_cast<u32>(SHT_NOTE)) << name;
    ByteView data = elf.section_data(*idx);
    EXPECT_EQ(Bytes(data.begin(), data.end()), make_build_id_note(target_id)) << name;
  }
}

TEST_F(BuilderTest, StacksOnAnEarlierPayload) {
  auto a = build_payload(options("a.lp"));
  ASSERT_TRUE(a.has_value()) << a.error().message();

  std::string b_src = tree_.write("b.c", R"(
#include <hotsplice/livepatch.h>
static int hello_three(void) { return 3; }
HOTSPLICE_REPLACE("hello", hello_three);
)");
  BuildOptions o = options("b.lp");
  o.sources = {b_src};
  o.depends_payload = a->output;
  auto b = build_payload(o);
  ASSERT_TRUE(b.has_value()) << b.error().message();

  auto payload = Payload::open(b->output);
  ASSERT_TRUE(payload.has_value()) << payload.error().message();
  EXPECT_EQ(payload->depends, a->build_id);
  EXPECT_EQ(payload->object_depends, build_id_of(target_));
  EXPECT_NE(payload->build_id, a->build_id);
}

TEST_F(BuilderTest, StackingChecksTheTarget) {
  auto a = build_payload(options("a.lp"));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  std::string other = compile_target(tree_, "other", std::string(kTargetSource) + "int other_marker = 7;\n");

  BuildOptions o = options("b.lp");
  o.target = other;
  o.depends_payload = a->output;
  auto b = build_payload(o);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().kind(), ErrorKind::BadTarget);
  EXPECT_NE(b.error().message().find("was built for object build-id " + to_hex(build_id_of(target_))),
            std::string::npos)
      << b.error().message();
  EXPECT_NE(b.error().message().find(other), std::string::npos) << b.error().message();
  EXPECT_FALSE(fs::exists(o.output));
}

TEST_F(BuilderTest, StackingWithoutTargetNeedsSizes) {
  auto a = build_payload(options("a.lp"));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  BuildOptions o = options("b.lp");
  o.target.clear();
  o.depends_payload = a->output;
  auto b = build_payload(o);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().message().find("old_size is 0 and no target binary was given to look it up"), std::string::npos)
      << b.error().message();
}

TEST_F(BuilderTest, UnknownFunctionIsRefused) {
  std::string src = tree_.write("unknown.c", R"(
#include <hotsplice/livepatch.h>
static int f(void) { return 0; }
HOTSPLICE_REPLACE("no_such_function", f);
)");
  BuildOptions o = options("u.lp");
  o.sources = {src};
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::BadTarget);
  const std::string& msg = r.error().message();
  EXPECT_NE(msg.find("cannot patch 'no_such_function'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(o.output));
}

TEST_F(BuilderTest, VariableIsNotAFunction) {
  std::string src = tree_.write("var.c", R"(
#include <hotsplice/livepatch.h>
static int f(void) { return 0; }
HOTSPLICE_REPLACE("sink", f);
)");
  BuildOptions o = options("v.lp");
  o.sources = {src};
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("not in an executable section"), std::string::npos) << r.error().message();
}

TEST_F(BuilderTest, LocalFunctionByName) {
  std::string src = tree_.write("local.c", R"(
#include <hotsplice/livepatch.h>
static int twice_fixed(int x) { return x * 3; }
HOTSPLICE_REPLACE("local_twice", twice_fixed);
)");
  BuildOptions o = options("l.lp");
  o.sources = {src};
  auto r = build_payload(o);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  auto target = ElfFile::open(target_);
  ASSERT_TRUE(target.has_value());
  auto sym = symbol_of(*target, "local_twice");
  ASSERT_TRUE(sym);
  ASSERT_EQ(r->funcs.size(), 1u);
  EXPECT_EQ(r->funcs[0].old_size, sym->st_size);
}

TEST_F(BuilderTest, NewFunctionFromAnotherSource) {
  std::string a = tree_.write("uses.c", R"(
#include <hotsplice/livepatch.h>
int hello_elsewhere(void);
HOTSPLICE_REPLACE("hello", hello_elsewhere);
)");
  std::string b = tree_.write("defines.c", R"(
extern volatile int sink;
int hello_elsewhere(void) { sink += 5; return sink; }
)");
  BuildOptions o = options("x.lp");
  o.sources = {a, b};
  auto r = build_payload(o);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  auto payload = Payload::open(r->output);
  ASSERT_TRUE(payload.has_value()) << payload.error().message();
  auto sym = symbol_of(payload->elf, "hello_elsewhere");
  ASSERT_TRUE(sym);
  ASSERT_EQ(r->funcs.size(), 1u);
  EXPECT_EQ(r->funcs[0].new_size, sym->st_size);
  EXPECT_GT(r->funcs[0].new_size, 0u);
}

TEST_F(BuilderTest, CompileErrorShowsTheCompilersLine) {
  fs::create_directories(tree_.path("broken"));
  std::string src = tree_.write("broken/fix.c", "#include <hotsplice/livepatch.h>\nint f(void) { return 1 }\n");
  BuildOptions o = options("c.lp");
  o.sources = {src};
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::Io);
  const std::string& msg = r.error().message();
  const std::string prefix = "compiling " + src + " failed: ";
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
  EXPECT_NE(msg.find("fix.c:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("error:"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST_F(BuilderTest, ExtraCflagsAreUsed) {
  std::string src = tree_.write("flag.c", R"(
#include <hotsplice/livepatch.h>
#ifndef RESULT
#error RESULT not defined
#endif
static int fixed(void) { return RESULT; }
HOTSPLICE_REPLACE("hello", fixed);
)");
  BuildOptions o = options("f.lp");
  o.sources = {src};
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("RESULT not defined"), std::string::npos) << r.error().message();
  o.cflags = {"-DRESULT=9"};
  r = build_payload(o);
  EXPECT_TRUE(r.has_value()) << r.error().message();
}

TEST_F(BuilderTest, MissingTargetIsNamed) {
  BuildOptions o = options("m.lp");
  o.target = tree_.path("no-such-binary");
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message().rfind("target " + o.target + ": ", 0), 0u) << r.error().message();
}

TEST_F(BuilderTest, TargetWithoutBuildIdIsRefused) {
  std::string exe = compile_target(tree_, "noid", kTargetSource, {"-Wl,--build-id=none"});
  BuildOptions o = options("n.lp");
  o.target = exe;
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::BadTarget);
  EXPECT_EQ(r.error().message().rfind("target " + exe + ": ", 0), 0u) << r.error().message();
}

TEST_F(BuilderTest, BadOptions) {
  BuildOptions o = options("o.lp");
  o.sources.clear();
  EXPECT_EQ(build_payload(o).error().kind(), ErrorKind::Usage);
  o = options("o.lp");
  o.output.clear();
  EXPECT_EQ(build_payload(o).error().kind(), ErrorKind::Usage);
  o = options("o.lp");
  o.target.clear();
  EXPECT_EQ(build_payload(o).error().kind(), ErrorKind::Usage);
  o = options("o.lp");
  o.sources = {tree_.path("missing.c")};
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("missing.c"), std::string::npos) << r.error().message();
}

TEST_F(BuilderTest, MissingCompilerIsNamed) {
  BuildOptions o = options("cc.lp");
  o.cc = "hotsplice-no-such-cc";
  auto r = build_payload(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind(), ErrorKind::Io);
  EXPECT_NE(r.error().message().find("cannot run 'hotsplice-no-such-cc'"), std::string::npos)
      << r.error().message();
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (saved_) ::setenv(name_, saved_->c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST_F(BuilderTest, TempsRemovedUnlessKept) {
  const std::string tmp = tree_.path("tmp");
  fs::create_directories(tmp);
  ScopedEnv env("TMPDIR", tmp);

  auto r = build_payload(options("t.lp"));
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_TRUE(fs::is_empty(tmp));
  EXPECT_TRUE(r->temp_dir.empty());

  BuildOptions o = options("k.lp");
  o.keep_temps = true;
  auto k = build_payload(o);
  ASSERT_TRUE(k.has_value()) << k.error().message();
  ASSERT_FALSE(k->temp_dir.empty());
  EXPECT_EQ(fs::path(k->temp_dir).parent_path(), fs::path(tmp));
  EXPECT_TRUE(fs::exists(fs::path(k->temp_dir) / "notes.s"));
  EXPECT_TRUE(fs::exists(fs::path(k->temp_dir) / "payload.lp"));

  // A failure cleans up too.
  std::error_code ec;
  fs::remove_all(k->temp_dir, ec);
  o = options("u.lp");
  o.sources = {tree_.write("bad.c", "int x = ;\n")};
  EXPECT_FALSE(build_payload(o).has_value());
  EXPECT_TRUE(fs::is_empty(tmp));
}

TEST(RunTool, CapturesOutputAndStatus) {
  auto r = run_tool({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_NE(r->output.find("out\n"), std::string::npos);
  EXPECT_NE(r->output.find("err\n"), std::string::npos);
  auto k = run_tool({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->exit_status, 128 + 9);
}

TEST(IncludeDir, FindsThePublicHeader) {
  auto dir = find_include_dir();
  ASSERT_TRUE(dir.has_value()) << dir.error().message();
  EXPECT_TRUE(fs::exists(fs::path(*dir) / "hotsplice" / "livepatch.h"));
}

// ---------------------------------------------------------------------------
// Every patch of tests/e2e/patches against its e2e target. The header comment
// of each patch says, one per line:
//   target: NAME          the target binary in the e2e targets directory
//   depends: PATCH.c      stack on that patch's payload
//   build-error: TEXT     the build must fail with TEXT in the message
//   apply-error: TEXT     it builds, but apply must fail (its expectation does
//                         not match the target)

// The n bytes at virtual address addr of an ET_EXEC / ET_DYN file (empty if
// not inside a section with contents).
Bytes bytes_at(const ElfFile& elf, u64 addr, size_t n) {
  for (size_t i = 1; i < elf.sections().size(); ++i) {
    const Elf64_Shdr& s = elf.sections()[i];
    if (!(s.sh_flags & SHF_ALLOC) || s.sh_type == SHT_NOBITS) continue;
    if (addr < s.sh_addr || addr - s.sh_addr >= s.sh_size) continue;
    ByteView d = elf.section_data(i);
    u64 off = addr - s.sh_addr;
    if (n > d.size() - off) return {};
    return Bytes(d.begin() + static_cast<ptrdiff_t>(off), d.begin() + static_cast<ptrdiff_t>(off + n));
  }
  return {};
}

// Direct calls or jumps (e8 rel32, e9 rel32, eb rel8) to `addr` anywhere in
// the executable sections: a patched function that callers reach this way was
// not inlined away. (A byte scan, not a disassembly: it can over-count, which
// is harmless for a "> 0" check.)
int direct_branches_to(const ElfFile& elf, u64 addr) {
  int n = 0;
  for (size_t i = 1; i < elf.sections().size(); ++i) {
    const Elf64_Shdr& s = elf.sections()[i];
    if (!(s.sh_flags & SHF_EXECINSTR) || s.sh_type == SHT_NOBITS) continue;
    ByteView d = elf.section_data(i);
    for (size_t off = 0; off + 2 <= d.size(); ++off) {
      const u64 at = s.sh_addr + off;
      if ((d[off] == 0xe8 || d[off] == 0xe9) && off + 5 <= d.size()) {
        if (at + 5 + static_cast<u64>(static_cast<i64>(load_le<i32>(d.data() + off + 1))) == addr) ++n;
      } else if (d[off] == 0xeb) {
        if (at + 2 + static_cast<u64>(static_cast<i64>(static_cast<int8_t>(d[off + 1]))) == addr) ++n;
      }
    }
  }
  return n;
}

struct PatchHeader {
  std::string target;
  std::optional<std::string> depends;
  std::optional<std::string> build_error;
  std::optional<std::string> apply_error;
};

PatchHeader read_header(const fs::path& file) {
  PatchHeader h;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&](std::string_view key) -> std::optional<std::string> {
      if (!line.starts_with(key)) return std::nullopt;
      std::string v = line.substr(key.size());
      v.erase(0, v.find_first_not_of(' '));
      v.erase(v.find_last_not_of(" \r") + 1);
      return v;
    };
    if (auto v = value(" * target:")) h.target = *v;
    if (auto v = value(" * depends:")) h.depends = *v;
    if (auto v = value(" * build-error:")) h.build_error = *v;
    if (auto v = value(" * apply-error:")) h.apply_error = *v;
    if (line.find("*/") != std::string::npos) break;
  }
  return h;
}

constexpr u8 kEndbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};

struct BuiltPatch {
  std::string output;
  Bytes build_id;
};

class E2ePatches : public ::testing::Test {
 protected:
  static std::string target_dir() { return std::string(HS_BINARY_DIR) + "/tests/e2e/targets"; }
  static std::string patch_dir() { return std::string(HS_SOURCE_DIR) + "/tests/e2e/patches"; }

  // Builds one patch (and what it depends on), checks the result against the
  // target; nullopt if it did not (or must not) build.
  std::optional<BuiltPatch> build_one(const fs::path& patch) {
    const std::string name = patch.filename().string();
    if (auto it = built_.find(name); it != built_.end()) return it->second;
    SCOPED_TRACE(name);
    PatchHeader h = read_header(patch);
    EXPECT_FALSE(h.target.empty()) << "no ' * target:' line";
    if (h.target.empty()) return std::nullopt;
    BuildOptions o;
    o.sources = {patch.string()};
    o.target = target_dir() + "/" + h.target;
    o.output = tree_.path(patch.stem().string() + ".lp");
    o.cflags = {"-Wall", "-Wextra", "-Werror"};
    std::optional<BuiltPatch> dep;
    if (h.depends) {
      dep = build_one(fs::path(patch_dir()) / *h.depends);
      EXPECT_TRUE(dep.has_value()) << "depends on " << *h.depends << ", which did not build";
      if (!dep) return std::nullopt;
      o.depends_payload = dep->output;
    }
    auto r = build_payload(o);
    if (h.build_error) {
      EXPECT_FALSE(r.has_value()) << "should not build";
      if (!r) {
        EXPECT_NE(r.error().message().find(*h.build_error), std::string::npos) << r.error().message();
      }
      return std::nullopt;
    }
    EXPECT_TRUE(r.has_value()) << r.error().message();
    if (!r) return std::nullopt;

    auto target = ElfFile::open(o.target);
    EXPECT_TRUE(target.has_value()) << target.error().message();
    if (!target) return std::nullopt;
    const Bytes target_id = build_id_of(o.target);
    EXPECT_EQ(r->object_depends, target_id);
    EXPECT_EQ(r->depends, dep ? dep->build_id : target_id);

    auto payload = Payload::open(r->output);
    EXPECT_TRUE(payload.has_value()) << payload.error().message();
    auto tsyms = ObjectSymbols::load(*target, 0);
    EXPECT_TRUE(tsyms.has_value()) << tsyms.error().message();
    if (!payload || !tsyms) return std::nullopt;
    EXPECT_EQ(payload->funcs.size(), r->funcs.size());
    const bool shared_lib = h.target.ends_with(".so");

    for (const FuncSpec& f : payload->funcs) {
      SCOPED_TRACE(f.name);
      auto ts = (*tsyms)->lookup_function(f.name);  // as the builder and loader look it up
      EXPECT_TRUE(ts.has_value()) << ts.error().message();
      if (!ts) continue;
      const u64 addr = ts->addr.value();
      EXPECT_EQ(f.old_size, ts->size);
      const Bytes head = bytes_at(*target, addr, sizeof kEndbr64);
      const bool endbr = head == Bytes(std::begin(kEndbr64), std::end(kEndbr64));
      const u32 site = f.new_ref ? 5 : f.new_size;
      EXPECT_GE(f.old_size, site + (endbr ? 4u : 0u)) << "too short to patch";
      if (f.new_ref) {
        EXPECT_GT(f.new_size, 0u);
      }
      // Callers in the same object reach it by a direct call or jump; the
      // library's only caller is the program (through the PLT).
      if (!shared_lib) {
        EXPECT_GT(direct_branches_to(*target, addr), 0) << "inlined away?";
      }
      if (!f.expect.empty()) {
        const bool matches = bytes_at(*target, addr, f.expect.size()) == f.expect;
        EXPECT_EQ(matches, !h.apply_error.has_value())
            << "expectation " << to_hex(f.expect) << " vs target "
            << to_hex(bytes_at(*target, addr, f.expect.size()));
      }
    }
    BuiltPatch b{r->output, r->build_id};
    built_[name] = b;
    return b;
  }

  TempTree tree_;
  std::map<std::string, BuiltPatch> built_;
};

TEST_F(E2ePatches, EveryPatchBuildsAgainstItsTarget) {
  if (!fs::exists(target_dir() + "/hello")) GTEST_SKIP() << "e2e targets not built in " << target_dir();
  std::vector<fs::path> patches;
  for (const auto& e : fs::directory_iterator(patch_dir())) {
    if (e.path().extension() == ".c") patches.push_back(e.path());
  }
  std::sort(patches.begin(), patches.end());
  ASSERT_GE(patches.size(), 10u);
  size_t refused = 0;
  for (const fs::path& p : patches) {
    if (read_header(p).build_error) ++refused;
    build_one(p);
  }
  EXPECT_EQ(built_.size() + refused, patches.size());
}

}  // namespace
}  // namespace hs
