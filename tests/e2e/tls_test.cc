// Tls.*: payload code reading and writing the target's thread-local
// variables (issue 10, TLS). The tls_threads target has 4 workers, each with
// its own tls_counter (the program's __thread variable) and its own lib_ie /
// lib_gd (libtlsvars.so's, initial-exec and general-dynamic); every round
// each worker bumps all three and reports them. A payload that got a module
// ID or a thread-pointer offset wrong would change another thread's copy,
// the main thread's, or crash the target; each test checks every worker's
// numbers exactly, and that the main thread's copy stays untouched.
#include <elf.h>

#include <filesystem>
#include <string>

#include "e2e/harness.h"
#include "payload/payload.h"

namespace hs::e2e {
namespace {

std::string round_line(int c, int ie, int gd) {
  // Worker k (1..4): tls_counter = 100k + c, lib_ie = 1000k + ie, lib_gd = 10000k + gd.
  std::string s;
  for (int k = 1; k <= 4; k++)
    s += fmt::format("{}{},{},{}", k > 1 ? " " : "", 100 * k + c, 1000 * k + ie, 10000 * k + gd);
  return s;
}

TEST(Tls, ProgramVariableThroughGeneralDynamicIsPerThread) {
  std::string lp = build("tls_bump_gd.c", target_bin("tls_threads"), "tls_bump_gd.lp");
  Target t(target_bin("tls_threads"));
  EXPECT_EQ(t.ask("round"), round_line(1, 1, 1));
  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("round"), round_line(11, 2, 2)) << "each worker adds 10 to its own tls_counter";
  EXPECT_EQ(t.ask("round"), round_line(21, 3, 3));
  EXPECT_EQ(t.ask("mine"), "main=0") << "the main thread's copy is its own";
  OK({"revert", P(t), "tls_bump_gd"});
  EXPECT_EQ(t.ask("round"), round_line(22, 4, 4));
  OK({"unload", P(t), "tls_bump_gd"});
  EXPECT_EQ(t.ask("round"), round_line(23, 5, 5));
}

TEST(Tls, ProgramVariableThroughLocalExecIsPerThread) {
  std::string lp = build("tls_bump_le.c", target_bin("tls_threads"), "tls_bump_le.lp");
  Target t(target_bin("tls_threads"));
  EXPECT_EQ(t.ask("round"), round_line(1, 1, 1));
  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("round"), round_line(101, 2, 2));
  EXPECT_EQ(t.ask("round"), round_line(201, 3, 3));
  EXPECT_EQ(t.ask("mine"), "main=0");
}

TEST(Tls, LibraryVariablesThroughInitialExecAndGeneralDynamicArePerThread) {
  std::string lp = build("tls_lib_v2.c", target_bin("libtlsvars.so"), "tls_lib_v2.lp");
  Target t(target_bin("tls_threads"));
  EXPECT_EQ(t.ask("round"), round_line(1, 1, 1));
  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("round"), round_line(2, 8, 10)) << "lib_ie += 7 (initial exec), lib_gd += 9 (general dynamic)";
  EXPECT_EQ(t.ask("round"), round_line(3, 15, 19));
  nlohmann::json l = list_json(t);
  EXPECT_NE(l["payloads"][0]["object"].get<std::string>().find("libtlsvars.so"), std::string::npos);
  OK({"revert", P(t), "tls_lib_v2"});
  EXPECT_EQ(t.ask("round"), round_line(4, 16, 20));
}

TEST(Tls, ProgramAndLibraryPayloadsTogether) {
  std::string gd = build("tls_bump_gd.c", target_bin("tls_threads"), "tls_bump_gd.lp");
  std::string lib = build("tls_lib_v2.c", target_bin("libtlsvars.so"), "tls_lib_v2.lp");
  Target t(target_bin("tls_threads"));
  OK({"load", P(t), gd});
  OK({"load", P(t), lib});
  EXPECT_EQ(t.ask("round"), round_line(10, 7, 9));
  EXPECT_EQ(t.ask("round"), round_line(20, 14, 18));
  EXPECT_EQ(t.ask("mine"), "main=0");
}

// A dlopen'd library's TLS is dynamic: each thread's block is allocated on
// first use, anywhere. General-dynamic code reaches it (the payload calls
// __tls_get_addr as the library does); initial-exec code cannot, and is
// refused before the target changes.
TEST(Tls, DlopenedLibraryInDynamicTlsTakesGeneralDynamicOnly) {
  const std::string lib = target_bin("libtlsdyn.so");
  std::string gd = build("tls_dyn_gd.c", lib, "tls_dyn_gd.lp");
  std::string ie = build("tls_dyn_ie.c", lib, "tls_dyn_ie.lp");
  Target t(target_bin("tls_threads"));
  EXPECT_EQ(t.ask("dlopen " + lib), "dlopened");
  EXPECT_EQ(t.ask("dynround"), "1 2 3 4");
  HsRun r = hotsplice({"load", P(t), ie});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(r.err_line().starts_with("hotsplice: error: " + ie + ": section [index ")) << r.err_line();
  EXPECT_TRUE(r.err_line().ends_with(fmt::format(
      "against 'dyn_var': 'dyn_var' in {} is in dynamic TLS (its block is not at a fixed offset from the thread "
      "pointer), which initial-exec access cannot reach; build the patch with -ftls-model=global-dynamic",
      lib)))
      << r.err_line();
  expect_absent(t, "tls_dyn_ie");
  EXPECT_EQ(t.ask("dynround"), "2 4 6 8");
  OK({"load", P(t), gd});
  EXPECT_EQ(t.ask("dynround"), "12 24 36 48") << "worker k adds 10k to its own dyn_var";
  EXPECT_EQ(t.ask("round"), round_line(1, 1, 1)) << "the other variables are untouched";
}

