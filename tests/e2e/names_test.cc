// End-to-end: functions named by their source names (issue 10, "C++ names"
// and "Inlined, cold and renamed code"). A C++ target built as services are
// (names_cxx: g++ -O2, no frame pointers, no noipa) patched by demangled
// names; a C target whose functions GCC copied and split (names_clones:
// .isra, .constprop, .part, .cold) patched by their source names; the cold
// part of a function guarded like the function itself.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "elf/symbols.h"
#include "harness.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

using hs::u64;

std::shared_ptr<hs::ObjectSymbols> symbols_of(const std::string& bin) {
  auto elf = hs::ElfFile::open(bin);
  EXPECT_TRUE(elf.has_value()) << elf.error().message();
  if (!elf) return nullptr;
  auto syms = hs::ObjectSymbols::load(*elf, 0);
  EXPECT_TRUE(syms.has_value()) << syms.error().message();
  return syms ? *syms : nullptr;
}

// A patch source written by the test into the work directory.
std::string write_patch(const std::string& name, const std::string& text) {
  const std::string path = work_file(name);
  FILE* f = std::fopen(path.c_str(), "w");
  EXPECT_NE(f, nullptr) << path;
  if (f) {
    std::fputs(text.c_str(), f);
    std::fclose(f);
  }
  return path;
}

// The functions of payload `name` in `list --json`, by name.
std::map<std::string, json> funcs_of(const Target& t, const std::string& name) {
  std::map<std::string, json> out;
  const json list = list_json(t);
  if (const json* p = find_payload(list, name))
    for (const json& f : (*p)["funcs"]) out[f["name"].get<std::string>()] = f;
  return out;
}

const std::vector<Ask> kCxxOriginal = {
    {"send", "send=7006"}, {"kind", "kind=1"}, {"twice", "twice=42 2.5"}, {"bigger", "bigger=9 9"}};

}  // namespace

// Issue 10, C++: a member function and a virtual one (called through the
// vtable) by their full signatures, an overload by its signature, a template
// instance with its return type, and the other overload by its mangled name.
TEST(Names, CxxFunctionsPatchedByDemangledName) {
  const std::string bin = target_bin("names_cxx");
  // Built as a service would be: no frame pointers (no "mov %rsp,%rbp").
  auto syms = symbols_of(bin);
  ASSERT_NE(syms, nullptr);
  for (const char* s : {"_ZN2ns4Conn4sendEPKcm", "_ZNK2ns4Conn4kindEv", "_ZN2ns5twiceEd", "_ZN2ns5twiceEi",
                        "_ZN2ns6biggerIiEET_S1_S1_"})
    EXPECT_TRUE(syms->lookup(s).has_value()) << s;

  const std::string lp = work_file("names_cxx_v2.lp");
  HsRun b = hotsplice({"build", patch_src("names_cxx_v2.cc"), "--target", bin, "-o", lp});
  ASSERT_EQ(b.code, 0) << b.err;
  // The builder says which symbol each demangled name is.
  EXPECT_NE(b.out.find("  ns::Conn::send(char const*, unsigned long) -> _ZN2ns4Conn4sendEPKcm\n"), std::string::npos)
      << b.out;
  EXPECT_NE(b.out.find("  int ns::bigger<int>(int, int) -> _ZN2ns6biggerIiEET_S1_S1_\n"), std::string::npos) << b.out;

  Target t(bin);
  expect_answers(t, kCxxOriginal);
  OK({"load", P(t), lp});
  expect_answers(t, {{"send", "send=7505", "member function replaced"},
                     {"kind", "kind=2", "virtual function replaced (called through the vtable)"},
                     {"twice", "twice=43 3.75", "both overloads replaced"},
                     {"bigger", "bigger=3 9", "bigger<int> replaced, bigger<long> not"}});

  auto funcs = funcs_of(t, "names_cxx_v2");
  ASSERT_EQ(funcs.size(), 5u);
  EXPECT_EQ(funcs["ns::Conn::send(char const*, unsigned long)"]["symbol"], "_ZN2ns4Conn4sendEPKcm");
  EXPECT_EQ(funcs["ns::Conn::kind() const"]["symbol"], "_ZNK2ns4Conn4kindEv");
  EXPECT_EQ(funcs["ns::twice(double)"]["symbol"], "_ZN2ns5twiceEd");
  EXPECT_EQ(funcs["int ns::bigger<int>(int, int)"]["symbol"], "_ZN2ns6biggerIiEET_S1_S1_");
  EXPECT_FALSE(funcs["_ZN2ns5twiceEi"].contains("symbol"));  // named as it is
  HsRun l = hotsplice({"list", P(t)});
  EXPECT_NE(l.out.find("  [x] ns::Conn::kind() const (_ZNK2ns4Conn4kindEv) 0x"), std::string::npos) << l.out;

  OK({"revert", P(t), "names_cxx_v2"});
  expect_answers(t, kCxxOriginal);
  OK({"apply", P(t), "names_cxx_v2"});
  EXPECT_EQ(t.ask("kind"), "kind=2");
  OK({"revert", P(t), "names_cxx_v2"});
  OK({"unload", P(t), "names_cxx_v2"});
  expect_answers(t, kCxxOriginal);
}

