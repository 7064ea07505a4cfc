// Stripped binaries (issue 10, "symbols of real binaries"): the debug_static
// target, stripped by the test, its symbols moved to a separate debug file
// in a build-id directory. A patch of its static secret_value() is built
// and loaded with --debug-dir; without it (or with another build's debug
// file there) the error line names every place looked and that debuginfod
// was not configured; with DEBUGINFOD_URLS naming a local debuginfod server
// that serves the debug file, no --debug-dir is needed.
#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include "harness.h"
#include "support/debuginfod_server.h"
#include "support/files.h"

using namespace hs::e2e;
namespace fs = std::filesystem;

namespace {

// debug_static, stripped into dir/bin, its debug file kept at dir/full.debug.
struct Stripped {
  hs::test::TempDir dir{"hs-debug-e2e"};
  std::string bin, debug, id;

  Stripped() {
    bin = dir.file("bin/debug_static");
    debug = dir.file("full.debug");
    fs::create_directories(dir.file("bin"));
    hs::test::run(fmt::format("objcopy --only-keep-debug {0} {1} && strip -o {2} {0}", target_bin("debug_static"),
                              debug, bin));
    id = build_id_hex(bin);
  }
  // Where ROOT's build-id directory keeps the debug file.
  std::string build_id_path(const std::string& root) const {
    return fmt::format("{}/.build-id/{}/{}.debug", root, id.substr(0, 2), id.substr(2));
  }
  // The debug file (or `file`) put under ROOT/.build-id; returns ROOT.
  std::string place(const std::string& root, const std::string& file = "") const {
    const std::string to = build_id_path(root);
    fs::create_directories(fs::path(to).parent_path());
    fs::copy_file(file.empty() ? debug : file, to, fs::copy_options::overwrite_existing);
    return root;
  }
};

// The error line of a load whose payload refers to the target's global
// debug_sink (its first relocation) when the target's debug file is not
// found; `looked` is what follows "no debug file: ".
std::string unresolved_line(const std::string& lp, const Stripped& s, const std::string& looked) {
  return fmt::format("hotsplice: error: {}: section [index 6] '.rela.text.secret_value_v2': unresolved symbol "
                     "'debug_sink': not in {} (stripped: no .symtab, and no debug file: {}), any loaded payload or "
                     "the other objects",
                     lp, s.bin, looked);
}

// No debuginfod for the tool unless a test says so.
const std::vector<std::string> kNoDebuginfod{"DEBUGINFOD_URLS="};

TEST(Debug, StaticFunctionOfAStrippedBinaryPatchedWithDebugDir) {
  Stripped s;
  ASSERT_FALSE(s.id.empty());
  const std::string root = s.place(s.dir.file("debug"));
  Target t(s.bin);
  EXPECT_EQ(t.ask("call"), "value=42");

  // The builder needs the debug file too (old_size of secret_value).
  const std::string lp = s.dir.file("debug_static_v2.lp");
  HsRun nob = hotsplice({"build", patch_src("debug_static_v2.c"), "--target", s.bin, "-o", lp}, kNoDebuginfod);
  EXPECT_EQ(nob.code, 1);
  EXPECT_EQ(nob.err_line(),
            fmt::format("hotsplice: error: {}: cannot patch 'secret_value': symbol 'secret_value' not found in {} "
                        "(stripped: no .symtab, and no debug file: by build-id at {} (absent); debuginfod not "
                        "configured (DEBUGINFOD_URLS is unset))",
                        patch_src("debug_static_v2.c"), s.bin, s.build_id_path("/usr/lib/debug")));
  HsRun b = hotsplice({"build", patch_src("debug_static_v2.c"), "--target", s.bin, "-o", lp, "--debug-dir", root},
                      kNoDebuginfod);
  ASSERT_EQ(b.code, 0) << b.err;

  // Without --debug-dir: refused, naming every place looked at; the target
  // is untouched.
  HsRun no = hotsplice({"load", P(t), lp}, kNoDebuginfod);
  EXPECT_EQ(no.code, 1);
  EXPECT_EQ(no.err_line(),
            unresolved_line(lp, s,
                            fmt::format("by build-id at {} (absent); debuginfod not configured (DEBUGINFOD_URLS is unset)",
                                        s.build_id_path("/usr/lib/debug"))));
  EXPECT_EQ(t.ask("call"), "value=42");
  expect_absent(t, "debug_static_v2");

  // With it: patched.
  HsRun ok = hotsplice({"load", P(t), lp, "--debug-dir", s.dir.file("elsewhere"), "--debug-dir", root}, kNoDebuginfod);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(t.ask("call"), "value=600");
  EXPECT_EQ(state_of(t, "debug_static_v2"), "APPLIED");
  OK({"revert", P(t), "debug_static_v2"});
  EXPECT_EQ(t.ask("call"), "value=42");
}

TEST(Debug, DebugFileOfAnotherBuildIsRefusedNamingItsBuildId) {
  Stripped s;
  ASSERT_FALSE(s.id.empty());
  // The payload is built against the right debug file...
  const std::string good = s.place(s.dir.file("good"));
  const std::string lp = s.dir.file("debug_static_v2.lp");
  HsRun b = hotsplice({"build", patch_src("debug_static_v2.c"), "--target", s.bin, "-o", lp, "--debug-dir", good},
                      kNoDebuginfod);
  ASSERT_EQ(b.code, 0) << b.err;
  // ...and loaded with another program's debug file where this one's belongs.
  const std::string other = target_bin("hello");
  const std::string bad = s.place(s.dir.file("bad"), other);
  Target t(s.bin);
  HsRun r = hotsplice({"load", P(t), lp, "--debug-dir", bad}, kNoDebuginfod);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(),
            unresolved_line(lp, s,
                            fmt::format("by build-id at {} (build-id {} differs), {} (absent); debuginfod not "
                                        "configured (DEBUGINFOD_URLS is unset)",
                                        s.build_id_path(bad), build_id_hex(other), s.build_id_path("/usr/lib/debug"))));
  EXPECT_EQ(t.ask("call"), "value=42");
  expect_absent(t, "debug_static_v2");
}

