// ElfFile on a real payload and real executables, the build-id note helpers,
// and ObjectSymbols' lookup forms on a program compiled by the test.
#include <gtest/gtest.h>

#include <algorithm>

#include "arch/x86_64.h"
#include "elf/symbols.h"
#include "support/files.h"
#include "support/sample_payload.h"

namespace hs {
namespace {

using test::TempDir;

TempDir& scratch() {
  static TempDir dir("hs-elf-test");
  return dir;
}

// ---------------------------------------------------------------------------
// ElfFile

TEST(ElfFile, OpenMissingFile) {
  auto f = ElfFile::open("/nonexistent/x.o");
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().kind(), ErrorKind::Io);
  EXPECT_EQ(f.error().message(), "/nonexistent/x.o: cannot open: No such file or directory");
}

TEST(ElfFile, OpenDirectory) {
  auto f = ElfFile::open(scratch().path());
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().kind(), ErrorKind::Io);
  EXPECT_EQ(f.error().message(), scratch().path() + ": cannot read: Is a directory");
}

TEST(ElfFile, OpenAddsPathToFormatErrors) {
  const std::string p = scratch().file("empty.o");
  test::write_file(p, "");
  auto f = ElfFile::open(p);
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().kind(), ErrorKind::BadPayload);
  EXPECT_EQ(f.error().message(), p + ": file size 0x0 is smaller than an ELF header (0x40)");
}

TEST(ElfFile, ReadsPayload) {
  const std::string lp = test::build_payload(scratch());
  ASSERT_FALSE(lp.empty());
  auto f = ElfFile::open(lp);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ(f->path(), lp);
  EXPECT_TRUE(f->is_relocatable());
  EXPECT_TRUE(f->program_headers().empty());
  EXPECT_EQ(f->sections()[0].sh_type, static_cast<u32>(SHT_NULL));

  const auto funcs = f->find_section(".livepatch.funcs");
  ASSERT_TRUE(funcs.has_value());
  EXPECT_EQ(f->section_name(*funcs), ".livepatch.funcs");
  EXPECT_EQ(f->describe_section(*funcs), fmt::format("section [index {}] '.livepatch.funcs'", *funcs));
  EXPECT_EQ(f->section_data(*funcs).size(), 3 * 104u);
  EXPECT_FALSE(f->find_section(".no.such.section").has_value());
  EXPECT_TRUE(f->section_data(0).empty());

  // Symbols: names resolved, the .symtab preferred.
  const auto symtab = f->symtab_index();
  ASSERT_TRUE(symtab.has_value());
  EXPECT_EQ(f->sections()[*symtab].sh_type, static_cast<u32>(SHT_SYMTAB));
  EXPECT_FALSE(f->dynsym_index().has_value());
  auto syms = f->symbols(*symtab);
  ASSERT_TRUE(syms.has_value());
  auto it = std::find_if(syms->begin(), syms->end(), [](const ElfSymbol& s) { return s.name == "fixed_other"; });
  ASSERT_NE(it, syms->end());
  EXPECT_EQ(it->bind(), STB_GLOBAL);
  EXPECT_EQ(it->type(), STT_FUNC);
  EXPECT_TRUE(it->defined());
  EXPECT_EQ(f->section_name(it->st_shndx), ".text.fixed_other");
  EXPECT_FALSE(f->symbols(*funcs).has_value());

  // Relocations of .livepatch.funcs: name x3, new_addr x2, all R_X86_64_64.
  const auto rela = f->find_section(".rela.livepatch.funcs");
  ASSERT_TRUE(rela.has_value());
  auto relocs = f->relocations(*rela);
  ASSERT_TRUE(relocs.has_value());
  EXPECT_EQ(relocs->size(), 5u);
  for (const Elf64_Rela& r : *relocs) EXPECT_EQ(ELF64_R_TYPE(r.r_info), static_cast<u64>(R_X86_64_64));
  EXPECT_FALSE(f->relocations(*funcs).has_value());

  // Notes.
  const auto dep = f->find_section(".livepatch.depends");
  ASSERT_TRUE(dep.has_value());
  auto notes = f->notes(*dep);
  ASSERT_TRUE(notes.has_value());
  ASSERT_EQ(notes->size(), 1u);
  EXPECT_EQ((*notes)[0].type, static_cast<u32>(NT_GNU_BUILD_ID));
  EXPECT_EQ((*notes)[0].name, "GNU");
  EXPECT_EQ(Bytes((*notes)[0].desc.begin(), (*notes)[0].desc.end()), Bytes(20, test::kDependsFill));

  auto id = f->build_id();
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->size(), 20u);
}

