// The Linux livepatch ELF form (issue 10, seed "Livepatch module ELF
// format"): payloads whose references to the target's locals are SHN_LIVEPATCH
// symbols named ".klp.sym.<object>.<name>,<pos>", used by relocations in
// ".klp.rela.<object>.<section>" sections (SHT_RELA, SHF_ALLOC |
// SHF_RELA_LIVEPATCH, sh_info the section they apply to).
//
// The patches are written in assembler (patches/klp/*.S) with the
// document's symbol names, built by `hotsplice build` against klp_app, and
// put in the document's form by klp_convert() (tests/support/klp_form.h), as
// the kernel's klp-convert does. They are applied to klp_app (targets/klp/),
// whose answers show what the replacement computed from the statics it
// reached; every refusal asserts its one line and that the target is as it
// was.
#include <unistd.h>

#include <cstdio>
#include <tuple>
#include <gtest/gtest.h>

#include "elf/elf_file.h"
#include "harness.h"
#include "payload/payload.h"
#include "support/files.h"
#include "support/klp_form.h"

using namespace hs;
using namespace hs::e2e;

namespace {

// The objects the patches' ".klp.sym." names may start with.
const std::vector<std::string> kObjects = {"klp_app", "libklp_lib.so", "klp_nosuch"};

// Builds patches/klp/`src` against klp_app with `cflags` (may be empty),
// converts it with `conv` and writes work_file(`out`); returns that path.
std::string klp_payload(const std::string& src, const std::string& out, const std::string& cflags = "",
                        test::KlpConvert conv = {}) {
  const std::string path = work_file(out);
  const std::string built = path + "." + std::to_string(::getpid()) + ".built";
  std::vector<std::string> args{"build", patch_src("klp/" + src), "--target", target_bin("klp_app"), "-o", built};
  if (!cflags.empty()) args.insert(args.end(), {"--cflags", cflags});
  HsRun r = hotsplice(args);
  EXPECT_EQ(r.code, 0) << "hotsplice build " << src << " failed: " << r.err;
  if (conv.objects.empty()) conv.objects = kObjects;
  auto converted = test::klp_convert(test::read_bytes(built), conv);
  EXPECT_TRUE(converted.has_value()) << converted.error().message();
  std::remove(built.c_str());
  if (!converted) return path;
  const std::string tmp = path + "." + std::to_string(::getpid()) + ".tmp";
  test::write_bytes(tmp, *converted);
  EXPECT_EQ(::rename(tmp.c_str(), path.c_str()), 0);
  return path;
}

// "section [index N] 'NAME'" of the payload file, as messages name it.
std::string section(const std::string& file, std::string_view name) {
  auto elf = ElfFile::open(file);
  if (!elf) return "(" + elf.error().message() + ")";
  auto i = elf->find_section(name);
  return i ? elf->describe_section(*i) : "(no section " + std::string(name) + ")";
}

// The index of symbol `name` in the payload's .symtab (0: none).
u32 symbol_index(const std::string& file, std::string_view name) {
  auto elf = ElfFile::open(file);
  if (!elf || !elf->symtab_index()) return 0;
  const auto syms = elf->symbols(*elf->symtab_index());
  if (!syms) return 0;
  for (const ElfSymbol& s : *syms)
    if (s.name == name) return s.index;
  return 0;
}

// Upload of `file` is refused with "hotsplice: error: FILE: <message>", and
// klp_app is as it was: same answer, nothing mapped or listed.
void expect_refused(const std::string& file, const std::string& message) {
  Target t(target_bin("klp_app"));
  EXPECT_EQ(t.ask("compute 2"), "compute=7");
  HsRun r = hotsplice({"upload", P(t), "klp", file});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err, "hotsplice: error: " + file + ": " + message + "\n");
  expect_absent(t, "klp");
  EXPECT_EQ(t.ask("compute 2"), "compute=7");
  EXPECT_EQ(t.ask("pick"), "pick=300");
}

}  // namespace

