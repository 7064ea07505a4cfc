// `hotsplice build --source DIR --patch FILE --build-cmd CMD` (issue 11, the
// builds and the comparison): each scenario is a small C program with its
// own source tree and Makefile under tests/e2e/diffbuild/<scenario>/tree and
// its patch beside it (fix.patch). The tree is built once by the test (the
// running target's binary), then `hotsplice build --patch` builds it twice
// through its compiler wrapper and reports what changed. The source tree
// must be untouched afterwards (hash of every path, content and mtime).
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "harness.h"
#include "support/files.h"

namespace hs::e2e {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string scenario_dir(const std::string& s) { return std::string(HS_SOURCE_DIR) + "/tests/e2e/diffbuild/" + s; }
std::string tree(const std::string& s) { return scenario_dir(s) + "/tree"; }
std::string fix(const std::string& s) { return scenario_dir(s) + "/fix.patch"; }

// Every path under `dir` with its bytes and modification time.
std::string tree_fingerprint(const std::string& dir) {
  std::vector<std::string> entries;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st;
    EXPECT_EQ(::lstat(e.path().c_str(), &st), 0) << e.path();
    std::string entry = fmt::format("{} {} {}.{}", e.path().string(), st.st_mode, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (e.is_regular_file()) entry += " " + std::to_string(std::hash<std::string>{}(test::slurp(e.path())));
    entries.push_back(entry);
  }
  std::sort(entries.begin(), entries.end());
  std::string all;
  for (const auto& e : entries) all += e + "\n";
  return all;
}

// The scenario's program, built as it runs (its own copy of the tree).
std::string built_program(const std::string& s) {
  const std::string dir = work_file("diffbuild-bin-" + s + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  EXPECT_TRUE(test::run(fmt::format("cp -a '{}' '{}' && make -s -C '{}' >/dev/null", tree(s), dir, dir)));
  return dir + "/prog";
}

struct DiffRun {
  HsRun run;
  json report;          // --json's object (null if it printed none)
  std::string program;  // the target it was built for
};

// Scenario `s` built from the source tree `source` (default: its own).
DiffRun diff_build(const std::string& s, std::vector<std::string> extra = {}, std::string source = "",
                   std::string program = "") {
  if (source.empty()) source = tree(s);
  if (program.empty()) program = built_program(s);
  const std::string before = tree_fingerprint(source);
  std::vector<std::string> args = {"build",   "--source", source, "--patch", fix(s), "--build-cmd", "make -j2",
                                   "--target", program,   "-o",   work_file("diffbuild-" + s + ".lp"), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  DiffRun d{hotsplice(args), nullptr, program};
  if (!d.run.out.empty()) d.report = json::parse(d.run.out, nullptr, false);
  EXPECT_EQ(tree_fingerprint(source), before) << "the source tree " << source << " was modified";
  return d;
}

// "status name" of every function in the report, sorted.
std::vector<std::string> functions(const json& report) {
  std::vector<std::string> out;
  for (const auto& f : report["functions"]) out.push_back(f["status"].get<std::string>() + " " + f["name"].get<std::string>());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> recompiled(const json& report) {
  std::vector<std::string> out;
  for (const auto& o : report["recompiled"]) out.push_back(o["object"].get<std::string>());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DiffBuild, ChangedStaticFunctionIsNamedAndOnlyItsFileIsRecompiled) {
  DiffRun d = diff_build("static_fn", {"--keep-temps"});
  ASSERT_TRUE(d.report.is_object()) << d.run.out << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed scale"})) << d.run.out;
  EXPECT_EQ(d.report["original_compiles"], 2);
  EXPECT_EQ(recompiled(d.report), (std::vector<std::string>{"util.o"}));
  EXPECT_EQ(d.report["patches"][0]["strip"], 1);  // a/ b/ prefixes
  for (const char* phase : {"copy", "original build", "patch", "patched build", "compare"})
    EXPECT_TRUE(d.report["phases"].contains(phase)) << phase;
  EXPECT_EQ(d.run.code, 0) << d.run.err;
  EXPECT_EQ(d.report["payload"]["funcs"][0]["name"], "util.c#scale");

  // The wrapper's own log of the patched build: util.c alone, with the
  // flags the wrapper adds given to the real compiler.
  const std::string temp = d.report["temp_dir"];
  std::istringstream log(test::slurp(temp + "/patched.log"));
  std::vector<std::string> lines;
  for (std::string l; std::getline(log, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 1u) << test::slurp(temp + "/patched.log");
  EXPECT_TRUE(lines[0].starts_with(temp + "/patched/util.o\t" + temp + "/patched/util.c\t")) << lines[0];
  const std::string original_log = test::slurp(temp + "/original.log");
  EXPECT_EQ(std::count(original_log.begin(), original_log.end(), '\n'), 2) << original_log;
  fs::remove_all(temp);
}

// DIR holds the outputs of an earlier build (made without the wrapper's
// flags): the original build compiles nothing, so the original of each
// recompiled object is compiled by the builder itself, by the same command.
TEST(DiffBuild, TreeHoldingAnEarlierBuildStillGetsEveryOriginalObject) {
  const std::string built = built_program("static_fn");
  const std::string dir = built.substr(0, built.rfind('/'));
  DiffRun d = diff_build("static_fn", {}, dir, built);
  ASSERT_TRUE(d.report.is_object()) << d.run.out << d.run.err;
  EXPECT_EQ(d.report["original_compiles"], 0);
  EXPECT_EQ(recompiled(d.report), (std::vector<std::string>{"util.o"}));
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed scale"})) << d.run.out;
}

// The first live case: a changed static function that calls an unchanged
// static helper and reads a static variable. The payload holds scale()
// alone; helper and factor are the running process's ("util.c#helper",
// "util.c#factor").
TEST(DiffBuild, ChangedStaticFunctionIsPatchedLiveAndReverted) {
  const std::string program = built_program("static_fn");
  DiffRun d = diff_build("static_fn", {}, "", program);
  ASSERT_EQ(d.run.code, 0) << d.run.err;
  const std::string lp = d.report["payload"]["file"];
  HsRun info = hotsplice({"info", lp});
  EXPECT_NE(info.out.find("    util.c#scale -> hsnew.scale"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("  functions       1\n"), std::string::npos) << info.out;

  Target t(program);
  EXPECT_EQ(t.ask("5"), "20");  // (5 + 3) * 2 + 3 + 1
  OK({"load", P(t), lp, "--name", "fix"});
  EXPECT_EQ(t.ask("5"), "36");  // (5 + 3) * 4 + 3 + 1
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("5"), "20");
  OK({"unload", P(t), "fix"});
  expect_absent(t, "fix");
}

// compute()'s static local `calls` is the running process's (util.c#calls.0):
// its count goes on through the patch, the revert, and a second payload
// built from the first diff plus a second one, stacked with --depends.
TEST(DiffBuild, StaticLocalKeepsItsValueAndASecondDiffStacks) {
  const std::string program = built_program("static_local");
  DiffRun d = diff_build("static_local", {}, "", program);
  ASSERT_EQ(d.run.code, 0) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute"})) << d.run.out;
  const std::string first = d.report["payload"]["file"];

  const std::string second = work_file("diffbuild-static_local-second.lp");
  HsRun r = hotsplice({"build", "--source", tree("static_local"), "--patch", fix("static_local"), "--patch",
                       scenario_dir("static_local") + "/second.patch", "--build-cmd", "make", "--target", program, "-o",
                       second, "--depends", first});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("changed  compute (util.o)"), std::string::npos) << r.out;

  Target t(program);
  EXPECT_EQ(t.ask("5"), "1005");
  EXPECT_EQ(t.ask("5"), "2005");
  OK({"load", P(t), first, "--name", "first"});
  EXPECT_EQ(t.ask("5"), "3010");  // the third call: the count went on
  OK({"load", P(t), second, "--name", "second"});
  EXPECT_EQ(t.ask("5"), "4015");
  OK({"revert", P(t), "second"});
  EXPECT_EQ(t.ask("5"), "5010");
  OK({"revert", P(t), "first"});
  EXPECT_EQ(t.ask("5"), "6005");
}

// tweak() has no symbol of its own: GCC inlined it into left() and
// right(), so changing it changes both, and the payload replaces both.
TEST(DiffBuild, FunctionInlinedIntoItsCallersChangesThemAll) {
  const std::string program = built_program("inlined");
  test::run("! nm '" + program + "' | grep -q tweak");  // it was inlined
  DiffRun d = diff_build("inlined", {}, "", program);
  ASSERT_EQ(d.run.code, 0) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed left", "changed right"})) << d.run.out;

  Target t(program);
  EXPECT_EQ(t.ask("5"), "-9848985");  // 1015 + -985 * 10000
  OK({"load", P(t), d.report["payload"]["file"].get<std::string>(), "--name", "fix"});
  EXPECT_EQ(t.ask("5"), "-9798980");  // 1020 + -980 * 10000
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("5"), "-9848985");
}

// A changed string literal: found by content (the reason names both), and
// the payload carries the new string; the static pointer it is stored in
// is the running process's.
TEST(DiffBuild, ChangedStringLiteralIsCarriedByThePayload) {
  const std::string program = built_program("string_literal");
  DiffRun d = diff_build("string_literal", {}, "", program);
  ASSERT_EQ(d.run.code, 0) << d.run.err;
  ASSERT_EQ(d.report["functions"].size(), 1u) << d.run.out;
  EXPECT_EQ(d.report["functions"][0]["name"], "compute");
  EXPECT_EQ(d.report["functions"][0]["reason"], "the reference at +0xc is to \"ABCDEF\"-0x4 (was \"abcdef\"-0x4)");

  Target t(program);
  EXPECT_EQ(t.ask("1"), "98");  // 'b'
  OK({"load", P(t), d.report["payload"]["file"].get<std::string>(), "--name", "fix"});
  EXPECT_EQ(t.ask("1"), "66");  // 'B'
  EXPECT_EQ(t.ask("-3"), "120");  // 'x': the unchanged literal, copied with the section
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("1"), "98");
}

// A new global variable (with its initial value) lives in the payload.
TEST(DiffBuild, NewGlobalLivesInThePayload) {
  const std::string program = built_program("new_global");
  DiffRun d = diff_build("new_global", {}, "", program);
  ASSERT_EQ(d.run.code, 0) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute", "new hits"})) << d.run.out;
  EXPECT_EQ(d.report["functions"][1]["kind"], "data");

  Target t(program);
  EXPECT_EQ(t.ask("1"), "107");
  OK({"load", P(t), d.report["payload"]["file"].get<std::string>(), "--name", "fix"});
  EXPECT_EQ(t.ask("1"), "148");  // 7 + 100 + 41
  EXPECT_EQ(t.ask("1"), "149");
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("1"), "107");
}

TEST(DiffBuild, NewFunctionIsReportedNewAndItsCallerChanged) {
  DiffRun d = diff_build("new_fn");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute", "new clamp"})) << d.run.out;
  EXPECT_EQ(d.report["patches"][0]["strip"], 0);  // no prefixes
  ASSERT_EQ(d.run.code, 0) << d.run.err;

  // Live: compute() calls the payload's clamp().
  Target t(d.program);
  EXPECT_EQ(t.ask("2000"), "5000");
  OK({"load", P(t), d.report["payload"]["file"].get<std::string>(), "--name", "fix"});
  EXPECT_EQ(t.ask("2000"), "3000");
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("2000"), "5000");
}