TEST(ElfFile, CopiesShareTheBytes) {
  const std::string lp = test::build_payload(scratch(), test::kPatchSource, "copy");
  auto f = ElfFile::open(lp);
  ASSERT_TRUE(f.has_value());
  std::vector<ElfSymbol> syms = *f->symbols(*f->symtab_index());
  ElfFile moved = std::move(*f);  // views into the bytes stay valid
  ElfFile copy = moved;
  EXPECT_EQ(copy.bytes().data(), moved.bytes().data());
  EXPECT_TRUE(std::any_of(syms.begin(), syms.end(), [](const ElfSymbol& s) { return s.name == "helper_global"; }));
}

// An executable: program headers, build-id from the section and the segment.
TEST(ElfFile, ReadsExecutables) {
  const TempDir& d = scratch();
  test::write_file(d.file("exe.c"), "int main(void) { return 0; }\n");
  ASSERT_TRUE(test::run(fmt::format("gcc -O1 -no-pie -Wl,--build-id=0x0102030405 {} -o {}", d.file("exe.c"),
                                       d.file("exe-nopie"))));
  ASSERT_TRUE(test::run(fmt::format("gcc -O1 -pie -fPIE -Wl,--build-id=0xa1a2a3a4a5a6 {} -o {}", d.file("exe.c"),
                                       d.file("exe-pie"))));
  ASSERT_TRUE(test::run(fmt::format("strip -o {} {}", d.file("exe-pie-stripped"), d.file("exe-pie"))));

  auto nopie = ElfFile::open(d.file("exe-nopie"));
  ASSERT_TRUE(nopie.has_value()) << nopie.error().message();
  EXPECT_EQ(nopie->header().e_type, ET_EXEC);
  EXPECT_FALSE(nopie->is_relocatable());
  EXPECT_FALSE(nopie->program_headers().empty());
  EXPECT_EQ(nopie->first_load_vaddr(), 0x400000u);
  EXPECT_EQ(Bytes(nopie->build_id()->begin(), nopie->build_id()->end()), (Bytes{1, 2, 3, 4, 5}));

  auto pie = ElfFile::open(d.file("exe-pie"));
  ASSERT_TRUE(pie.has_value()) << pie.error().message();
  EXPECT_EQ(pie->header().e_type, ET_DYN);
  EXPECT_EQ(pie->first_load_vaddr(), 0u);
  EXPECT_EQ(to_hex(*pie->build_id()), "a1a2a3a4a5a6");
  EXPECT_TRUE(pie->dynsym_index().has_value());
  EXPECT_EQ(pie->sections()[*pie->symtab_index()].sh_type, static_cast<u32>(SHT_SYMTAB));

  auto stripped = ElfFile::open(d.file("exe-pie-stripped"));
  ASSERT_TRUE(stripped.has_value()) << stripped.error().message();
  EXPECT_EQ(to_hex(*stripped->build_id()), "a1a2a3a4a5a6");
  EXPECT_EQ(stripped->symtab_index(), stripped->dynsym_index());

  // Without a section header table (sstrip): the build-id comes from PT_NOTE.
  Bytes b = test::read_bytes(d.file("exe-pie"));
  store_le<u64>(b.data() + offsetof(Elf64_Ehdr, e_shoff), 0);
  store_le<u16>(b.data() + offsetof(Elf64_Ehdr, e_shnum), 0);
  store_le<u16>(b.data() + offsetof(Elf64_Ehdr, e_shstrndx), 0);
  auto noshdr = ElfFile::create(b);
  ASSERT_TRUE(noshdr.has_value()) << noshdr.error().message();
  EXPECT_TRUE(noshdr->sections().empty());
  EXPECT_EQ(to_hex(*noshdr->build_id()), "a1a2a3a4a5a6");
}