TEST(Tls, PayloadDefiningThreadLocalVariablesIsRefused) {
  std::string out = work_file("tls_new_var.lp");
  HsRun r = hotsplice({"build", patch_src("tls_new_var.c"), "--target", target_bin("tls_threads"), "-o", out});
  EXPECT_EQ(r.code, 1) << r.err;
  const std::string line = r.err_line();
  const std::string kept = "hotsplice: error: the built payload does not validate (kept in ";
  ASSERT_TRUE(line.starts_with(kept)) << line;
  const std::string dir = line.substr(kept.size(), line.find(')') - kept.size());
  EXPECT_EQ(line, fmt::format("{}{}): {}/payload.lp: section [index 10] '.tbss.calls_per_thread': thread-local "
                              "sections (SHF_TLS) are not supported in a payload: a payload cannot add thread-local "
                              "variables to a running process",
                              kept, dir, dir));
  if (dir.starts_with("/tmp/hotsplice-build-")) std::filesystem::remove_all(dir);
}

// -mtls-dialect=gnu2: TLS descriptors, relaxed to initial exec, so they
// work for static TLS (libtlsvars.so) and are refused for dynamic TLS (the
// dlopen'd libtlsdyn.so), saying which option avoids them.
TEST(Tls, TlsDescriptorsWorkForStaticTlsAndAreRefusedForDynamic) {
  const std::string vars = target_bin("libtlsvars.so"), dyn = target_bin("libtlsdyn.so");
  const std::string lib_lp = work_file("tls_lib_gnu2.lp"), dyn_lp = work_file("tls_dyn_gnu2.lp");
  HsRun b = hotsplice({"build", patch_src("tls_lib_v2.c"), "--target", vars, "-o", lib_lp, "--cflags",
                       "-mtls-dialect=gnu2"});
  ASSERT_EQ(b.code, 0) << b.err;
  b = hotsplice({"build", patch_src("tls_dyn_gd.c"), "--target", dyn, "-o", dyn_lp, "--cflags", "-mtls-dialect=gnu2"});
  ASSERT_EQ(b.code, 0) << b.err;
  // The payloads really use descriptors.
  for (const std::string& f : {lib_lp, dyn_lp}) {
    auto p = Payload::open(f);
    ASSERT_TRUE(p) << p.error().message();
    int descriptors = 0;
    for (size_t i = 1; i < p->elf.sections().size(); i++) {
      if (p->elf.sections()[i].sh_type != SHT_RELA) continue;
      auto rels = p->elf.relocations(i);
      ASSERT_TRUE(rels);
      for (const Elf64_Rela& r : *rels) descriptors += ELF64_R_TYPE(r.r_info) == R_X86_64_GOTPC32_TLSDESC;
    }
    EXPECT_GT(descriptors, 0) << f;
  }

  Target t(target_bin("tls_threads"));
  OK({"load", P(t), lib_lp});
  EXPECT_EQ(t.ask("round"), round_line(1, 7, 9));
  EXPECT_EQ(t.ask("round"), round_line(2, 14, 18));

  EXPECT_EQ(t.ask("dlopen " + dyn), "dlopened");
  EXPECT_EQ(t.ask("dynround"), "1 2 3 4");
  HsRun r = hotsplice({"load", P(t), dyn_lp});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(r.err_line().starts_with("hotsplice: error: " + dyn_lp + ": section [index ")) << r.err_line();
  EXPECT_NE(r.err_line().find(": R_X86_64_GOTPC32_TLSDESC at offset 0x"), std::string::npos) << r.err_line();
  EXPECT_TRUE(r.err_line().ends_with(fmt::format(
      "against 'dyn_var': 'dyn_var' in {} is in dynamic TLS (its block is not at a fixed offset from the thread "
      "pointer), which TLS descriptor (relaxed to initial-exec) access cannot reach; build the patch with "
      "-mtls-dialect=gnu",
      dyn)))
      << r.err_line();
  expect_absent(t, "tls_dyn_gnu2");
  EXPECT_EQ(t.ask("dynround"), "2 4 6 8");
}

}  // namespace
}  // namespace hs::e2e
