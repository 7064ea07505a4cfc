// Source names (issue 10: C++ names and GCC's renamed code): the pure
// pieces (clone suffixes, demangled spellings), and ObjectSymbols' lookups
// by demangled name and by source name on a program whose symbol table the
// test writes in assembler, so every shape is there whatever the compiler
// would decide (the e2e tests check real g++ and gcc output).
#include <gtest/gtest.h>

#include "elf/source_names.h"
#include "elf/symbols.h"
#include "support/files.h"

namespace hs {
namespace {

using test::TempDir;

TEST(SourceNames, CloneSuffixes) {
  auto c = split_clone("parse.isra.0");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->base, "parse");
  EXPECT_EQ(c->suffix, ".isra.0");
  EXPECT_FALSE(c->cold);
  c = split_clone("parse.part.0.cold");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->base, "parse");
  EXPECT_TRUE(c->cold);
  c = split_clone("_ZN2ns1fEi.constprop.1.isra.0");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->base, "_ZN2ns1fEi");
  EXPECT_EQ(c->suffix, ".constprop.1.isra.0");
  EXPECT_TRUE(split_clone("f.cold.3")->cold);
  EXPECT_FALSE(split_clone("f.cold.3.isra.0")->cold);
  EXPECT_FALSE(split_clone("plain").has_value());
  EXPECT_FALSE(split_clone(".L12").has_value());
  EXPECT_FALSE(split_clone("a.b").has_value());
  EXPECT_FALSE(split_clone("f.isra.0.x").has_value());
  EXPECT_FALSE(split_clone("f.0").has_value());
  EXPECT_FALSE(split_clone("f.isra.").has_value());
}

TEST(SourceNames, DemangledSpellings) {
  EXPECT_EQ(demangle("_ZN2ns4Conn4sendEPKcm"), "ns::Conn::send(char const*, unsigned long)");
  EXPECT_FALSE(demangle("hello").has_value());
  EXPECT_FALSE(demangle("_Zgarbage").has_value());

  auto d = split_demangled("int ns::max<int>(int, int)");
  EXPECT_EQ(d.signature, "ns::max<int>(int, int)");
  EXPECT_EQ(d.qualified, "ns::max<int>");
  d = split_demangled("ns::Conn::get() const");
  EXPECT_EQ(d.signature, "ns::Conn::get() const");
  EXPECT_EQ(d.qualified, "ns::Conn::get");
  d = split_demangled("(anonymous namespace)::helper(int)");
  EXPECT_EQ(d.qualified, "(anonymous namespace)::helper");
  d = split_demangled("(anonymous namespace)::counter");
  EXPECT_EQ(d.qualified, "(anonymous namespace)::counter");
  d = split_demangled("ns::A::operator()(int)");
  EXPECT_EQ(d.qualified, "ns::A::operator()");
  d = split_demangled("ns::A::operator<(ns::A const&) const");
  EXPECT_EQ(d.qualified, "ns::A::operator<");
  d = split_demangled("ns::A::operator int() const");
  EXPECT_EQ(d.qualified, "ns::A::operator int");
  d = split_demangled("std::vector<int, std::allocator<int> >::push_back(int&&)");
  EXPECT_EQ(d.qualified, "std::vector<int, std::allocator<int> >::push_back");
  d = split_demangled("std::pair<int, long> ns::make<int, long>(int)");
  EXPECT_EQ(d.qualified, "ns::make<int, long>");

  EXPECT_EQ(normalize_name("ns::f( char const * , unsigned  long )"), "ns::f(char const*,unsigned long)");
  EXPECT_EQ(normalize_name("v<w<int> >"), "v<w<int>>");
  EXPECT_TRUE(looks_demangled("ns::f"));
  EXPECT_TRUE(looks_demangled("f(int)"));
  EXPECT_FALSE(looks_demangled("twin,2"));
  EXPECT_FALSE(looks_demangled("a.c#twin"));
  EXPECT_EQ(edit_distance("hellp", "hello", 2), 1u);
  EXPECT_EQ(edit_distance("abc", "abcdefgh", 2), 3u);  // past the limit: limit + 1
}

// A program whose symbol table has every shape: C++ overloads, members,
// a template, aliases, anonymous namespaces in two files, GCC copies and
// cold parts.
struct Program {
  std::string exe;
};