TEST(ElfFile, ExecutableMalformedProgramHeaders) {
  const TempDir& d = scratch();
  test::write_file(d.file("ph.c"), "int main(void) { return 0; }\n");
  ASSERT_TRUE(test::run(fmt::format("gcc -O1 {} -o {}", d.file("ph.c"), d.file("ph"))));
  const Bytes good = test::read_bytes(d.file("ph"));
  auto ok = ElfFile::create(good);
  ASSERT_TRUE(ok.has_value());
  const u16 phnum = ok->header().e_phnum;
  {
    Bytes b = good;
    store_le<u16>(b.data() + offsetof(Elf64_Ehdr, e_phentsize), 0x20);
    auto f = ElfFile::create(b);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().message(), "e_phentsize 0x20 is not sizeof(Elf64_Phdr) (0x38)");
  }
  {
    Bytes b = good;
    store_le<u64>(b.data() + offsetof(Elf64_Ehdr, e_phoff), b.size() - 8);
    auto f = ElfFile::create(b);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().message(),
              fmt::format("program header table: e_phoff 0x{:x} + 0x{:x} (e_phnum 0x{:x} * 0x38) is past the end of "
                          "the file (0x{:x})",
                          b.size() - 8, phnum * 0x38u, phnum, b.size()));
  }
  {
    Bytes b = good;
    store_le<u16>(b.data() + offsetof(Elf64_Ehdr, e_phnum), PN_XNUM);
    auto f = ElfFile::create(b);
    ASSERT_FALSE(f.has_value());
    EXPECT_EQ(f.error().message(), "e_phnum PN_XNUM (extended numbering) is not supported");
  }
}

// ---------------------------------------------------------------------------
// Build-id notes

TEST(BuildIdNote, RoundTrip) {
  const Bytes id = {0xde, 0xad, 0xbe};
  const Bytes note = make_build_id_note(id);
  EXPECT_EQ(note.size(), 12u + 4u + 4u);  // header, "GNU\0", 3 bytes padded to 4
  EXPECT_EQ(load_le<u32>(note.data()), 4u);
  EXPECT_EQ(load_le<u32>(note.data() + 4), 3u);
  EXPECT_EQ(load_le<u32>(note.data() + 8), static_cast<u32>(NT_GNU_BUILD_ID));
  auto back = parse_build_id_note(note, "x");
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, id);

  const Bytes sha1(20, 0x5a);
  auto back20 = parse_build_id_note(make_build_id_note(sha1), "x");
  ASSERT_TRUE(back20.has_value());
  EXPECT_EQ(*back20, sha1);
}

TEST(BuildIdNote, Malformed) {
  const std::string what = "section [index 2] '.livepatch.depends'";
  auto msg = [&](ByteView b) {
    auto r = parse_build_id_note(b, what);
    EXPECT_FALSE(r.has_value());
    if (r) return std::string("(accepted)");
    EXPECT_EQ(r.error().kind(), ErrorKind::BadPayload);
    return r.error().message();
  };
  const Bytes good = make_build_id_note(Bytes(20, 1));
  EXPECT_EQ(msg(Bytes{}), what + ": no note, expected a GNU build-id note");
  Bytes two = good;
  two.insert(two.end(), good.begin(), good.end());
  EXPECT_EQ(msg(two), what + ": 0x2 notes, expected exactly one GNU build-id note");
  Bytes type = good;
  store_le<u32>(type.data() + 8, 1);
  EXPECT_EQ(msg(type), what + ": note type 0x1 is not NT_GNU_BUILD_ID (0x3)");
  Bytes name = good;
  name[12] = 'X';
  EXPECT_EQ(msg(name), what + ": note name 'XNU' is not 'GNU'");
  EXPECT_EQ(msg(make_build_id_note(Bytes{})), what + ": build-id length 0x0 is not in [0x1, 0x40]");
  EXPECT_EQ(msg(make_build_id_note(Bytes(65, 1))), what + ": build-id length 0x41 is not in [0x1, 0x40]");
  EXPECT_EQ(msg(ByteView(good).first(10)),
            what + ": note at offset 0x0: 0xa bytes left, too few for a note header (0xc)");
  Bytes namesz = good;
  store_le<u32>(namesz.data(), 0xffffffff);
  EXPECT_EQ(msg(namesz), what + ": note at offset 0x0: namesz 0xffffffff is past the end of the section (0x24)");
  Bytes descsz = good;
  store_le<u32>(descsz.data() + 4, 0xfffffffc);
  EXPECT_EQ(msg(descsz), what + ": note at offset 0x0: descsz 0xfffffffc is past the end of the section (0x24)");
  Bytes unterminated = good;
  unterminated[15] = 'X';
  EXPECT_EQ(msg(unterminated), what + ": note at offset 0x0: name is not NUL-terminated");
}

