// The Linux livepatch ELF form in a payload (src/payload/klp.h): what
// Payload::parse models from .klp.rela sections and SHN_LIVEPATCH symbols,
// what it refuses (exact messages), and how the loader resolves each symbol
// in the object its section names. The payload is compiled at test time
// (its references are C declarations with ".klp.sym." assembler names) and
// put in the form by klp_convert (tests/support/klp_form.h). The e2e tests
// (tests/e2e/klp_test.cc, Klp.*) apply such payloads to a real target.
#include <cstring>
#include <gtest/gtest.h>

#include "payload/loader.h"
#include "payload/payload.h"
#include "support/klp_form.h"
#include "support/sample_payload.h"

using namespace hs;

namespace {

// A replacement whose references are livepatch symbols of two objects, one
// with dots in its file name, one whose symbol has a dot and a position.
// (gcc writes an assembler name unquoted, and gas takes no @PLT or
// @GOTPCREL after a quoted one: the C names are aliases, and the relocations
// name the symbols they stand for.)
constexpr std::string_view kSource = R"(#include <hotsplice/livepatch.h>
__asm__(".set cold_var, \".klp.sym.libfoo.so.1.f.cold,3\"\n"
        "\t.set helper, \".klp.sym.prog.helper,0\"");
extern int cold_var;
extern int helper(int);
int *const cold_ptr = &cold_var;
static int fixed_hello(void) { return helper(*cold_ptr); }
HOTSPLICE_REPLACE("hello", fixed_hello);
)";

struct Built {
  test::TempDir dir{"hs-klp"};
  std::string plain;  // as the builder makes it
};

const Built& built() {
  static Built* b = [] {
    auto* out = new Built;
    out->plain = test::build_payload(out->dir, kSource, "klp");
    return out;
  }();
  return *b;
}

Bytes converted(test::KlpConvert conv = {}) {
  if (conv.objects.empty()) conv.objects = {"prog", "libfoo.so.1"};
  auto b = test::klp_convert(test::read_bytes(built().plain), conv);
  EXPECT_TRUE(b.has_value()) << b.error().message();
  return b ? *b : Bytes{};
}

Result<Payload> parse(Bytes b) {
  ElfFile elf = HS_TRY(ElfFile::create(std::move(b)));
  return Payload::parse(std::move(elf), "klp.lp");
}

// The refusal of `b`, after "klp.lp: ".
std::string refusal(Bytes b) {
  auto p = parse(std::move(b));
  if (p) return "(accepted)";
  EXPECT_EQ(p.error().kind(), ErrorKind::BadPayload);
  const std::string m = p.error().message();
  return m.starts_with("klp.lp: ") ? m.substr(8) : m;
}

// Section headers of a converted payload, for mutating it.
struct Headers {
  Elf64_Ehdr eh;
  ElfFile elf;
  size_t index(std::string_view name) const { return elf.find_section(name).value_or(0); }
  u64 at(size_t i) const { return eh.e_shoff + i * sizeof(Elf64_Shdr); }
};
Headers headers(const Bytes& b) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, b.data(), sizeof eh);
  return Headers{eh, *ElfFile::create(b)};
}

constexpr std::string_view kProgSection = ".klp.rela.prog..text.fixed_hello";

}  // namespace

TEST(KlpForm, ModelsSectionsAndSymbolsOfObjectsWithDots) {
  auto p = parse(converted());
  ASSERT_TRUE(p.has_value()) << p.error().message();
  std::vector<std::string> sections;
  for (const KlpRelaSection& s : p->klp.sections)
    sections.push_back(std::string(p->elf.section_name(s.index)) + " [" + s.object + "] -> " +
                       std::string(p->elf.section_name(s.target)));
  std::sort(sections.begin(), sections.end());
  // One per object and section: fixed_hello uses both objects.
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_TRUE(sections[0].starts_with(".klp.rela.libfoo.so.1..data.rel.ro")) << sections[0];
  EXPECT_TRUE(sections[0].find(" [libfoo.so.1] -> .data.rel.ro") != std::string::npos) << sections[0];
  EXPECT_EQ(sections[1], ".klp.rela.libfoo.so.1..text.fixed_hello [libfoo.so.1] -> .text.fixed_hello");
  EXPECT_EQ(sections[2], std::string(kProgSection) + " [prog] -> .text.fixed_hello");
  std::vector<std::string> syms;
  for (const auto& [si, k] : p->klp.symbols) syms.push_back(k.object + " | " + k.name + " | " + std::to_string(k.pos));
  std::sort(syms.begin(), syms.end());
  EXPECT_EQ(syms, (std::vector<std::string>{"libfoo.so.1 | f.cold | 3", "prog | helper | 0"}));
}

namespace {
class KlpResolver final : public SymbolResolver {
 public:
  Result<TargetSymbol> resolve_symbol(std::string_view name) override {
    asked.push_back("symbol " + std::string(name));
    return fail(ErrorKind::BadTarget, "unresolved symbol '{}'", name);
  }
  Result<TargetSymbol> resolve_function(std::string_view) override {
    return TargetSymbol{RemoteAddr(0x500000), 0x40, "prog", STT_FUNC};
  }
  Result<TargetSymbol> resolve_klp(const KlpSymbol& s) override {
    asked.push_back(fmt::format("klp {} {} {}", s.object, s.name, s.pos));
    if (s.object == "libfoo.so.1") return TargetSymbol{RemoteAddr(0x7f1234567890), 4, s.object, STT_OBJECT};
    return TargetSymbol{RemoteAddr(0x501000), 0x10, s.object, STT_FUNC};
  }
  std::vector<std::string> asked;
};
}  // namespace