TEST(DiffBuild, TwoFilesChangedAreBothCompared) {
  DiffRun d = diff_build("two_files");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute", "changed offset"})) << d.run.out;
  EXPECT_EQ(recompiled(d.report), (std::vector<std::string>{"more.o", "util.o"}));
  ASSERT_EQ(d.run.code, 0) << d.run.err;

  // Live: both files' changes at once.
  Target t(d.program);
  EXPECT_EQ(t.ask("5"), "3015");  // (5 + 1000) * 3
  OK({"load", P(t), d.report["payload"]["file"].get<std::string>(), "--name", "fix"});
  EXPECT_EQ(t.ask("5"), "10025");  // (5 + 2000) * 5
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("5"), "3015");
}

TEST(DiffBuild, HeaderChangeRecompilesEveryFileThatUsesIt) {
  DiffRun d = diff_build("header");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  // bounds.h's clip() is inlined into compute (util.c) and bounded (more.c);
  // main.c is recompiled (the Makefile says it depends on every header) and
  // found unchanged.
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed bounded", "changed compute"})) << d.run.out;
  EXPECT_EQ(recompiled(d.report), (std::vector<std::string>{"main.o", "more.o", "util.o"}));
}

TEST(DiffBuild, LineOnlyChangeIsNoChange) {
  DiffRun d = diff_build("line_only");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  EXPECT_EQ(d.run.code, 1);
  EXPECT_EQ(d.run.err_line(), "hotsplice: error: no changes: the patches change no function (2 functions compared in 1 "
                              "recompiled object)");
  EXPECT_TRUE(d.report["functions"].empty()) << d.run.out;
  std::set<std::string> line_only(d.report["line_only"].begin(), d.report["line_only"].end());
  EXPECT_EQ(line_only, (std::set<std::string>{"compute", "warn_negative"})) << d.run.out;

  // Without --json: the same line, and what was only moved.
  HsRun r = hotsplice({"build", "--source", tree("line_only"), "--patch", fix("line_only"), "--build-cmd", "make",
                       "--target", built_program("line_only"), "-o", work_file("diffbuild-line_only.lp")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(), d.run.err_line());
  EXPECT_NE(r.out.find("unchanged but for moved __LINE__ values (util.o): "), std::string::npos) << r.out;
}

TEST(DiffBuild, PatchThatDoesNotApplyNamesFileAndHunk) {
  DiffRun d = diff_build("bad_patch");
  EXPECT_EQ(d.run.code, 1);
  EXPECT_TRUE(d.run.out.empty()) << d.run.out;
  EXPECT_EQ(d.run.err, "hotsplice: error: patch " + fix("bad_patch") +
                           ": hunk #1 (@@ -1,3 +1,3 @@) of util.c does not apply: line 3 is not 'int compute(int x) { "
                           "return x + 6; }'\n");
}

TEST(DiffBuild, ProjectThatIgnoresCcStillGoesThroughTheWrapper) {
  DiffRun d = diff_build("hardcoded_gcc");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  EXPECT_EQ(d.report["original_compiles"], 2);
  EXPECT_EQ(recompiled(d.report), (std::vector<std::string>{"util.o"}));
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute"})) << d.run.out;
}

// A changed function shorter than the 5-byte jump: the report stands, the
// payload is refused naming the function.
TEST(DiffBuild, FunctionTooSmallForTheJumpIsRefused) {
  DiffRun d = diff_build("too_small");
  ASSERT_TRUE(d.report.is_object()) << d.run.err;
  EXPECT_EQ(functions(d.report), (std::vector<std::string>{"changed compute"})) << d.run.out;
  EXPECT_EQ(d.run.code, 1);
  const std::string line = d.run.err_line();
  EXPECT_EQ(line, "hotsplice: error: util.o: cannot patch 'compute': it is 4 bytes in " + d.program +
                      ", too short for 5 bytes");
  EXPECT_EQ(d.report["result"], line.substr(std::string("hotsplice: error: ").size()));
}

TEST(DiffBuild, StripOverridesTheDetectedLevel) {
  DiffRun d = diff_build("static_fn", {"--strip", "0"});
  EXPECT_EQ(d.run.code, 1);
  EXPECT_EQ(d.run.err, "hotsplice: error: patch " + fix("static_fn") + ": b/util.c is not in " + tree("static_fn") +
                           " (-p0)\n");
}

TEST(DiffBuild, UsageErrorsAreOneLineWithExit64) {
  const std::string bin = target_bin("hello");
  struct Case {
    std::vector<std::string> args;
    std::string line;
  };
  for (const Case& c : std::vector<Case>{
           {{"build", "--source", tree("static_fn"), "--patch", fix("static_fn"), "--target", bin, "-o", "x.lp"},
            "hotsplice: error: build --patch needs --build-cmd CMD"},
           {{"build", "--patch", fix("static_fn"), "--build-cmd", "make", "--target", bin, "-o", "x.lp"},
            "hotsplice: error: build --patch needs --source DIR"},
           {{"build", "--source", tree("static_fn"), "--build-cmd", "make", "--target", bin, "-o", "x.lp"},
            "hotsplice: error: build --source needs at least one --patch FILE"},
           {{"build", "fix.c", "--source", tree("static_fn"), "--patch", fix("static_fn"), "--build-cmd", "make",
             "--target", bin, "-o", "x.lp"},
            "hotsplice: error: build: give patch sources or --source/--patch, not both"},
           {{"build", "--target", bin, "-o", "x.lp"},
            "hotsplice: error: build: give patch source file(s), or --source DIR --patch FILE --build-cmd CMD"},
       }) {
    HsRun r = hotsplice(c.args);
    EXPECT_EQ(r.code, 64) << c.line;
    EXPECT_EQ(r.err, c.line + "\n");
  }
}

}  // namespace
}  // namespace hs::e2e