// The payload really is in the document's form: the references are
// SHN_LIVEPATCH symbols and their relocations sit in a .klp.rela section
// with the flags the document requires, and nowhere else.
TEST(Klp, PayloadIsInTheDocumentsForm) {
  const std::string file = klp_payload("static.S", "klp_static.lp");
  auto p = Payload::open(file);
  ASSERT_TRUE(p.has_value()) << p.error().message();
  ASSERT_EQ(p->klp.sections.size(), 1u);
  const KlpRelaSection& s = p->klp.sections[0];
  EXPECT_EQ(p->elf.section_name(s.index), ".klp.rela.klp_app..text.fixed_compute");
  EXPECT_EQ(p->elf.section_name(s.target), ".text.fixed_compute");
  EXPECT_EQ(s.object, "klp_app");
  const Elf64_Shdr& sh = p->elf.sections()[s.index];
  EXPECT_EQ(sh.sh_type, static_cast<u32>(SHT_RELA));
  EXPECT_EQ(sh.sh_flags & (SHF_ALLOC | kShfRelaLivepatch), SHF_ALLOC | kShfRelaLivepatch);
  std::vector<std::string> names;
  for (const auto& [si, ks] : p->klp.symbols) names.push_back(ks.written + " -> " + ks.name + "," + std::to_string(ks.pos));
  EXPECT_EQ(names, (std::vector<std::string>{".klp.sym.klp_app.helper,0 -> helper,0",
                                             ".klp.sym.klp_app.scale,0 -> scale,0"}));
  auto symtab = p->elf.symtab_index();
  ASSERT_TRUE(symtab.has_value());
  const auto syms = p->elf.symbols(*symtab);
  ASSERT_TRUE(syms.has_value());
  for (const ElfSymbol& sym : *syms) {
    if (sym.name.starts_with(".klp.sym.")) {
      EXPECT_EQ(sym.st_shndx, kShnLivepatch) << sym.name;
    }
  }
  // The ordinary relocations of the function are what is left: none.
  const auto rela = p->elf.find_section(".rela.text.fixed_compute");
  ASSERT_TRUE(rela.has_value());
  EXPECT_EQ(p->elf.sections()[*rela].sh_size, 0u);
}

// A replacement calls a static function and reads a static variable of the
// executable through .klp.sym symbols; it sees the variable's live value;
// revert brings the original back.
TEST(Klp, StaticsOfTheExecutable) {
  const std::string file = klp_payload("static.S", "klp_static.lp");
  Target t(target_bin("klp_app"));
  EXPECT_EQ(t.ask("compute 2"), "compute=7");  // 2 * 3 + 1
  OK({"upload", P(t), "klp", file});
  EXPECT_EQ(t.ask("compute 2"), "compute=7");  // uploaded, not applied
  OK({"apply", P(t), "klp"});
  EXPECT_EQ(t.ask("compute 2"), "compute=63");  // helper(2) * 10 + scale
  EXPECT_EQ(t.ask("scale 5"), "scale=5");
  EXPECT_EQ(t.ask("compute 2"), "compute=105");  // 10 * 10 + 5: both read the live scale
  OK({"revert", P(t), "klp"});
  EXPECT_EQ(t.ask("compute 2"), "compute=11");  // 2 * 5 + 1
  OK({"unload", P(t), "klp"});
  expect_absent(t, "klp");
  EXPECT_EQ(t.ask("compute 2"), "compute=11");
}

// <object> a shared library: the replacement (in the executable) calls a
// static function of libklp_lib.so and reads its static variable, mapped
// far away (a veneer and a GOT slot).
TEST(Klp, StaticsOfASharedLibrary) {
  const std::string file = klp_payload("lib.S", "klp_lib.lp");
  {
    auto p = Payload::open(file);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    ASSERT_EQ(p->klp.sections.size(), 1u);
    EXPECT_EQ(p->elf.section_name(p->klp.sections[0].index), ".klp.rela.libklp_lib.so..text.fixed_via_lib");
  }
  Target t(target_bin("klp_app"));
  EXPECT_EQ(t.ask("lib 1"), "lib=43");
  OK({"load", P(t), file, "--name", "klp"});
  EXPECT_EQ(t.ask("lib 1"), "lib=4243");  // lib_mix(1) + 42 * 100
  EXPECT_EQ(t.ask("secret 7"), "secret=7");
  EXPECT_EQ(t.ask("lib 1"), "lib=708");  // 8 + 700
  OK({"revert", P(t), "klp"});
  EXPECT_EQ(t.ask("lib 1"), "lib=8");
  OK({"unload", P(t), "klp"});
  expect_absent(t, "klp");
}

