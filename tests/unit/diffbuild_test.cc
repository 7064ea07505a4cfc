// Unit tests of the diff-mode builder's pieces: unified diff parsing, -p
// detection, applying hunks, line mapping (patch_file.h); the compiler
// wrapper's reading of a command line (wrapper.h); and the correlation of
// GCC's renamed symbols when two objects are compared (compare.h), on
// objects compiled by the test with real gcc -O2.
#include <filesystem>

#include <gtest/gtest.h>

#include "builder/compare.h"
#include "builder/patch_file.h"
#include "builder/wrapper.h"
#include "support/files.h"

namespace hs {
namespace {

namespace fs = std::filesystem;

constexpr const char* kGitDiff = R"(From 1234 Mon Sep 17 00:00:00 2001
Subject: [PATCH] fix it

diff --git a/src/util.c b/src/util.c
index 0000000..1111111 100644
--- a/src/util.c
+++ b/src/util.c
@@ -2,3 +2,4 @@ int a;
 two
-three
+THREE
+three and a half
 four
@@ -10,2 +11,2 @@
 ten
-eleven
+ELEVEN
diff --git a/src/new.c b/src/new.c
new file mode 100644
--- /dev/null
+++ b/src/new.c
@@ -0,0 +1,2 @@
+int fresh;
+int fresher;
\ No newline at end of file
)";

TEST(PatchParse, GitDiffWithMailHeaderAndNewFile) {
  auto p = parse_patch(kGitDiff, "fix.patch");
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_EQ(p->files.size(), 2u);
  EXPECT_EQ(p->files[0].old_path, "a/src/util.c");
  EXPECT_EQ(p->files[0].new_path, "b/src/util.c");
  ASSERT_EQ(p->files[0].hunks.size(), 2u);
  EXPECT_EQ(p->files[0].hunks[0].header, "@@ -2,3 +2,4 @@");
  EXPECT_EQ(p->files[0].hunks[1].lines.size(), 3u);
  EXPECT_TRUE(p->files[1].creates());
  EXPECT_TRUE(p->files[1].hunks[0].new_no_newline);
}

TEST(PatchParse, TimestampsAfterPathsAreDropped) {
  auto p = parse_patch("--- util.c.orig\t2024-01-01 10:00:00.000000000 +0000\n+++ util.c\t2024-01-02 10:00:00 +0000\n"
                       "@@ -1 +1 @@\n-a\n+b\n",
                       "p");
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->files[0].old_path, "util.c.orig");
  EXPECT_EQ(p->files[0].new_path, "util.c");
}

TEST(PatchParse, MalformedHunksNameTheLine) {
  auto p = parse_patch("--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n", "bad.patch");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(), "patch bad.patch: hunk @@ -1,3 +1,3 @@ of b/x.c ends early (line 7)");
  p = parse_patch("--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,2 @@\n a\n?b\n", "bad.patch");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(), "patch bad.patch: line 5: '?b' does not fit hunk @@ -1,2 +1,2 @@ of b/x.c");
  p = parse_patch("just text\n", "none.patch");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message(), "patch none.patch: no unified diff found in it");
}

TEST(PatchStrip, DetectedFromWhatExistsInTheTree) {
  test::TempDir dir("hs-diffbuild-test");
  fs::create_directories(dir.file("src"));
  test::write_file(dir.file("src/util.c"), "x\n");
  auto p = parse_patch(kGitDiff, "fix.patch");
  ASSERT_TRUE(p);
  EXPECT_EQ(detect_strip(*p, dir.path()).value_or(-1), 1);  // a/src/util.c -> src/util.c

  auto plain = parse_patch("--- src/util.c\n+++ src/util.c\n@@ -1 +1 @@\n-x\n+y\n", "plain.patch");
  ASSERT_TRUE(plain);
  EXPECT_EQ(detect_strip(*plain, dir.path()).value_or(-1), 0);

  auto deep = parse_patch("--- old/tree/src/util.c\n+++ new/tree/src/util.c\n@@ -1 +1 @@\n-x\n+y\n", "deep.patch");
  ASSERT_TRUE(deep);
  EXPECT_EQ(detect_strip(*deep, dir.path()).value_or(-1), 2);

  auto missing = parse_patch("--- a/nowhere.c\n+++ b/nowhere.c\n@@ -1 +1 @@\n-x\n+y\n", "m.patch");
  ASSERT_TRUE(missing);
  auto r = detect_strip(*missing, dir.path());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            "patch m.patch: cannot find a/nowhere.c in " + dir.path() + " at any -p level from 0 to 4; give --strip N");

  EXPECT_EQ(strip_components("a/b/c.c", 1).value_or("?"), "b/c.c");
  EXPECT_FALSE(strip_components("c.c", 1));
}

