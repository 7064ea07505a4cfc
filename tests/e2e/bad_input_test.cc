// Bad input through the real CLI: every case gets exactly one error line
// naming what is wrong, exit code 1 (2 for retry-able ones), and leaves the
// target exactly as it was: same behaviour, no payload mapping, no payload in
// its registry. Malformed payloads are made by mutating a real payload built
// by `hotsplice build`; offsets come from reading it with hotsplice's reader.
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>

#include "elf/elf_file.h"
#include "harness.h"
#include "support/bytes.h"
#include "support/files.h"
#include "support/payload_layout.h"

using namespace hs;
using namespace hs::e2e;

namespace {

using Layout = test::PayloadLayout;
using test::put;

// Renames section `from` to `to` (same length) in the section name table.
void rename_section(const Layout& l, Bytes& b, std::string_view from, std::string_view to) {
  ASSERT_EQ(from.size(), to.size());
  const auto& strtab = l.sh[l.eh.e_shstrndx];
  std::memcpy(b.data() + strtab.sh_offset + l.section(std::string(from)).sh_name, to.data(), to.size());
}

struct Case {
  std::string name;
  std::function<void(const Layout&, Bytes&)> mutate;
  std::string message;  // after "hotsplice: error: <file>: "
};

class BadPayload : public testing::Test {
 protected:
  static void SetUpTestSuite() { good_ = build("hello_v2.c", target_bin("hello"), "bad_base.lp"); }
  static std::string good_;
};
std::string BadPayload::good_;

// Runs one case: upload of the mutated payload is refused with `message`,
// and the target is untouched.
void expect_refused(const std::string& file, const std::string& message) {
  Target t(target_bin("hello"));
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
  std::string maps_before = t.maps();
  HsRun r = hotsplice({"upload", std::to_string(t.pid()), "bad", file});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err, "hotsplice: error: " + file + ": " + message + "\n");
  EXPECT_EQ(t.maps().find("hotsplice:bad"), std::string::npos) << "a payload mapping was left behind";
  HsRun l = hotsplice({"list", std::to_string(t.pid())});
  EXPECT_EQ(l.code, 0);
  EXPECT_NE(l.out.find(": 0 payloads"), std::string::npos) << l.out;
  EXPECT_EQ(t.ask("call"), "hello=1 count=2");
  EXPECT_TRUE(t.alive());
}

}  // namespace