TEST(Debug, DebuginfodServesTheDebugFileWhenNoDebugDirHasIt) {
  Stripped s;
  ASSERT_FALSE(s.id.empty());
  fs::create_directories(s.dir.file("served"));
  fs::copy_file(s.debug, s.dir.file("served/debug_static.debug"));
  auto server = hs::test::DebuginfodServer::start(s.dir.file("served"), s.dir.path());
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->serves(s.id)) << server->log();
  const std::vector<std::string> env{"DEBUGINFOD_URLS=" + server->url(),
                                     "DEBUGINFOD_CACHE_PATH=" + s.dir.file("cache"), "DEBUGINFOD_TIMEOUT=20"};
  const std::string cached = s.dir.file(fmt::format("cache/{}/debuginfo", s.id));

  Target t(s.bin);
  const std::string lp = s.dir.file("debug_static_v2.lp");
  HsRun b = hotsplice({"build", patch_src("debug_static_v2.c"), "--target", s.bin, "-o", lp}, env);
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_TRUE(fs::exists(cached)) << "debuginfod's cache has no " << cached;
  HsRun r = hotsplice({"load", P(t), lp}, env);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(t.ask("call"), "value=600");
  fmt::print("debuginfod: build {} ms (fetched), load {} ms (from the cache)\n", b.ms, r.ms);

  // A server that does not have it: the error line says debuginfod was asked.
  OK({"revert", P(t), "debug_static_v2"});
  OK({"unload", P(t), "debug_static_v2"});
  server->stop();
  fs::remove_all(s.dir.file("cache"));
  fs::remove(s.dir.file("served/debug_static.debug"));
  fs::create_directories(s.dir.file("work2"));  // a fresh database too
  auto empty = hs::test::DebuginfodServer::start(s.dir.file("served"), s.dir.file("work2"));
  ASSERT_NE(empty, nullptr);
  const std::vector<std::string> env2{"DEBUGINFOD_URLS=" + empty->url(),
                                      "DEBUGINFOD_CACHE_PATH=" + s.dir.file("cache"), "DEBUGINFOD_TIMEOUT=20"};
  HsRun no = hotsplice({"load", P(t), lp}, env2);
  EXPECT_EQ(no.code, 1);
  EXPECT_EQ(no.err_line(),
            unresolved_line(lp, s,
                            fmt::format("by build-id at {} (absent); debuginfod at {} has none (No such file or "
                                        "directory)",
                                        s.build_id_path("/usr/lib/debug"), empty->url())));
  EXPECT_EQ(t.ask("call"), "value=42");
}

}  // namespace

namespace {

// Upload found the call to secret_value() in handle(), a static only the
// debug file names, and pointed it at the replacement. recover finds such
// calls again only with the same debug file; without it, it says so.
TEST(Debug, RecoverFindsRedirectedCallsWithTheSameDebugDir) {
  Stripped s;
  ASSERT_FALSE(s.id.empty());
  const std::string root = s.place(s.dir.file("debug"));
  const std::string lp = s.dir.file("debug_static_v2.lp");
  HsRun b = hotsplice({"build", patch_src("debug_static_v2.c"), "--target", s.bin, "-o", lp, "--debug-dir", root},
                      kNoDebuginfod);
  ASSERT_EQ(b.code, 0) << b.err;
  Target t(s.bin);
  HsRun l = hotsplice({"load", P(t), lp, "--debug-dir", root}, kNoDebuginfod);
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_EQ(t.ask("call"), "value=600");

  HsRun without = hotsplice({"recover", P(t)}, kNoDebuginfod);
  EXPECT_EQ(without.code, 0) << without.err;
  EXPECT_EQ(without.err_line(),
            fmt::format("hotsplice: payload 'debug_static_v2': {} is stripped: no .symtab, and no debug file: by "
                        "build-id at {} (absent); debuginfod not configured (DEBUGINFOD_URLS is unset), so direct "
                        "calls from its local functions were not looked for; if it was uploaded with --debug-dir, "
                        "recover with the same",
                        s.bin, s.build_id_path("/usr/lib/debug")));

  HsRun with = hotsplice({"recover", P(t), "--debug-dir", root}, kNoDebuginfod);
  EXPECT_EQ(with.code, 0) << with.err;
  EXPECT_EQ(with.err, "");
  // The recovered registry knows the redirected call: revert puts it back.
  OK({"revert", P(t), "debug_static_v2"});
  EXPECT_EQ(t.ask("call"), "value=42");
  OK({"unload", P(t), "debug_static_v2"});
  expect_absent(t, "debug_static_v2");
}

}  // namespace