TEST(PatchApply, HunksFoundWhereTheFileMovedThem) {
  auto p = parse_patch(kGitDiff, "fix.patch");
  ASSERT_TRUE(p);
  // Two extra lines at the top: both hunks are found two lines later.
  std::string file = "x\ny\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n";
  auto out = apply_file_diff(file, p->files[0], "fix.patch", "src/util.c");
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, "x\ny\none\ntwo\nTHREE\nthree and a half\nfour\nfive\nsix\nseven\neight\nnine\nten\nELEVEN\n");

  auto created = apply_file_diff("", p->files[1], "fix.patch", "src/new.c");
  ASSERT_TRUE(created);
  EXPECT_EQ(*created, "int fresh;\nint fresher;");  // "\ No newline at end of file"
}

TEST(PatchApply, AHunkThatDoesNotMatchNamesItsFileHunkAndLine) {
  auto p = parse_patch(kGitDiff, "fix.patch");
  ASSERT_TRUE(p);
  std::string file = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\nELEVEN\n";
  auto out = apply_file_diff(file, p->files[0], "fix.patch", "src/util.c");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "patch fix.patch: hunk #2 (@@ -10,2 +11,2 @@) of src/util.c does not apply: line 12 "
                                   "is not 'eleven'");
}

TEST(PatchLines, OldLinesMapThroughTheHunks) {
  auto p = parse_patch(kGitDiff, "fix.patch");
  ASSERT_TRUE(p);
  const FileDiff& f = p->files[0];
  EXPECT_EQ(map_line(f, 1).value_or(0), 1u);   // before the first hunk
  EXPECT_EQ(map_line(f, 2).value_or(0), 2u);   // context
  EXPECT_FALSE(map_line(f, 3));                // removed
  EXPECT_EQ(map_line(f, 4).value_or(0), 5u);   // context after one line became two
  EXPECT_EQ(map_line(f, 7).value_or(0), 8u);   // between hunks
  EXPECT_EQ(map_line(f, 10).value_or(0), 11u);
  EXPECT_FALSE(map_line(f, 11));
  EXPECT_EQ(map_line(f, 40).value_or(0), 41u);  // after the last
}

TEST(WrapperArgs, TheObjectsACompileWrites) {
  using V = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(compile_outputs({"-O2", "-c", "-o", "x.o", "src/x.c"}), (V{{"x.o", "src/x.c"}}));
  EXPECT_EQ(compile_outputs({"-c", "src/a.c", "b.cc", "-Iinc", "-MF", "dep.c"}), (V{{"a.o", "src/a.c"}, {"b.o", "b.cc"}}));
  EXPECT_EQ(compile_outputs({"-ob/y.o", "-c", "y.c"}), (V{{"b/y.o", "y.c"}}));
  EXPECT_TRUE(compile_outputs({"-o", "prog", "a.o", "b.o"}).empty());  // a link
  EXPECT_TRUE(compile_outputs({"-E", "-c", "a.c"}).empty());
  EXPECT_TRUE(compile_outputs({"-o", "prog", "a.c"}).empty());  // compile and link: no object kept
}

TEST(Correlation, NamesOfGccCopiesAndNumberedStatics) {
  EXPECT_EQ(correlation_name("parse"), "parse");
  EXPECT_EQ(correlation_name("parse.isra.0"), "parse.isra");
  EXPECT_EQ(correlation_name("parse.constprop.12"), "parse.constprop");
  EXPECT_EQ(correlation_name("parse.part.0.cold"), "parse.part.cold");
  EXPECT_EQ(correlation_name("parse.cold"), "parse.cold");
  EXPECT_EQ(correlation_name("helper.lto_priv.3"), "helper.lto_priv");
  EXPECT_EQ(correlation_name("count.2"), "count");
  EXPECT_EQ(correlation_name(".LC0"), ".LC0");
}