// An overloaded name without its parameters is refused at build, naming
// each overload; a misspelt one names the closest.
TEST(Names, CxxAmbiguousOrUnknownNameRefusedNamingCandidates) {
  const std::string bin = target_bin("names_cxx");
  auto refused = [&](const std::string& file, const std::string& name) {
    const std::string src = write_patch(
        file, fmt::format("#include <hotsplice/livepatch.h>\nstatic int v2(int x) {{ return x; }}\n"
                          "HOTSPLICE_REPLACE(\"{}\", v2);\n",
                          name));
    HsRun r = hotsplice({"build", src, "--target", bin, "-o", work_file(file + ".lp")});
    EXPECT_EQ(r.code, 1) << r.err;
    // "hotsplice: error: SOURCE: " and what the builder says.
    const std::string prefix = "hotsplice: error: " + src + ": ";
    const std::string line = r.err_line();
    EXPECT_TRUE(line.starts_with(prefix)) << line;
    return line.starts_with(prefix) ? line.substr(prefix.size()) : line;
  };
  EXPECT_EQ(refused("names_ambiguous.cc", "ns::twice"),
            fmt::format("cannot patch 'ns::twice': ambiguous symbol 'ns::twice' in {}: 2 functions "
                        "match: 'ns::twice(int)', 'ns::twice(double)'; name one of them",
                        bin));
  EXPECT_EQ(refused("names_unknown.cc", "ns::Conn::sned(char const*, unsigned long)"),
            fmt::format("cannot patch 'ns::Conn::sned(char const*, unsigned long)': symbol "
                        "'ns::Conn::sned(char const*, unsigned long)' not found in {}; closest: "
                        "'ns::Conn::send(char const*, unsigned long)'",
                        bin));
  EXPECT_EQ(refused("names_overload.cc", "ns::twice(long)"),
            fmt::format("cannot patch 'ns::twice(long)': symbol 'ns::twice(long)' not found in {}; "
                        "closest: 'ns::twice(int)', 'ns::twice(double)'",
                        bin));
}

// The same refusal at load, from the resolver: a payload that gives old_size
// itself is not looked up by the builder.
TEST(Names, LoadRefusesAnAmbiguousDemangledName) {
  const std::string bin = target_bin("names_cxx");
  const std::string src = write_patch("names_load_ambiguous.c",
                                      "#include <hotsplice/livepatch.h>\n"
                                      "static int v2(int x) { return x; }\n"
                                      "static const struct livepatch_func entry\n"
                                      "    __attribute__((used, section(\".livepatch.funcs\"), aligned(8))) = {\n"
                                      "    .name = \"ns::twice\", .new_addr = (void *)v2, .old_size = 16,\n"
                                      "    .version = LIVEPATCH_PAYLOAD_VERSION};\n");
  const std::string lp = work_file("names_load_ambiguous.lp");
  HsRun b = hotsplice({"build", src, "--target", bin, "-o", lp});
  ASSERT_EQ(b.code, 0) << b.err;
  Target t(bin);
  HsRun r = hotsplice({"load", P(t), lp});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err_line(), fmt::format("hotsplice: error: {}: function 'ns::twice': ambiguous symbol 'ns::twice' "
                                      "in {}: 2 functions match: 'ns::twice(int)', 'ns::twice(double)'; name one of "
                                      "them",
                                      lp, bin));
  expect_absent(t, "names_load_ambiguous");
  expect_answers(t, kCxxOriginal);
}