const Program& program() {
  static TempDir dir("hs-source-names");
  static const Program p = [] {
    Program r;
    const std::string fn =
        ".macro fn name, bind=local\n"
        "  .ifc \\bind,global\n  .globl \\name\n  .endif\n"
        "  .type \\name,@function\n"
        "\\name: nop; nop; nop; nop; nop; nop; nop; ret\n"
        "  .size \\name, .-\\name\n"
        ".endm\n";
    test::write_file(dir.file("a.s"), ".file \"a.c\"\n" + fn +
                                          ".text\n"
                                          "fn _start, global\n"
                                          "fn hello, global\n"
                                          "fn _ZN2ns1fEi, global\n"
                                          "fn _ZN2ns1fEd, global\n"
                                          "fn _ZN2ns4Conn4sendEPKcm, global\n"
                                          "fn _ZNK2ns4Conn3getEv, global\n"
                                          "fn _ZN2ns3maxIiEET_S1_S1_, global\n"
                                          "fn _Z7computei, global\n"
                                          "fn _ZN2ns4ConnC2Ev, global\n"
                                          ".globl _ZN2ns4ConnC1Ev\n"
                                          ".set _ZN2ns4ConnC1Ev, _ZN2ns4ConnC2Ev\n"
                                          "fn _ZN12_GLOBAL__N_16helperEv\n"
                                          "fn split, global\n"
                                          "fn parse.isra.0\n"
                                          "fn dup.constprop.0\n"
                                          "fn dup.constprop.1\n"
                                          "fn twin\n"
                                          "fn _ZL3cppPKc.isra.0\n"
                                          ".section .text.unlikely\n"
                                          "fn split.cold\n"
                                          "fn gone.cold\n"
                                          "fn twin.cold\n"
                                          ".data\n"
                                          ".globl _ZN2ns7counterE\n"
                                          ".type _ZN2ns7counterE,@object\n"
                                          "_ZN2ns7counterE: .long 7\n"
                                          ".size _ZN2ns7counterE, 4\n");
    test::write_file(dir.file("b.s"), ".file \"b.c\"\n" + fn +
                                          ".text\n"
                                          "fn _ZN12_GLOBAL__N_16helperEv\n"
                                          "fn twin\n"
                                          "fn call_twin, global\n"
                                          ".section .text.unlikely\n"
                                          "fn twin.cold\n");
    r.exe = dir.file("prog");
    test::run(fmt::format("gcc -nostdlib -static -Wl,--build-id -o {} {} {}", r.exe, dir.file("a.s"), dir.file("b.s")));
    return r;
  }();
  return p;
}

std::shared_ptr<ObjectSymbols> load() {
  auto elf = ElfFile::open(program().exe);
  EXPECT_TRUE(elf.has_value()) << elf.error().message();
  if (!elf) return nullptr;
  auto syms = ObjectSymbols::load(*elf, 0, "/nonexistent");
  EXPECT_TRUE(syms.has_value()) << syms.error().message();
  return syms ? *syms : nullptr;
}

// The symbol a lookup found ("" and a test failure if none).
std::string found(const Result<TargetSymbol>& r) {
  EXPECT_TRUE(r.has_value()) << r.error().message();
  return r ? r->name : std::string();
}

std::string error(const Result<TargetSymbol>& r, ErrorKind kind = ErrorKind::BadTarget) {
  EXPECT_FALSE(r.has_value()) << "found " << r->name;
  if (r) return "(found)";
  EXPECT_EQ(r.error().kind(), kind) << r.error().message();
  return r.error().message();
}

TEST(ObjectSymbolsSourceNames, DemangledNames) {
  auto syms = load();
  ASSERT_NE(syms, nullptr);
  // The full signature, spaced any way.
  EXPECT_EQ(found(syms->lookup("ns::f(int)")), "_ZN2ns1fEi");
  EXPECT_EQ(found(syms->lookup("ns::f( double )")), "_ZN2ns1fEd");
  EXPECT_EQ(found(syms->lookup_function("ns::Conn::send(char const *, unsigned long)")), "_ZN2ns4Conn4sendEPKcm");
  EXPECT_EQ(found(syms->lookup_function("ns::Conn::get() const")), "_ZNK2ns4Conn3getEv");
  // A template instance with or without its return type, or its name alone.
  EXPECT_EQ(found(syms->lookup_function("int ns::max<int>(int, int)")), "_ZN2ns3maxIiEET_S1_S1_");
  EXPECT_EQ(found(syms->lookup_function("ns::max<int>(int, int)")), "_ZN2ns3maxIiEET_S1_S1_");
  EXPECT_EQ(found(syms->lookup_function("ns::max<int>")), "_ZN2ns3maxIiEET_S1_S1_");
  // Without parameters when that is unique; a plain name for functions only.
  EXPECT_EQ(found(syms->lookup_function("ns::Conn::send")), "_ZN2ns4Conn4sendEPKcm");
  EXPECT_EQ(found(syms->lookup_function("compute")), "_Z7computei");
  EXPECT_EQ(error(syms->lookup("compute")), fmt::format("symbol 'compute' not found in {}", program().exe));
  // Aliases (a constructor's C1 and C2) are one function.
  EXPECT_EQ(syms->lookup_function("ns::Conn::Conn()")->addr, syms->lookup("_ZN2ns4ConnC2Ev")->addr);
  // Data by its demangled name (lookup), but not as a function.
  EXPECT_EQ(found(syms->lookup("ns::counter")), "_ZN2ns7counterE");
  // The mangled name still works.
  EXPECT_EQ(found(syms->lookup_function("_ZN2ns1fEd")), "_ZN2ns1fEd");
}