// pos > 0: two statics share a name (`tally`, `twin` in klp_a.c and
// klp_b.c); ",2" reaches klp_b.c's, ",1" klp_a.c's.
TEST(Klp, PositionPicksTheNthOfSameNamedStatics) {
  const std::string file = klp_payload("sympos.S", "klp_sympos.lp");
  Target t(target_bin("klp_app"));
  EXPECT_EQ(t.ask("pick"), "pick=300");
  OK({"load", P(t), file, "--name", "klp"});
  EXPECT_EQ(t.ask("pick"), "pick=200100");  // tally,2 (200) * 1000 + twin,1 (100)
  OK({"revert", P(t), "klp"});
  EXPECT_EQ(t.ask("pick"), "pick=300");
}

// The form before the document's: the same names as plain undefined symbols
// in ordinary relocation sections (the patch as built, not converted). The
// object is the longest mapped file name the name starts with, so
// "libklp_lib.so" is not taken for a shorter prefix, and positions count as
// in the document's form.
TEST(Klp, PlainUndefinedKlpSymNamesResolveTheSameWay) {
  for (const auto& [src, ask, before, after] :
       {std::tuple{"static.S", "compute 2", "compute=7", "compute=63"}, std::tuple{"lib.S", "lib 1", "lib=43", "lib=4243"},
        std::tuple{"sympos.S", "pick", "pick=300", "pick=200100"}}) {
    SCOPED_TRACE(src);
    const std::string file = work_file(std::string("klp_plain_") + src + ".lp");
    OK({"build", patch_src(std::string("klp/") + src), "--target", target_bin("klp_app"), "-o", file});
    auto p = Payload::open(file);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    EXPECT_TRUE(p->klp.sections.empty());
    Target t(target_bin("klp_app"));
    EXPECT_EQ(t.ask(ask), before);
    OK({"load", P(t), file, "--name", "klp"});
    EXPECT_EQ(t.ask(ask), after);
    OK({"revert", P(t), "klp"});
    OK({"unload", P(t), "klp"});
    expect_absent(t, "klp");
  }
}

// ---- refused at upload, the target untouched ----

TEST(Klp, UnknownObjectIsRefused) {
  const std::string file =
      klp_payload("static.S", "klp_unknown_object.lp", "-DHELPER=\".klp.sym.klp_nosuch.helper,0\"");
  const std::string libc = [] {
    // The objects klp_app maps, as the message lists them.
    return std::string("klp_app, libklp_lib.so, libc.so.6, ld-linux-x86-64.so.2");
  }();
  expect_refused(file, section(file, ".klp.rela.klp_nosuch..text.fixed_compute") +
                           ": livepatch symbol '.klp.sym.klp_nosuch.helper,0': no object named 'klp_nosuch' is "
                           "mapped (mapped: " +
                           libc + ")");
}

TEST(Klp, PositionPastTheDefinitionsIsRefused) {
  const std::string file = klp_payload("static.S", "klp_pos_past.lp", "-DHELPER=\".klp.sym.klp_app.helper,2\"");
  expect_refused(file, section(file, ".klp.rela.klp_app..text.fixed_compute") +
                           ": symbol '.klp.sym.klp_app.helper,2' not found in " + target_bin("klp_app") +
                           ": 'helper' has only 1 definition");
}

TEST(Klp, PositionZeroOfASharedNameIsRefused) {
  const std::string file = klp_payload("sympos.S", "klp_pos_zero.lp", "-DTALLY=\".klp.sym.klp_app.tally,0\"");
  expect_refused(file, section(file, ".klp.rela.klp_app..text.fixed_pick") +
                           ": ambiguous symbol '.klp.sym.klp_app.tally,0' in " + target_bin("klp_app") +
                           ": 2 definitions (klp_a.c, klp_b.c), use 'tally,N' or 'file.c#tally'");
}

TEST(Klp, SymbolWithoutPositionIsRefused) {
  const std::string file = klp_payload("static.S", "klp_no_pos.lp", "-DHELPER=\".klp.sym.klp_app.helper\"");
  const u32 index = symbol_index(file, ".klp.sym.klp_app.helper");
  expect_refused(file, section(file, ".symtab") + ": symbol [index " + std::to_string(index) +
                           "] '.klp.sym.klp_app.helper': SHN_LIVEPATCH symbol's name is not "
                           "'.klp.sym.<object>.<name>,<pos>': it has no ',<pos>' (0 for a unique symbol)");
}