// The loader asks for each livepatch symbol by object, name and position
// (never by its whole name), writes what it gets, and keeps the .klp.rela
// sections out of the image.
TEST(KlpForm, LoaderResolvesEachSymbolInTheObjectItsSectionNames) {
  auto p = parse(converted());
  ASSERT_TRUE(p.has_value()) << p.error().message();
  auto plain = Payload::open(built().plain);
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_EQ(*image_size(*p), *image_size(*plain));
  KlpResolver r;
  auto linked = link_payload(*p, RemoteAddr(0x400000000), r);
  ASSERT_TRUE(linked.has_value()) << linked.error().message();
  std::sort(r.asked.begin(), r.asked.end());
  EXPECT_EQ(r.asked, (std::vector<std::string>{"klp libfoo.so.1 f.cold 3", "klp prog helper 0"}));
  // cold_ptr (an R_X86_64_64 in the libfoo.so.1 section) holds the address.
  const Bytes needle = [] {
    Bytes b(8);
    store_le<u64>(b.data(), 0x7f1234567890);
    return b;
  }();
  EXPECT_NE(std::search(linked->image.begin(), linked->image.end(), needle.begin(), needle.end()),
            linked->image.end());
}

TEST(KlpForm, Refusals) {
  // SHF_RELA_LIVEPATCH on a section with another name.
  {
    test::KlpConvert conv;
    conv.section_name = [](const std::string& o, const std::string& s) { return ".rela.lp." + o + s; };
    const Bytes b = converted(conv);
    const auto h = headers(b);
    EXPECT_EQ(refusal(b), h.elf.describe_section(h.index(".rela.lp.libfoo.so.1.text.fixed_hello")) +
                              ": SHF_RELA_LIVEPATCH (0x100000) is set but the name does not start with '.klp.rela.'");
  }
  // Named .klp.rela. but not SHT_RELA.
  {
    Bytes b = converted();
    const auto h = headers(b);
    const size_t k = h.index(kProgSection);
    store_le<u32>(b.data() + h.at(k) + offsetof(Elf64_Shdr, sh_type), SHT_PROGBITS);
    EXPECT_EQ(refusal(b), h.elf.describe_section(k) +
                              ": sh_type 0x1 is not SHT_RELA (0x4), as a '.klp.rela.' section must be");
  }
  // Two .klp.rela sections with one name (and one target).
  {
    Bytes b = converted();
    const auto h = headers(b);
    const size_t k = h.index(kProgSection);
    size_t other = 0;
    const auto p = parse(b);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    for (const KlpRelaSection& s : p->klp.sections)
      if (s.index != k) other = s.index;
    ASSERT_NE(other, 0u);
    for (auto off : {offsetof(Elf64_Shdr, sh_name), offsetof(Elf64_Shdr, sh_info)})
      store_le<u32>(b.data() + h.at(other) + off, load_le<u32>(b.data() + h.at(k) + off));
    const size_t first = std::min(k, other), second = std::max(k, other);
    EXPECT_EQ(refusal(b), fmt::format("section [index {}] '{}': duplicate section name (also section [index {}] '{}')",
                                      second, kProgSection, first, kProgSection));
  }
  // An ordinary relocation section that would relocate a .klp.rela one.
  {
    Bytes b = converted();
    const auto h = headers(b);
    const size_t rela = h.index(".rela.text.fixed_hello");  // emptied by the conversion
    const size_t k = h.index(kProgSection);
    store_le<u32>(b.data() + h.at(rela) + offsetof(Elf64_Shdr, sh_info), static_cast<u32>(k));
    EXPECT_EQ(refusal(b), h.elf.describe_section(rela) + ": applies to " + h.elf.describe_section(k) +
                              ", a '.klp.rela.' section, which is not loaded");
  }
}

TEST(KlpForm, MalformedPositionsAreRefused) {
  for (const auto& [pos, why] : std::vector<std::pair<std::string, std::string>>{
           {"x", "position 'x' is not a decimal number of 1 to 9 digits"},
           {"", "position '' is not a decimal number of 1 to 9 digits"},
           {"1234567890", "position '1234567890' is not a decimal number of 1 to 9 digits"}}) {
    test::TempDir dir{"hs-klp-pos"};
    std::string src(kSource);
    const std::string from = ".klp.sym.prog.helper,0", to = ".klp.sym.prog.helper," + pos;
    src.replace(src.find(from), from.size(), to);
    const std::string plain = test::build_payload(dir, src, "klp");
    auto b = test::klp_convert(test::read_bytes(plain), test::KlpConvert{.objects = {"prog", "libfoo.so.1"}});
    ASSERT_TRUE(b.has_value()) << b.error().message();
    auto h = headers(*b);
    const auto syms = *h.elf.symbols(*h.elf.symtab_index());
    u32 index = 0;
    for (const ElfSymbol& s : syms)
      if (s.name == to) index = s.index;
    EXPECT_EQ(refusal(*b), fmt::format("{}: symbol [index {}] '{}': SHN_LIVEPATCH symbol's name is not "
                                       "'.klp.sym.<object>.<name>,<pos>': it {}",
                                       h.elf.describe_section(*h.elf.symtab_index()), index, to, why));
  }
}