// ---------------------------------------------------------------------------
// Helpers

TEST(ElfHelpers, RelocationTypes) {
  EXPECT_EQ(hs::x86_64::reloc_display_name(R_X86_64_64), "R_X86_64_64");
  EXPECT_EQ(hs::x86_64::reloc_display_name(R_X86_64_PLT32), "R_X86_64_PLT32");
  EXPECT_EQ(hs::x86_64::reloc_display_name(R_X86_64_REX_GOTPCRELX), "R_X86_64_REX_GOTPCRELX");
  EXPECT_EQ(hs::x86_64::reloc_display_name(R_X86_64_RELATIVE64), "R_X86_64_RELATIVE64");
  EXPECT_EQ(hs::x86_64::reloc_display_name(39), "unknown type 0x27");
  EXPECT_EQ(hs::x86_64::reloc_display_name(0x1234), "unknown type 0x1234");
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_64), 8u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_PC32), 4u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_GOTPCRELX), 4u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_16), 2u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_TLSDESC), 16u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(R_X86_64_NONE), 0u);
  EXPECT_EQ(hs::x86_64::reloc_field_size(0x1234), 1u);
}

TEST(ElfHelpers, Printable) {
  EXPECT_EQ(ElfFile::printable("hello,2"), "hello,2");
  EXPECT_EQ(ElfFile::printable(std::string_view("a\nb\x1b[0m\\\xff", 9)), "a\\x0ab\\x1b[0m\\x5c\\xff");
}

// ---------------------------------------------------------------------------
// ObjectSymbols on a real program: a global, two statics named `name` in
// a.c and b.c, a versioned library, a stripped copy, a separate debug file.

struct Program {
  std::string exe, stripped, lib, lib_stripped, debug_root;
  std::string stripped_linked;  // stripped, with a .gnu_debuglink naming prog.debug (beside it)
  std::string linked_alone;     // the same in a directory without prog.debug
};

void run_or_fail(const std::string& cmd) { test::run(cmd); }

const Program& program() {
  static const Program p = [] {
    Program r;
    const TempDir& d = scratch();
    test::write_file(d.file("a.c"),
                        "__attribute__((noinline, used)) static int name(void) { return 1; }\n"
                        "int call_a(void) { return name(); }\n");
    test::write_file(d.file("b.c"),
                        "__attribute__((noinline, used)) static int name(void) { return 2; }\n"
                        "int call_b(void) { return name(); }\n"
                        "int global_fn(int x) { return x + 40; }\n"
                        "int global_var = 7;\n"
                        "__thread int tls_var = 3;\n");
    test::write_file(d.file("main.c"),
                        "int call_a(void); int call_b(void); int global_fn(int);\n"
                        "int main(void) { return call_a() + call_b() + global_fn(0); }\n");
    r.exe = d.file("prog");
    r.stripped = d.file("prog-stripped");
    run_or_fail(fmt::format("gcc -O1 -fPIE -pie -rdynamic -Wl,--build-id=0xc0ffee0123456789 {} {} {} -o {}",
                            d.file("main.c"), d.file("a.c"), d.file("b.c"), r.exe));
    run_or_fail(fmt::format("strip -o {} {}", r.stripped, r.exe));
    // The separate debug file, where a distribution would install it.
    r.debug_root = d.file("debug");
    run_or_fail(fmt::format("mkdir -p {0}/.build-id/c0 && objcopy --only-keep-debug {1} {0}/.build-id/c0/ffee0123456789.debug",
                            r.debug_root, r.exe));
    // A stripped copy that names its debug file the other way distributions
    // do: .gnu_debuglink (objcopy needs the file to compute its CRC).
    r.stripped_linked = d.file("prog-linked");
    run_or_fail(fmt::format("cd {0} && objcopy --only-keep-debug prog prog.debug && strip -o prog-linked prog && "
                            "objcopy --add-gnu-debuglink=prog.debug prog-linked && "
                            "mkdir alone && cp prog-linked alone/",
                            d.path()));
    r.linked_alone = d.file("alone/prog-linked");

    // A library with two versions of vfn: vfn@V1 (old) and vfn@@V2 (default).
    test::write_file(d.file("lib.c"),
                        "int vfn_old(void) { return 1; }\n"
                        "int vfn_new(void) { return 2; }\n"
                        "__asm__(\".symver vfn_old,vfn@V1\");\n"
                        "__asm__(\".symver vfn_new,vfn@@V2\");\n");
    test::write_file(d.file("lib.map"), "V1 { global: vfn; local: *; };\nV2 { global: vfn; } V1;\n");
    r.lib = d.file("libv.so");
    r.lib_stripped = d.file("libv-stripped.so");
    run_or_fail(fmt::format("gcc -O1 -fPIC -shared -Wl,--version-script={} {} -o {}", d.file("lib.map"),
                            d.file("lib.c"), r.lib));
    run_or_fail(fmt::format("strip -o {} {}", r.lib_stripped, r.lib));
    return r;
  }();
  return p;
}