TEST(ObjectSymbolsSourceNames, AmbiguousAndUnknownDemangledNamesListCandidates) {
  auto syms = load();
  ASSERT_NE(syms, nullptr);
  const std::string& exe = program().exe;
  EXPECT_EQ(error(syms->lookup_function("ns::f"), ErrorKind::Ambiguous),
            fmt::format("ambiguous symbol 'ns::f' in {}: 2 functions match: 'ns::f(int)', 'ns::f(double)'; name one "
                        "of them",
                        exe));
  EXPECT_EQ(error(syms->lookup_function("(anonymous namespace)::helper()"), ErrorKind::Ambiguous),
            fmt::format("ambiguous symbol '(anonymous namespace)::helper()' in {}: 2 functions match: "
                        "'(anonymous namespace)::helper()' in a.c, '(anonymous namespace)::helper()' in b.c; name one "
                        "of them",
                        exe));
  EXPECT_EQ(error(syms->lookup_function("ns::f(long)")),
            fmt::format("symbol 'ns::f(long)' not found in {}; closest: 'ns::f(int)', 'ns::f(double)'", exe));
  EXPECT_EQ(error(syms->lookup_function("ns::Conn::sned")),
            fmt::format("symbol 'ns::Conn::sned' not found in {}; closest: 'ns::Conn::send'", exe));
  EXPECT_EQ(error(syms->lookup_function("hellp")), fmt::format("symbol 'hellp' not found in {}; closest: 'hello'", exe));
  EXPECT_EQ(error(syms->lookup_function("ns::nothing_like_it(int)")),
            fmt::format("symbol 'ns::nothing_like_it(int)' not found in {}", exe));
  EXPECT_EQ(error(syms->lookup_function("ns::counter")), fmt::format("symbol 'ns::counter' not found in {}", exe));
}

TEST(ObjectSymbolsSourceNames, RenamedCopiesBySourceName) {
  auto syms = load();
  ASSERT_NE(syms, nullptr);
  const std::string& exe = program().exe;
  auto parse = syms->lookup_function("parse");
  EXPECT_EQ(found(parse), "parse.isra.0");
  EXPECT_EQ(error(syms->lookup("parse")), fmt::format("symbol 'parse' not found in {}", exe));  // data refs: never
  EXPECT_EQ(found(syms->lookup_function("parse.isra.0")), "parse.isra.0");
  EXPECT_EQ(found(syms->lookup_function("cpp(char const*)")), "_ZL3cppPKc.isra.0");
  EXPECT_EQ(found(syms->lookup_function("split")), "split");  // the function itself, not its cold part
  EXPECT_TRUE(syms->copies_of("split").empty());  // a cold part is no copy
  EXPECT_EQ(syms->copies_of("dup"), (std::vector<std::string>{"dup.constprop.0", "dup.constprop.1"}));
  EXPECT_EQ(syms->copies_of("_ZL3cppPKc"), (std::vector<std::string>{"_ZL3cppPKc.isra.0"}));
  EXPECT_EQ(error(syms->lookup_function("dup"), ErrorKind::Ambiguous),
            fmt::format("ambiguous symbol 'dup' in {}: 2 copies of it were made by GCC: 'dup.constprop.0', "
                        "'dup.constprop.1'; name one of them",
                        exe));
  EXPECT_EQ(error(syms->lookup_function("split.cold")),
            fmt::format("symbol 'split.cold' in {} is the cold part GCC split out of 'split', not a function entry: "
                        "name 'split'",
                        exe));
  EXPECT_EQ(error(syms->lookup_function("gone")),
            fmt::format("'gone' has no entry point in {}: only its cold part 'gone.cold' is left (GCC inlined the rest "
                        "into its callers)",
                        exe));
}

TEST(ObjectSymbolsSourceNames, ColdPartsBelongToTheirFunction) {
  auto syms = load();
  ASSERT_NE(syms, nullptr);
  auto split = syms->lookup("split");
  auto split_cold = syms->lookup("split.cold");
  ASSERT_TRUE(split && split_cold);
  auto parts = syms->cold_parts("split", split->addr);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].begin, split_cold->addr);
  EXPECT_EQ(parts[0].size(), split_cold->size);
  // Two statics named twin, each with its own cold part: the same file's.
  for (const char* file : {"a.c", "b.c"}) {
    SCOPED_TRACE(file);
    auto twin = syms->lookup(fmt::format("{}#twin", file));
    auto cold = syms->lookup(fmt::format("{}#twin.cold", file));
    ASSERT_TRUE(twin && cold);
    parts = syms->cold_parts("twin", twin->addr);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].begin, cold->addr);
  }
  EXPECT_TRUE(syms->cold_parts("hello", syms->lookup("hello")->addr).empty());
}

}  // namespace
}  // namespace hs