TEST_F(BadPayload, Table) {
  Layout L(good_);
  ASSERT_FALSE(L.sh.empty());
  const size_t funcs = L.index(".livepatch.funcs");
  const u64 funcs_off = L.sh[funcs].sh_offset;
  const size_t symtab = L.index(".symtab");
  const Elf64_Shdr& rela_funcs = L.section(".rela.livepatch.funcs");
  const Elf64_Shdr& rela_text = L.section(".rela.text.hello_v2");
  const u64 size = L.bytes.size();

  std::vector<Case> cases = {
      {"empty file", [](const Layout&, Bytes& b) { b.clear(); },
       "file size 0x0 is smaller than an ELF header (0x40)"},
      {"truncated header", [](const Layout&, Bytes& b) { b.resize(0x20); },
       "file size 0x20 is smaller than an ELF header (0x40)"},
      {"bad magic", [](const Layout&, Bytes& b) { b[1] = 'X'; },
       "not an ELF file: magic 0x7f584c46 is not 0x7f454c46"},
      {"32-bit class", [](const Layout&, Bytes& b) { b[EI_CLASS] = ELFCLASS32; },
       "e_ident[EI_CLASS] 0x1 is not ELFCLASS64 (0x2)"},
      {"big endian", [](const Layout&, Bytes& b) { b[EI_DATA] = ELFDATA2MSB; },
       "e_ident[EI_DATA] 0x2 is not ELFDATA2LSB (0x1)"},
      {"wrong machine", [](const Layout&, Bytes& b) { put<u16>(b, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64); },
       "e_machine 0xb7 is not EM_X86_64 (0x3e)"},
      {"executable, not relocatable", [](const Layout&, Bytes& b) { put<u16>(b, offsetof(Elf64_Ehdr, e_type), ET_EXEC); },
       "e_type 0x2 is not ET_REL (0x1): a payload must be a relocatable object"},
      {"program headers present",
       [](const Layout&, Bytes& b) {
         put<u16>(b, offsetof(Elf64_Ehdr, e_phnum), 1);
         put<u16>(b, offsetof(Elf64_Ehdr, e_phentsize), sizeof(Elf64_Phdr));
       },
       "program headers present in a relocatable file: e_phnum 0x1, expected 0x0"},
      {"section header size", [](const Layout&, Bytes& b) { put<u16>(b, offsetof(Elf64_Ehdr, e_shentsize), 0x38); },
       "e_shentsize 0x38 is not sizeof(Elf64_Shdr) (0x40)"},
      {"truncated file (section table cut off)", [](const Layout&, Bytes& b) { b.resize(b.size() - 0x40); },
       fmt::format("section header table: e_shoff {:#x} + {:#x} (e_shnum {:#x} * 0x40) is past the end of the file ({:#x})",
                   L.eh.e_shoff, L.eh.e_shnum * 0x40, L.eh.e_shnum, size - 0x40)},
      {"shstrndx out of range", [](const Layout& l, Bytes& b) { put<u16>(b, offsetof(Elf64_Ehdr, e_shstrndx), l.eh.e_shnum + 3); },
       fmt::format("e_shstrndx {:#x} is not a valid section index (e_shnum {:#x})", L.eh.e_shnum + 3, L.eh.e_shnum)},
      {"section data out of bounds",
       [&](const Layout& l, Bytes& b) { put<u64>(b, l.shdr_offset(funcs) + offsetof(Elf64_Shdr, sh_offset), size - 8); },
       fmt::format("section [index {}] '.livepatch.funcs': sh_offset {:#x} + sh_size {:#x} is past the end of the file ({:#x})",
                   funcs, size - 8, L.sh[funcs].sh_size, size)},
      {"section offset overflows",
       [&](const Layout& l, Bytes& b) { put<u64>(b, l.shdr_offset(funcs) + offsetof(Elf64_Shdr, sh_offset), ~u64{0} - 4); },
       fmt::format("section [index {}] '.livepatch.funcs': sh_offset {:#x} + sh_size {:#x} is past the end of the file ({:#x})",
                   funcs, ~u64{0} - 4, L.sh[funcs].sh_size, size)},
      {"unterminated string table",
       [&](const Layout& l, Bytes& b) {
         const auto& st = l.section(".strtab");
         b[st.sh_offset + st.sh_size - 1] = 'x';
       },
       fmt::format("section [index {}] '.strtab': string table does not end with a NUL byte", L.index(".strtab"))},
      {"symbol name out of bounds",
       [&](const Layout& l, Bytes& b) {
         put<u32>(b, l.sh[symtab].sh_offset + 1 * sizeof(Elf64_Sym) + offsetof(Elf64_Sym, st_name), 0x7fffff);
       },
       fmt::format("section [index {}] '.symtab': symbol [index 1]: st_name 0x7fffff is past the end of section [index {}] '.strtab' ({:#x})",
                   symtab, L.index(".strtab"), L.section(".strtab").sh_size)},
      {"common symbol",
       [&](const Layout& l, Bytes& b) {
         size_t n = l.sh[symtab].sh_size / sizeof(Elf64_Sym);
         put<u16>(b, l.sh[symtab].sh_offset + (n - 1) * sizeof(Elf64_Sym) + offsetof(Elf64_Sym, st_shndx), SHN_COMMON);
       },
       ""},  // message names the last symbol; filled in below
      {"relocation symbol index out of range",
       [&](const Layout&, Bytes& b) {
         put<u64>(b, rela_funcs.sh_offset + offsetof(Elf64_Rela, r_info), ELF64_R_INFO(0x4444, R_X86_64_64));
       },
       ""},
      {"relocation offset out of bounds",
       [&](const Layout&, Bytes& b) { put<u64>(b, rela_funcs.sh_offset + offsetof(Elf64_Rela, r_offset), 0x1000); },
       ""},
      {"missing .livepatch.depends", [](const Layout& l, Bytes& b) { rename_section(l, b, ".livepatch.depends", ".livepatch.xepends"); },
       "missing section '.livepatch.depends'"},
      {"missing .livepatch.object_depends",
       [](const Layout& l, Bytes& b) { rename_section(l, b, ".livepatch.object_depends", ".livepatch.object_xepends"); },
       "missing section '.livepatch.object_depends'"},
      {"missing build-id", [](const Layout& l, Bytes& b) { rename_section(l, b, ".note.gnu.build-id", ".note.gnu.build-ix"); },
       "missing section '.note.gnu.build-id' (link the payload with --build-id)"},
      {"missing .livepatch.funcs", [](const Layout& l, Bytes& b) { rename_section(l, b, ".livepatch.funcs", ".livepatch.funcx"); },
       "missing section '.livepatch.funcs' (and no hooks)"},
      {"depends note of the wrong type",
       [](const Layout& l, Bytes& b) { put<u32>(b, l.section(".livepatch.depends").sh_offset + 8, 1); },
       fmt::format("section [index {}] '.livepatch.depends': note type 0x1 is not NT_GNU_BUILD_ID (0x3)", L.index(".livepatch.depends"))},
      {"depends note with the wrong name",
       [](const Layout& l, Bytes& b) { b[l.section(".livepatch.depends").sh_offset + 12] = 'X'; },
       fmt::format("section [index {}] '.livepatch.depends': note name 'XNU' is not 'GNU'", L.index(".livepatch.depends"))},
      {"depends note size past its section",
       [](const Layout& l, Bytes& b) { put<u32>(b, l.section(".livepatch.depends").sh_offset + 4, 0x400); },
       ""},
      {"funcs size not a multiple of 104",
       [&](const Layout& l, Bytes& b) { put<u64>(b, l.shdr_offset(funcs) + offsetof(Elf64_Shdr, sh_size), 112); },
       fmt::format("section [index {}] '.livepatch.funcs': sh_size 0x70 is not a multiple of 104 (sizeof(struct livepatch_func))", funcs)},
      {"version is not 2", [&](const Layout&, Bytes& b) { b[funcs_off + 32] = 1; },
       std::string("function [index 0] 'hello': version 0x1 is not 0x2")},
      {"padding not zero", [&](const Layout&, Bytes& b) { b[funcs_off + 40] = 7; },
       std::string("function [index 0] 'hello': _pad[7] is 0x7, expected 0x0")},
      {"old_size is 0", [&](const Layout&, Bytes& b) { put<u32>(b, funcs_off + 28, 0); },
       std::string("function [index 0] 'hello': old_size is 0")},
      {"function too short for a jump", [&](const Layout&, Bytes& b) { put<u32>(b, funcs_off + 28, 3); },
       std::string("function [index 0] 'hello': old_size 0x3 is less than 0x5 (the size of a jmp rel32)")},
      {"expectation with reserved bits", [&](const Layout&, Bytes& b) { b[funcs_off + 72] = 0x1 | (2 << 1) | 0x40; },
       std::string("function [index 0] 'hello': expect.rsv 0x1 is not 0x0")},
      {"expectation of length 0", [&](const Layout&, Bytes& b) { b[funcs_off + 72] = 0x1; },
       std::string("function [index 0] 'hello': expect.len 0x0 is not in [0x1, 0x1f]")},
      {"unknown relocation type",
       [&](const Layout&, Bytes& b) {
         u64 info = load_le<u64>(b.data() + rela_text.sh_offset + offsetof(Elf64_Rela, r_info));
         put<u64>(b, rela_text.sh_offset + offsetof(Elf64_Rela, r_info), ELF64_R_INFO(ELF64_R_SYM(info), 0x99));
       },
       ""},
      {"unknown function name",
       [&](const Layout& l, Bytes& b) {
         // The function's name string "hello" becomes "hellp".
         const auto& ro = l.section(".rodata.str1.1");
         std::string_view text(reinterpret_cast<const char*>(b.data() + ro.sh_offset), ro.sh_size);
         size_t at = text.find(std::string_view("hello\0", 6));
         ASSERT_NE(at, std::string_view::npos);
         b[ro.sh_offset + at + 4] = 'p';
       },
       ""},
      {"symbol name with a control character",
       [&](const Layout& l, Bytes& b) {
         const auto& st = l.section(".strtab");
         std::string_view text(reinterpret_cast<const char*>(b.data() + st.sh_offset), st.sh_size);
         size_t at = text.find(std::string_view("hello_sink\0", 11));
         ASSERT_NE(at, std::string_view::npos);
         b[st.sh_offset + at] = '\n';
       },
       ""},
  };

  // Messages that name things only the reader knows (symbol names, relocation
  // details) are taken from the payload itself here, so the table stays exact.
  {
    Bytes b = L.bytes;
    size_t n = L.sh[symtab].sh_size / sizeof(Elf64_Sym);
    auto elf = ElfFile::create(L.bytes);
    auto syms = elf->symbols(symtab);
    ASSERT_TRUE(syms.has_value());
    cases[15].message = fmt::format(
        "section [index {}] '.symtab': symbol [index {}] '{}': st_shndx SHN_COMMON is not supported (compile with -fno-common)",
        symtab, n - 1, (*syms)[n - 1].name);
    size_t nsyms = n;
    cases[16].message = fmt::format(
        "section [index {}] '.rela.livepatch.funcs': relocation [index 0]: symbol index 0x4444 is not less than the number of symbols in section [index {}] '.symtab' ({:#x})",
        L.index(".rela.livepatch.funcs"), symtab, nsyms);
    cases[17].message = fmt::format(
        "section [index {}] '.rela.livepatch.funcs': relocation [index 0]: r_offset 0x1000 + 0x8 (R_X86_64_64) is past the end of section [index {}] '.livepatch.funcs' ({:#x})",
        L.index(".rela.livepatch.funcs"), funcs, L.sh[funcs].sh_size);
    cases[24].message = fmt::format(
        "section [index {}] '.livepatch.depends': note at offset 0x0: descsz 0x400 is past the end of the section ({:#x})",
        L.index(".livepatch.depends"), L.section(".livepatch.depends").sh_size);
    u64 r0 = load_le<u64>(L.bytes.data() + rela_text.sh_offset + offsetof(Elf64_Rela, r_offset));
    cases[32].message = fmt::format(
        "section [index {}] '.rela.text.hello_v2': unsupported relocation type 0x99 at offset {:#x} against 'hello_sink'", L.index(".rela.text.hello_v2"), r0);
  }
  cases[33].message = "function 'hellp': symbol 'hellp' not found in " + target_bin("hello") + "; closest: 'hello'";
  {
    auto elf = ElfFile::create(L.bytes);
    auto syms = elf->symbols(symtab);
    ASSERT_TRUE(syms.has_value());
    for (const auto& sym : *syms)
      if (sym.name == "hello_sink")
        cases[34].message = fmt::format(
            "section [index {}] '.symtab': symbol [index {}] '\\x0aello_sink': name contains control character 0xa", symtab,
            sym.index);
  }

  ASSERT_GE(cases.size(), 30u);
  for (size_t i = 0; i < cases.size(); i++) {
    SCOPED_TRACE(cases[i].name);
    Bytes b = L.bytes;
    cases[i].mutate(L, b);
    std::string file = work_file(fmt::format("bad_{:02}.lp", i));
    test::write_bytes(file, b);
    expect_refused(file, cases[i].message);
  }
}