std::shared_ptr<ObjectSymbols> load(const std::string& path, u64 bias, const std::string& debug_root = "/nonexistent") {
  auto elf = ElfFile::open(path);
  EXPECT_TRUE(elf.has_value()) << elf.error().message();
  if (!elf) return nullptr;
  auto syms = ObjectSymbols::load(*elf, bias, debug_root);
  EXPECT_TRUE(syms.has_value()) << syms.error().message();
  return syms ? *syms : nullptr;
}

// st_value of a symbol in the .symtab, found independently of ObjectSymbols.
u64 symtab_value(const std::string& path, std::string_view name, std::string_view file = {}) {
  auto elf = ElfFile::open(path);
  EXPECT_TRUE(elf.has_value());
  std::string_view current_file;
  auto syms = elf->symbols(*elf->symtab_index());
  if (!syms) return 0;
  for (const ElfSymbol& s : *syms) {
    if (s.type() == STT_FILE) current_file = s.name;
    if (s.name == name && s.defined() && (file.empty() || current_file == file)) return s.st_value;
  }
  ADD_FAILURE() << "no symbol " << name;
  return 0;
}

constexpr u64 kBias = 0x7f0000000000;

TEST(ObjectSymbols, GlobalsWithBias) {
  const Program& p = program();
  auto syms = load(p.exe, kBias);
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->path(), p.exe);
  EXPECT_EQ(syms->source(), "symtab");
  auto g = syms->lookup("global_fn");
  ASSERT_TRUE(g.has_value()) << g.error().message();
  EXPECT_EQ(g->addr.value(), kBias + symtab_value(p.exe, "global_fn"));
  EXPECT_GT(g->size, 0u);
  EXPECT_EQ(g->object, p.exe);
  EXPECT_EQ(g->type, STT_FUNC);
  auto v = syms->lookup("global_var");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->addr.value(), kBias + symtab_value(p.exe, "global_var"));
  EXPECT_EQ(v->type, STT_OBJECT);
  // TLS: the offset in the object's TLS block, no bias.
  auto t = syms->lookup("tls_var");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->type, STT_TLS);
  EXPECT_EQ(t->addr.value(), symtab_value(p.exe, "tls_var"));

  auto lg = syms->lookup_global("global_fn");
  ASSERT_TRUE(lg.has_value());
  EXPECT_EQ(lg->addr, g->addr);
  EXPECT_FALSE(syms->lookup_global("name").has_value());  // locals only
  EXPECT_FALSE(syms->lookup_global("no_such_symbol").has_value());
}