TEST(Klp, LivepatchSymbolFromAnOrdinaryRelaSectionIsRefused) {
  test::KlpConvert conv;
  conv.move_relocations = false;  // SHN_LIVEPATCH, but left in .rela.text.fixed_compute
  const std::string file = klp_payload("static.S", "klp_ordinary_rela.lp", "", conv);
  expect_refused(file, section(file, ".rela.text.fixed_compute") +
                           ": relocation [index 0] at r_offset 0x2 uses livepatch symbol '.klp.sym.klp_app.helper,0' "
                           "(SHN_LIVEPATCH), which only '.klp.rela.' sections may use");
}

TEST(Klp, OrdinarySymbolInAKlpRelaSectionIsRefused) {
  test::KlpConvert conv;
  conv.mark_livepatch = false;  // moved, but still SHN_UNDEF
  const std::string file = klp_payload("static.S", "klp_not_livepatch.lp", "", conv);
  const u32 index = symbol_index(file, ".klp.sym.klp_app.helper,0");
  expect_refused(file, section(file, ".klp.rela.klp_app..text.fixed_compute") +
                           ": relocation [index 0] at r_offset 0x2 uses symbol [index " + std::to_string(index) +
                           "] '.klp.sym.klp_app.helper,0', which is not a livepatch symbol (st_shndx 0x0, not "
                           "SHN_LIVEPATCH 0xff20)");
}

TEST(Klp, MalformedKlpRelaNameIsRefused) {
  // The 2016 draft's single dot: ".klp.rela.klp_app.text.fixed_compute"
  // does not end in "." + the name of the section it applies to.
  test::KlpConvert conv;
  conv.section_name = [](const std::string& object, const std::string& sec) {
    return ".klp.rela." + object + sec;
  };
  const std::string file = klp_payload("static.S", "klp_bad_name.lp", "", conv);
  expect_refused(file, section(file, ".klp.rela.klp_app.text.fixed_compute") +
                           ": name is not '.klp.rela.<object>..text.fixed_compute' (<section> is the name of " +
                           section(file, ".text.fixed_compute") + ", which sh_info says it applies to)");

  // No object at all.
  conv.section_name = [](const std::string&, const std::string& sec) { return ".klp.rela." + sec; };
  const std::string file2 = klp_payload("static.S", "klp_no_object.lp", "", conv);
  expect_refused(file2, section(file2, ".klp.rela..text.fixed_compute") +
                            ": name is not '.klp.rela.<object>..text.fixed_compute' (<section> is the name of " +
                            section(file2, ".text.fixed_compute") + ", which sh_info says it applies to)");
}

TEST(Klp, KlpRelaSectionOfAnotherObjectIsRefused) {
  // The section names libklp_lib.so, its symbols are klp_app's.
  test::KlpConvert conv;
  conv.section_name = [](const std::string&, const std::string& sec) { return ".klp.rela.libklp_lib.so." + sec; };
  const std::string file = klp_payload("static.S", "klp_other_object.lp", "", conv);
  expect_refused(file, section(file, ".klp.rela.libklp_lib.so..text.fixed_compute") +
                           ": relocation [index 0] uses livepatch symbol '.klp.sym.klp_app.helper,0', which is not "
                           "one of object 'libklp_lib.so' that the section names (expected "
                           "'.klp.sym.libklp_lib.so.<name>,<pos>')");
}

TEST(Klp, KlpRelaSectionWithoutTheFlagIsRefused) {
  test::KlpConvert conv;
  conv.flags = SHF_ALLOC | SHF_INFO_LINK;  // no SHF_RELA_LIVEPATCH
  const std::string file = klp_payload("static.S", "klp_no_flag.lp", "", conv);
  expect_refused(file, section(file, ".klp.rela.klp_app..text.fixed_compute") +
                           ": SHF_RELA_LIVEPATCH (0x100000) is not set, as a '.klp.rela.' section must have it");
  conv.flags = SHF_INFO_LINK | kShfRelaLivepatch;  // no SHF_ALLOC
  const std::string file2 = klp_payload("static.S", "klp_no_alloc.lp", "", conv);
  expect_refused(file2, section(file2, ".klp.rela.klp_app..text.fixed_compute") +
                            ": SHF_ALLOC is not set, as a '.klp.rela.' section must have it");
}