TEST(BadTarget, PayloadForAnotherBinaryIsRefused) {
  std::string lp = build("libc_call.c", target_bin("calc"), "for_calc.lp");
  Layout L(lp);
  Target t(target_bin("hello"));
  HsRun r = hotsplice({"upload", std::to_string(t.pid()), "x", lp});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line().rfind("hotsplice: error: " + lp + ": no object with build-id ", 0), 0u) << r.err;
  EXPECT_NE(r.err_line().find(fmt::format(" is mapped in PID {}", t.pid())), std::string::npos) << r.err;
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
}

TEST(BadTarget, AmbiguousLocalIsRefusedNamingTheChoices) {
  // sympos.lp names "twin,2"; cut it to "twin", which two statics share.
  std::string lp = build("sympos.c", target_bin("dup"), "ambiguous_src.lp");
  Bytes b = test::read_bytes(lp);
  std::string text(b.begin(), b.end());
  size_t at = text.find(std::string("twin,2\0", 7));
  ASSERT_NE(at, std::string::npos);
  b[at + 4] = 0;
  std::string bad = work_file("ambiguous.lp");
  test::write_bytes(bad, b);
  Target t(target_bin("dup"));
  HsRun r = hotsplice({"upload", std::to_string(t.pid()), "x", bad});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(), "hotsplice: error: " + bad + ": function 'twin': ambiguous symbol 'twin' in " + target_bin("dup") +
                              ": 2 local definitions (dup_a.c, dup_b.c), use 'twin,N' or 'file.c#twin'")
      << r.err;
  EXPECT_EQ(t.ask("b"), "b=200");
}