// Compiles `source` as the wrapper would (GCC -O2, function and data sections).
std::string compile(const test::TempDir& dir, const std::string& name, const std::string& source) {
  const std::string c = dir.write(name + ".c", source);
  const std::string o = dir.file(name + ".o");
  EXPECT_TRUE(test::run("gcc -O2 -ffunction-sections -fdata-sections -c -o " + o + " " + c));
  return o;
}

std::vector<std::string> listed(const ObjectDiff& d) {
  std::vector<std::string> out;
  for (const FuncDiff& f : d.funcs) out.push_back(std::string(status_name(f.status)) + " " + f.name);
  return out;
}

TEST(Correlation, RenumberedStaticLocalsAreNotAChange) {
  test::TempDir dir("hs-diffbuild-test");
  // A new function before counter() takes the number its static local had.
  const std::string before = compile(dir, "before", R"(
int __attribute__((noinline)) counter(void) { static int count; return ++count; }
)");
  const std::string after = compile(dir, "after", R"(
int __attribute__((noinline)) stepper(void) { static int count; return count += 2; }
int __attribute__((noinline)) counter(void) { static int count; return ++count; }
)");
  test::run("nm " + after + " | grep -q 'count\\.1'");  // the compiler did renumber
  auto d = compare_objects(before, after, nullptr);
  ASSERT_TRUE(d) << d.error().message();
  // counter() is unchanged; stepper() and its static local are new.
  EXPECT_EQ(listed(*d), (std::vector<std::string>{"new count", "new stepper"}));
  ASSERT_EQ(d->funcs.size(), 2u);
  EXPECT_TRUE(d->funcs[0].data);
  EXPECT_EQ(d->compared, 1u);
}

TEST(Correlation, StringsComparedByContentNotOffset) {
  test::TempDir dir("hs-diffbuild-test");
  // A new string before "hello" moves it in .rodata.str1.1; greet() is the same.
  const std::string before = compile(dir, "before", R"(
int puts(const char*);
void __attribute__((noinline)) greet(void) { puts("hello"); }
)");
  const std::string after = compile(dir, "after", R"(
int puts(const char*);
void __attribute__((noinline)) shout(void) { puts("HEY"); }
void __attribute__((noinline)) greet(void) { puts("hello"); }
void __attribute__((noinline)) wave(void) { puts("bye"); }
)");
  auto d = compare_objects(before, after, nullptr);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(listed(*d), (std::vector<std::string>{"new shout", "new wave"}));

  // A string that did change is named in the reason.
  const std::string changed = compile(dir, "changed", R"(
int puts(const char*);
void __attribute__((noinline)) greet(void) { puts("howdy"); }
)");
  d = compare_objects(before, changed, nullptr);
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->funcs.size(), 1u);
  EXPECT_EQ(d->funcs[0].name, "greet");
  EXPECT_EQ(d->funcs[0].reason, "the reference at +0x3 is to \"howdy\"-0x4 (was \"hello\"-0x4)");
}

TEST(Correlation, ChangedInitialValueOfDataIsRefused) {
  test::TempDir dir("hs-diffbuild-test");
  const std::string before = compile(dir, "before", "int limit = 10;\nint get(void) { return limit; }\n");
  const std::string after = compile(dir, "after", "int limit = 20;\nint get(void) { return limit; }\n");
  auto d = compare_objects(before, after, nullptr);
  ASSERT_TRUE(d) << d.error().message();
  ASSERT_EQ(d->funcs.size(), 1u);
  EXPECT_EQ(d->funcs[0].name, "limit");
  EXPECT_TRUE(d->funcs[0].data);
  EXPECT_EQ(d->funcs[0].status, FuncStatus::Refused);
  EXPECT_EQ(d->funcs[0].reason, "its initial value changed (the running process keeps its own value)");
}

}  // namespace
}  // namespace hs