TEST(ObjectSymbols, SameNamedStatics) {
  const Program& p = program();
  auto syms = load(p.exe, kBias);
  ASSERT_NE(syms, nullptr);
  const u64 a = kBias + symtab_value(p.exe, "name", "a.c");
  const u64 b = kBias + symtab_value(p.exe, "name", "b.c");
  ASSERT_NE(a, b);

  auto amb = syms->lookup("name");
  ASSERT_FALSE(amb.has_value());
  EXPECT_EQ(amb.error().kind(), ErrorKind::Ambiguous);  // a BadTarget the resolver does not look past
  EXPECT_EQ(amb.error().message(), fmt::format("ambiguous symbol 'name' in {}: 2 local definitions (a.c, b.c), use "
                                               "'name,N' or 'file.c#name'",
                                               p.exe));

  EXPECT_EQ(syms->lookup("name,1")->addr.value(), a);  // a.c is linked first
  EXPECT_EQ(syms->lookup("name,2")->addr.value(), b);
  EXPECT_EQ(syms->lookup("a.c#name")->addr.value(), a);
  EXPECT_EQ(syms->lookup("b.c#name")->addr.value(), b);
  EXPECT_EQ(syms->lookup("/some/dir/b.c#name")->addr.value(), b);  // basename match
  EXPECT_EQ(syms->lookup(".klp.sym.prog.name,2")->addr.value(), b);
  EXPECT_EQ(syms->lookup(".klp.sym.libfoo.so.1.name,1")->addr.value(), a);  // OBJ with dots
  EXPECT_EQ(syms->lookup(".klp.sym.prog.global_fn,0")->addr.value(), kBias + symtab_value(p.exe, "global_fn"));
  EXPECT_EQ(syms->lookup("global_fn,1")->addr.value(), kBias + symtab_value(p.exe, "global_fn"));

  auto err = [&](std::string_view n, ErrorKind kind = ErrorKind::BadTarget) {
    auto r = syms->lookup(n);
    EXPECT_FALSE(r.has_value()) << n;
    if (r) return std::string("(found)");
    EXPECT_EQ(r.error().kind(), kind) << n;
    return r.error().message();
  };
  EXPECT_EQ(err("name,3"), fmt::format("symbol 'name,3' not found in {}: 'name' has only 2 definitions", p.exe));
  EXPECT_EQ(err("global_fn,2"),
            fmt::format("symbol 'global_fn,2' not found in {}: 'global_fn' has only 1 definition", p.exe));
  EXPECT_EQ(err("name,x"), "invalid symbol position 'x' in 'name,x' (expected a decimal number)");
  EXPECT_EQ(err("c.c#name"), fmt::format("symbol 'c.c#name' not found in {}: no STT_FILE symbol 'c.c'", p.exe));
  EXPECT_EQ(err("a.c#global_fn"),
            fmt::format("symbol 'a.c#global_fn' not found in {}: no local 'global_fn' in 'a.c'", p.exe));
  EXPECT_EQ(err("#name"), "invalid symbol '#name': expected 'file.c#name'");
  EXPECT_EQ(err("no_such_symbol"), fmt::format("symbol 'no_such_symbol' not found in {}", p.exe));
  EXPECT_EQ(err(".klp.sym.prog.name,0", ErrorKind::Ambiguous),
            fmt::format("ambiguous symbol '.klp.sym.prog.name,0' in {}: 2 definitions (a.c, b.c), use 'name,N' or "
                        "'file.c#name'",
                        p.exe));
  EXPECT_EQ(err(".klp.sym.prog.nothere,1"), fmt::format("symbol '.klp.sym.prog.nothere,1' not found in {}", p.exe));
  EXPECT_EQ(err(".klp.sym.prog"), "invalid symbol '.klp.sym.prog': expected '.klp.sym.OBJ.name,N'");
  EXPECT_EQ(err("bad\nname"), fmt::format("symbol 'bad\\x0aname' not found in {}", p.exe));
}

TEST(ObjectSymbols, Symbolize) {
  const Program& p = program();
  auto syms = load(p.exe, kBias);
  ASSERT_NE(syms, nullptr);
  const u64 g = kBias + symtab_value(p.exe, "global_fn");
  auto s = syms->symbolize(RemoteAddr(g + 1));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->first, "global_fn");
  EXPECT_EQ(s->second.addr.value(), g);
  auto s2 = syms->symbolize(RemoteAddr(kBias + symtab_value(p.exe, "name", "b.c")));
  ASSERT_TRUE(s2.has_value());
  EXPECT_EQ(s2->first, "name");
  EXPECT_FALSE(syms->symbolize(RemoteAddr(1)).has_value());
  EXPECT_FALSE(syms->symbolize(RemoteAddr(kBias + symtab_value(p.exe, "global_var"))).has_value());  // data
}

TEST(ObjectSymbols, StrippedFallsBackToDynsym) {
  const Program& p = program();
  auto syms = load(p.stripped, kBias);
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "dynsym");
  auto g = syms->lookup("global_fn");
  ASSERT_TRUE(g.has_value()) << g.error().message();
  EXPECT_EQ(g->addr.value(), kBias + symtab_value(p.exe, "global_fn"));
  auto n = syms->lookup("name");
  ASSERT_FALSE(n.has_value());
  // The message says the object is stripped and where its debug file was
  // looked for (issue 10: symbols of real binaries).
  EXPECT_EQ(n.error().message(),
            fmt::format("symbol 'name' not found in {} (stripped: no .symtab, and no debug file: by build-id at "
                        "/nonexistent/.build-id/c0/ffee0123456789.debug (absent))",
                        p.stripped));
  // An object with .symtab says nothing of the kind.
  auto full = load(p.exe, kBias);
  ASSERT_NE(full, nullptr);
  auto missing = full->lookup("no_such_function");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message(), fmt::format("symbol 'no_such_function' not found in {}", p.exe));
}