TEST(BadProcess, NonExistentPid) {
  HsRun r = hotsplice({"list", "2147483647"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "hotsplice: error: no process with PID 2147483647\n");
  r = hotsplice({"apply", "2147483647", "x"});
  EXPECT_EQ(r.err, "hotsplice: error: no process with PID 2147483647\n");
}

TEST(BadProcess, DeadProcessThatIsNotReapedYet) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  // Wait until it is a zombie, without reaping it.
  siginfo_t si{};
  ASSERT_EQ(waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOWAIT), 0);
  HsRun r = hotsplice({"apply", std::to_string(child), "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: process {} has exited\n", child));
  waitpid(child, nullptr, 0);
}

TEST(BadProcess, NoPermission) {
  Target t(target_bin("hello"));
  // Run the tool as an unprivileged user against a root-owned process.
  HsRun r = hotsplice({"list", std::to_string(t.pid())}, {"HOTSPLICE_TEST_SETUID=65534"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: not permitted to access PID {}: Permission denied\n", t.pid()));
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
}

TEST(BadProcess, MissingPayloadFile) {
  Target t(target_bin("hello"));
  HsRun r = hotsplice({"upload", std::to_string(t.pid()), "x", "/nonexistent/fix.lp"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "hotsplice: error: /nonexistent/fix.lp: cannot open: No such file or directory\n");
}

TEST(BadProcess, StoppedProcessIsRefused) {
  Target t(target_bin("hello"));
  kill(t.pid(), SIGSTOP);
  // Wait until the kernel reports it stopped.
  for (int i = 0; i < 1000; i++) {
    std::ifstream st("/proc/" + std::to_string(t.pid()) + "/stat");
    std::string s;
    std::getline(st, s);
    if (s.find(") T ") != std::string::npos) break;
    usleep(1000);
  }
  HsRun r = hotsplice({"apply", std::to_string(t.pid()), "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: PID {} is stopped (state T); continue it first\n", t.pid()));
  kill(t.pid(), SIGCONT);
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
}

TEST(BadProcess, ProcessTracedByADebuggerIsRefused) {
  Target t(target_bin("hello"));
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t debugger = fork();
  if (debugger == 0) {
    long ok = ptrace(PTRACE_SEIZE, t.pid(), nullptr, nullptr);
    char c = ok == 0 ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  HsRun r = hotsplice({"apply", std::to_string(t.pid()), "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(), fmt::format("hotsplice: error: PID {} is already traced by PID {} (e2e_test)", t.pid(), debugger));
  kill(debugger, SIGKILL);
  waitpid(debugger, nullptr, 0);
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
}

TEST(BadState, OperationsInTheWrongStateAreRefused) {
  std::string lp = build("hello_v2.c", target_bin("hello"), "state.lp");
  Target t(target_bin("hello"));
  std::string pid = std::to_string(t.pid());
  HsRun r = hotsplice({"apply", pid, "nosuch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: no payload named 'nosuch' in PID {}\n", t.pid()));
  ASSERT_EQ(hotsplice({"load", pid, lp, "--name", "fix"}).code, 0);
  r = hotsplice({"upload", pid, "fix", lp});
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: a payload named 'fix' is already loaded in PID {}\n", t.pid()));
  r = hotsplice({"upload", pid, "again", lp});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("with the same build-id"), std::string::npos) << r.err;
  r = hotsplice({"unload", pid, "fix"});
  EXPECT_EQ(r.err, "hotsplice: error: payload 'fix' is APPLIED; revert it before unloading\n");
  r = hotsplice({"apply", pid, "fix"});
  EXPECT_EQ(r.err, "hotsplice: error: payload 'fix' is already APPLIED\n");
  r = hotsplice({"upload", pid, "bad/name", lp});
  EXPECT_EQ(r.code, 64);
  EXPECT_EQ(r.err, "hotsplice: error: invalid payload name 'bad/name': use 1 to 64 of [A-Za-z0-9_.-]\n");
  r = hotsplice({"apply", pid});
  EXPECT_EQ(r.code, 64);
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
}