// Issue 10, renamed and split code: GCC made the copies (checked in the
// binary's symbol table), the patch names the source names, list shows the
// real symbols, behaviour changes and comes back.
TEST(Names, GccCopiesPatchedBySourceName) {
  const std::string bin = target_bin("names_clones");
  auto syms = symbols_of(bin);
  ASSERT_NE(syms, nullptr);
  for (const char* s : {"parse.isra.0", "scale.constprop.0", "classify.part.0", "checked", "checked.cold"})
    EXPECT_TRUE(syms->lookup(s).has_value()) << s << " was not produced by gcc";
  for (const char* s : {"parse", "scale", "classify"})
    EXPECT_FALSE(syms->lookup(s).has_value()) << s << " kept its own name";

  const std::string lp = work_file("names_clones_v2.lp");
  HsRun b = hotsplice({"build", patch_src("names_clones_v2.c"), "--target", bin, "-o", lp});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("  parse -> parse.isra.0 (a copy GCC made: the replacement is called with that copy's "
                       "arguments)\n"),
            std::string::npos)
      << b.out;

  Target t(bin);
  const std::vector<Ask> original = {
      {"parse 4", "parse=12"}, {"scale 3", "scale=31"}, {"classify 3", "classify=3"}, {"checked 2", "checked=7"}};
  expect_answers(t, original);
  OK({"load", P(t), lp});
  expect_answers(t, {{"parse 4", "parse=1012", "parse.isra.0 replaced"},
                     {"scale 3", "scale=32", "scale.constprop.0 replaced"},
                     {"classify 20", "classify=7020", "classify.part.0 replaced"},
                     {"classify 3", "classify=3", "classify's head stays inlined in its callers"},
                     {"checked 2", "checked=52", "checked replaced"}});
  auto funcs = funcs_of(t, "names_clones_v2");
  EXPECT_EQ(funcs["parse"]["symbol"], "parse.isra.0");
  EXPECT_EQ(funcs["scale"]["symbol"], "scale.constprop.0");
  EXPECT_EQ(funcs["classify"]["symbol"], "classify.part.0");
  EXPECT_FALSE(funcs["checked"].contains("symbol"));
  // checked's cold part is recorded with it.
  ASSERT_EQ(funcs["checked"]["cold"].size(), 1u);
  EXPECT_EQ(funcs["checked"]["cold"][0]["size"], syms->lookup("checked.cold")->size);
  HsRun l = hotsplice({"list", P(t)});
  EXPECT_NE(l.out.find("  [x] parse (parse.isra.0) 0x"), std::string::npos) << l.out;

  OK({"revert", P(t), "names_clones_v2"});
  expect_answers(t, original);
}

// A thread in a function's cold part is running that function: an apply
// waits for it like for a thread in the function itself, and says where.
TEST(Names, ColdPartIsGuardedLikeTheFunction) {
  const std::string bin = target_bin("names_clones");
  auto syms = symbols_of(bin);
  ASSERT_NE(syms, nullptr);
  auto checked = syms->lookup("checked");
  auto cold = syms->lookup("checked.cold");
  ASSERT_TRUE(checked && cold);
  const std::string lp = build("names_clones_v2.c", bin, "names_clones_v2.lp");

  Target t(bin);
  OK({"upload", P(t), "fix", lp});
  const std::string parked = t.ask("park");
  int tid = 0;
  u64 ret = 0, checked_at = 0;
  ASSERT_EQ(std::sscanf(parked.c_str(), "parked tid=%d ret=%lx checked=%lx", &tid, &ret, &checked_at), 3) << parked;
  const u64 cold_at = checked_at - checked->addr.value() + cold->addr.value();
  ASSERT_GE(ret, cold_at);
  ASSERT_LT(ret, cold_at + cold->size) << "the parked thread returns into checked.cold";

  HsRun r = hotsplice({"apply", P(t), "fix", "--timeout", "300ms"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_line(), fmt::format("hotsplice: error: apply of 'fix' is not safe after 300 ms: thread {} will return "
                                      "into the cold part of function 'checked' at {:#x} (return address {:#x}, frame "
                                      "#2)",
                                      tid, cold_at, ret));
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");
  EXPECT_EQ(t.ask("checked 1"), "checked=6");

  EXPECT_EQ(t.ask("release"), "released checked=-1");
  OK({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("checked 1"), "checked=51");
}

// A function named by its own name whose copies GCC made stay as they are:
// the builder says so (tally is global and kept, but its callers here call
// tally.part.0, so the patch does not reach them).
TEST(Names, CopiesOfANamedFunctionAreNotReplacedAndTheBuilderSaysSo) {
  const std::string bin = target_bin("names_clones");
  auto syms = symbols_of(bin);
  ASSERT_NE(syms, nullptr);
  ASSERT_TRUE(syms->lookup("tally").has_value());
  ASSERT_TRUE(syms->lookup("tally.part.0").has_value()) << "gcc did not split tally";
  const std::string src = write_patch("names_tally.c",
                                      "#include <hotsplice/livepatch.h>\n"
                                      "static int tally_v2(int x) { return 9000 + x; }\n"
                                      "HOTSPLICE_REPLACE(\"tally\", tally_v2);\n");
  const std::string lp = work_file("names_tally.lp");
  HsRun b = hotsplice({"build", src, "--target", bin, "-o", lp});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(b.out.find("  note: tally also has copies GCC made (tally.part.0), which this payload does not replace: "
                       "calls to them keep the old code\n"),
            std::string::npos)
      << b.out;
  Target t(bin);
  EXPECT_EQ(t.ask("tally 20"), "tally=200");  // the table starts at zero
  OK({"load", P(t), lp});
  EXPECT_EQ(t.ask("tally 3"), "tally=3") << "the head is inlined in the caller";
  EXPECT_NE(t.ask("tally 20"), "tally=9020") << "the caller calls tally.part.0, which the patch leaves alone";
  auto funcs = funcs_of(t, "names_tally");
  EXPECT_FALSE(funcs["tally"].contains("symbol"));
}