TEST(ObjectSymbols, StrippedWithADebuglinkNamesIt) {
  const Program& p = program();
  auto syms = load(p.linked_alone, kBias);
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "dynsym");
  auto n = syms->lookup("a.c#name");
  ASSERT_FALSE(n.has_value());
  const std::string dir = p.linked_alone.substr(0, p.linked_alone.rfind('/'));
  EXPECT_EQ(n.error().message(),
            fmt::format("symbol 'a.c#name' not found in {0} (stripped: no .symtab, and no debug file: by build-id "
                        "at /nonexistent/.build-id/c0/ffee0123456789.debug (absent); by its .gnu_debuglink "
                        "'prog.debug' at {1}/prog.debug (absent), {1}/.debug/prog.debug (absent), "
                        "/nonexistent{1}/prog.debug (absent)): no STT_FILE symbol 'a.c'",
                        p.linked_alone, dir));
}

TEST(ObjectSymbols, StrippedFindsTheDebuglinkFileBesideIt) {
  const Program& p = program();
  auto syms = load(p.stripped_linked, kBias);
  ASSERT_NE(syms, nullptr);
  const std::string dir = p.stripped_linked.substr(0, p.stripped_linked.rfind('/'));
  EXPECT_EQ(syms->source(), "debug file " + dir + "/prog.debug");
  auto a = syms->lookup("a.c#name");
  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(a->addr.value(), kBias + symtab_value(p.exe, "name", "a.c"));
}

TEST(ObjectSymbols, StrippedUsesDebugFileByBuildId) {
  const Program& p = program();
  auto syms = load(p.stripped, kBias, p.debug_root);
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "debug file " + p.debug_root + "/.build-id/c0/ffee0123456789.debug");
  EXPECT_EQ(syms->path(), p.stripped);
  auto b = syms->lookup("b.c#name");
  ASSERT_TRUE(b.has_value()) << b.error().message();
  EXPECT_EQ(b->addr.value(), kBias + symtab_value(p.exe, "name", "b.c"));
  EXPECT_EQ(b->object, p.stripped);
}

TEST(ObjectSymbols, SymbolVersions) {
  const Program& p = program();
  for (const std::string& path : {p.lib, p.lib_stripped}) {
    SCOPED_TRACE(path);
    auto syms = load(path, 0x1000);
    ASSERT_NE(syms, nullptr);
    // The default version vfn@@V2 is vfn_new; vfn@V1 is not found as "vfn".
    auto v = syms->lookup_global("vfn");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->addr.value(), 0x1000 + symtab_value(p.lib, "vfn_new"));
    auto l = syms->lookup("vfn");
    ASSERT_TRUE(l.has_value()) << l.error().message();
    EXPECT_EQ(l->addr, v->addr);
  }
  auto full = load(p.lib, 0);
  ASSERT_NE(full, nullptr);
  auto old = full->lookup("vfn@V1");  // the .symtab spells the old version out
  ASSERT_TRUE(old.has_value()) << old.error().message();
  EXPECT_EQ(old->addr.value(), symtab_value(p.lib, "vfn_old"));
}

TEST(ObjectSymbols, ObjectWithoutSymbols) {
  // An ET_REL with no symbol table at all: every lookup fails cleanly.
  const TempDir& d = scratch();
  test::write_file(d.file("nosym.s"), ".section .note.GNU-stack,\"\",@progbits\n");
  ASSERT_TRUE(test::run(fmt::format("gcc -c {} -o {} && strip --strip-all {}", d.file("nosym.s"),
                                       d.file("nosym.o"), d.file("nosym.o"))));
  auto syms = load(d.file("nosym.o"), 0);
  ASSERT_NE(syms, nullptr);
  EXPECT_EQ(syms->source(), "none");
  EXPECT_FALSE(syms->lookup("x").has_value());
  EXPECT_FALSE(syms->symbolize(RemoteAddr(0x1000)).has_value());
}

}  // namespace
}  // namespace hs
