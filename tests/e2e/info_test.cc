// `hotsplice info FILE [--json]` on a real payload from the real builder:
// what it prints is checked against what the files contain, read with
// hotsplice's ELF reader (build-ids, the target's and the payload's symbol
// sizes) and against the patch source (tests/e2e/patches/info.c).
#include <gtest/gtest.h>

#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "elf/elf_file.h"
#include "harness.h"
#include "support/files.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// st_size of a defined symbol in the file's .symtab.
hs::u64 symbol_size(const std::string& path, std::string_view name) {
  auto elf = hs::ElfFile::open(path);
  EXPECT_TRUE(elf.has_value()) << (elf ? "" : elf.error().message());
  if (!elf || !elf->symtab_index()) return 0;
  auto syms = elf->symbols(*elf->symtab_index());
  if (syms)
    for (const hs::ElfSymbol& s : *syms)
      if (s.name == name && s.defined()) return s.st_size;
  ADD_FAILURE() << "no symbol " << name << " in " << path;
  return 0;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// What info.c is built from, and what the files say it must show.
class Info : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = build("hello_v2.c", target_bin("hello"), "info_base.lp");
    lp_ = build("info.c", target_bin("hello"), "info.lp", base_);
  }
  static std::string base_, lp_;
};
std::string Info::base_, Info::lp_;

}  // namespace

TEST_F(Info, TextShowsBuildIdsMetadataAndEveryFunction) {
  const std::string target = target_bin("hello");
  HsRun r = hotsplice({"info", lp_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 9u) << r.out;
  EXPECT_EQ(lines[0], "payload " + lp_);
  EXPECT_EQ(lines[1], "  build-id        " + build_id_hex(lp_));
  EXPECT_EQ(lines[2], "  depends         " + build_id_hex(base_)) << "stacked on hello_v2 (--depends)";
  EXPECT_EQ(lines[3], "  object depends  " + build_id_hex(target));
  EXPECT_EQ(lines[4], "  cve             CVE-2026-4242");
  EXPECT_EQ(lines[5], "  description     shown by hotsplice info");
  EXPECT_EQ(lines[6], "  functions       2");
  // The compiler may emit the two entries in either order.
  const std::string world = fmt::format("    world -> info_world (old {:#x} bytes, new {:#x} bytes), expects 8b05",
                                        symbol_size(target, "world"), symbol_size(lp_, "info_world"));
  const std::string nop =
      fmt::format("    side_effect -> NOP out 0x5 bytes (old {:#x} bytes)", symbol_size(target, "side_effect"));
  EXPECT_TRUE((lines[7] == world && lines[8] == nop) || (lines[7] == nop && lines[8] == world))
      << "expected:\n" << world << "\n" << nop << "\ngot:\n" << lines[7] << "\n" << lines[8];
}

TEST_F(Info, JsonHasEveryField) {
  const std::string target = target_bin("hello");
  HsRun r = hotsplice({"info", lp_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  json j = json::parse(r.out);
  EXPECT_EQ(j["file"], lp_);
  EXPECT_EQ(j["build_id"], build_id_hex(lp_));
  EXPECT_EQ(j["depends"], build_id_hex(base_));
  EXPECT_EQ(j["object_depends"], build_id_hex(target));
  EXPECT_EQ(j["modinfo"], json({{"cve", "CVE-2026-4242"}, {"description", "shown by hotsplice info"}}));
  EXPECT_EQ(j["hooks"], json({{"load", {"info_on_load"}}, {"preapply", "info_pre"}}));

  ASSERT_EQ(j["funcs"].size(), 2u) << j.dump(2);
  std::optional<json> world, nop;
  for (const json& f : j["funcs"]) (f["name"] == "world" ? world : nop) = f;
  ASSERT_TRUE(world && nop) << j.dump(2);
  EXPECT_EQ(*world, json({{"name", "world"},
                          {"new", "info_world"},
                          {"new_size", symbol_size(lp_, "info_world")},
                          {"old_size", symbol_size(target, "world")},
                          {"expect", "8b05"}}));
  EXPECT_EQ(*nop, json({{"name", "side_effect"},
                        {"new", nullptr},
                        {"new_size", 5},
                        {"old_size", symbol_size(target, "side_effect")}}));
}

// What info shows is what the payload does once applied.
TEST_F(Info, ThePayloadDoesWhatInfoSays) {
  Target t(target_bin("hello"));
  OK({"load", P(t), base_, "--name", "base"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
  EXPECT_EQ(t.ask("world"), "world=10");
  EXPECT_EQ(t.ask("side"), "side=1");
  OK({"load", P(t), lp_, "--name", "info"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=2");
  EXPECT_EQ(t.ask("world"), "world=60");
  EXPECT_EQ(t.ask("side"), "side=1") << "side_effect is NOPed out";
  json l = list_json(t);
  const json* p = find_payload(l, "info");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["build_id"], build_id_hex(lp_));
  EXPECT_EQ((*p)["depends"], build_id_hex(base_));
  EXPECT_EQ((*p)["modinfo"]["cve"], "CVE-2026-4242");
}

TEST(InfoErrors, MissingAndMalformedFilesAreOneLine) {
  HsRun r = hotsplice({"info", "/nonexistent/fix.lp"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "hotsplice: error: /nonexistent/fix.lp: cannot open: No such file or directory\n");
  const std::string not_elf = work_file("info_not_elf.lp");
  hs::test::write_file(not_elf, "not an ELF file at all, but long enough for a header: " + std::string(64, 'x'));
  r = hotsplice({"info", not_elf, "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "hotsplice: error: " + not_elf + ": not an ELF file: magic 0x6e6f7420 is not 0x7f454c46\n");
  EXPECT_EQ(r.out, "");
}
