// End-to-end: replacing glibc's indirect functions (STT_GNU_IFUNC) strlen
// and memcpy in a live process (engine/ifunc.h). The target
// (targets/ifunc/) reaches them through the PLT, the GOT (-fno-plt), a
// pointer taken at startup, and a library dlopen'd and bound lazily only
// after the patch; the payload (patches/ifunc/strings_v2.c) is built against
// the libc the target maps. Every path must show the replacement once
// applied and the original once reverted, and the resolver itself is never
// patched (the defect of issue 10: the jump went over the resolver).
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cinttypes>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "elf/elf_file.h"
#include "harness.h"
#include "support/bytes.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

using hs::Bytes;
using hs::u64;

// The libc the target maps: its path and load bias.
struct Libc {
  std::string path;
  u64 bias = 0;
};

Libc libc_of(const Target& t) {
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);) {
    u64 lo = 0, hi = 0, off = 0;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &lo, &hi, &off) != 3) continue;
    const size_t slash = line.find('/');
    if (slash == std::string::npos || off != 0) continue;
    std::string path = line.substr(slash);
    if (path.ends_with("/libc.so.6")) return {path, lo};
  }
  ADD_FAILURE() << "no libc.so.6 mapped in " << t.pid();
  return {};
}

// The link-time value of the dynamic symbol `name` of type `type` in `path`.
u64 dynsym_value(const std::string& path, std::string_view name, hs::u8 type) {
  auto elf = hs::ElfFile::open(path);
  if (!elf || !elf->dynsym_index()) return 0;
  auto syms = elf->symbols(*elf->dynsym_index());
  if (!syms) return 0;
  for (const auto& s : *syms)
    if (s.name == name && s.type() == type && s.defined()) return s.st_value;
  return 0;
}

// n bytes of the target's memory at addr.
Bytes target_bytes(const Target& t, u64 addr, size_t n) {
  Bytes b(n);
  std::ifstream mem(fmt::format("/proc/{}/mem", t.pid()), std::ios::binary);
  mem.seekg(static_cast<std::streamoff>(addr));
  mem.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  if (!mem) return {};
  return b;
}

// n bytes of a file at offset off.
Bytes file_bytes(const std::string& path, u64 off, size_t n) {
  Bytes b(n);
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(off));
  f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  if (!f) return {};
  return b;
}

// "strlen=0x... memcpy=0x..." from the target: the addresses its pointers
// taken at startup hold (the implementations its resolvers chose).
std::pair<u64, u64> where(Target& t) {
  u64 s = 0, m = 0;
  const std::string a = t.ask("where");
  EXPECT_EQ(sscanf(a.c_str(), "strlen=%" SCNx64 " memcpy=%" SCNx64, &s, &m), 2) << a;
  return {s, m};
}

// Every way the target reaches strlen, with `patched` saying which
// behaviour each must show.
void expect_strlen(Target& t, bool patched, const std::string& why) {
  SCOPED_TRACE(why);
  const std::string n = patched ? "4242" : "9";
  expect_answers(t, {
                        {"len HSIFUNC-x", "len=" + n, "strlen through the PLT"},
                        {"glen HSIFUNC-x", "glen=" + n, "strlen through the GOT (-fno-plt)"},
                        {"plen HSIFUNC-x", "plen=" + n, "strlen through a pointer taken before the patch"},
                        {"late HSIFUNC-x", "late=" + n, "strlen from a library bound lazily"},
                        {"len plain", "len=5", "the replacement is a correct strlen"},
                        {"ping", "pong"},
                    });
}

// The same for memcpy (and memmove, whose code it shares).
void expect_memcpy(Target& t, bool patched, const std::string& why) {
  SCOPED_TRACE(why);
  const std::string c = patched ? "HSMARK1" : "hsmark1";
  expect_answers(t, {
                        {"copy hsmark1", "copy=" + c, "memcpy through the PLT"},
                        {"gcopy hsmark1", "gcopy=" + c, "memcpy through the GOT (-fno-plt)"},
                        {"pcopy hsmark1", "pcopy=" + c, "memcpy through a pointer taken before the patch"},
                        {"lcopy hsmark1", "lcopy=" + c, "memcpy from a library bound lazily"},
                        {"copy abcdefgh", "copy=abcdefgh", "the replacement is a correct memcpy"},
                        {"move hsmark1", patched ? "move=hHSMARK1" : "move=hhsmark1", "memmove shares the code"},
                        {"move abcdef", "move=aabcdef", "overlapping moves stay correct"},
                        {"ping", "pong"},
                    });
}

const json* func_named(const json& payload, const std::string& name) {
  for (const auto& f : payload["funcs"])
    if (f["name"] == name) return &f;
  return nullptr;
}

}  // namespace

TEST(Ifunc, StrlenReplacedWhereverTheProcessReachesIt) {
  Target t(target_bin("ifunc_strings"));
  const Libc libc = libc_of(t);
  ASSERT_FALSE(libc.path.empty());
  const u64 strlen_impl = where(t).first;
  // The calls before the patch bind the PLT; "late" is first called after it.
  expect_answers(t, {{"len HSIFUNC-x", "len=9"}, {"glen x", "glen=1"}, {"plen x", "plen=1"}});

  const std::string lp = build("ifunc/strings_v2.c", libc.path, "ifunc_strings_v2.lp");
  const u64 resolver = libc.bias + dynsym_value(libc.path, "strlen", STT_GNU_IFUNC);
  ASSERT_NE(resolver, libc.bias);
  const Bytes resolver_before = target_bytes(t, resolver, 16);
  ASSERT_EQ(resolver_before, file_bytes(libc.path, resolver - libc.bias, 16));

  OK({"load", P(t), lp});
  expect_strlen(t, true, "applied");
  // The resolver is untouched (the lazily bound library above called it).
  EXPECT_EQ(target_bytes(t, resolver, 16), resolver_before);

  // list names both the IFUNC and the implementation patched, at the address
  // the target's own pointer holds.
  const json l = list_json(t);
  const json* p = find_payload(l, "ifunc_strings_v2");
  ASSERT_NE(p, nullptr) << l.dump();
  const json* f = func_named(*p, "strlen");
  ASSERT_NE(f, nullptr) << p->dump();
  EXPECT_EQ((*f)["old_addr"], fmt::format("{:#x}", strlen_impl));
  EXPECT_EQ((*f)["applied"], true);
  const std::string impl = (*f)["implementation"].get<std::string>();
  const std::string by_address = fmt::format("libc.so.6+{:#x}", strlen_impl - libc.bias);
  EXPECT_TRUE(impl.starts_with("__strlen_") || impl == by_address) << impl;
  const HsRun text = hotsplice({"list", P(t)});
  EXPECT_NE(text.out.find(fmt::format("  [x] strlen -> {} {:#x} -> ", impl, strlen_impl)), std::string::npos)
      << text.out;
  // The patch site is the implementation's entry (after its endbr64).
  const Bytes entry = target_bytes(t, strlen_impl, 9);
  ASSERT_EQ(entry.size(), 9u);
  const size_t at = entry[0] == 0xf3 && entry[1] == 0x0f && entry[2] == 0x1e && entry[3] == 0xfa ? 4 : 0;
  EXPECT_EQ(entry[at], 0xe9) << hs::to_hex(entry);

  OK({"revert", P(t), "ifunc_strings_v2"});
  expect_strlen(t, false, "reverted");
  EXPECT_EQ(target_bytes(t, strlen_impl, 16), file_bytes(libc.path, strlen_impl - libc.bias, 16));
  EXPECT_EQ(state_of(t, "ifunc_strings_v2"), "CHECKED");

  OK({"apply", P(t), "ifunc_strings_v2"});
  expect_strlen(t, true, "applied again");
  OK({"revert", P(t), "ifunc_strings_v2"});
  OK({"unload", P(t), "ifunc_strings_v2"});
  expect_strlen(t, false, "unloaded");
}

// memcpy: glibc 2.36's implementation is memmove's, and its mempcpy enters
// it 3 bytes in (past `mov %rdi,%rax`), inside the 5 bytes a jump would
// overwrite. hotsplice refuses that, naming the branch; where a libc does
// not do it, the replacement must show on every path (and on memmove).
TEST(Ifunc, MemcpyReplacedOrRefusedWhenMempcpyJumpsIntoIt) {
  Target t(target_bin("ifunc_strings"));
  const Libc libc = libc_of(t);
  ASSERT_FALSE(libc.path.empty());
  const u64 memcpy_impl = where(t).second;
  expect_answers(t, {{"copy hsmark1", "copy=hsmark1"}, {"gcopy x", "gcopy=x"}, {"pcopy x", "pcopy=x"}});
  const std::string lp = build("ifunc/memcpy_v2.c", libc.path, "ifunc_memcpy_v2.lp");
  const Bytes before = target_bytes(t, memcpy_impl, 16);
  const HsRun r = hotsplice({"load", P(t), lp});
  if (r.code == 0) {
    expect_memcpy(t, true, "applied");
    OK({"revert", P(t), "ifunc_memcpy_v2"});
    expect_memcpy(t, false, "reverted");
    return;
  }
  EXPECT_EQ(r.code, 1);
  const std::string head = fmt::format(
      "hotsplice: error: {}: function 'memcpy': PID {}: cannot replace the indirect function 'memcpy' of {}: its "
      "implementation ",
      lp, t.pid(), libc.path);
  EXPECT_EQ(r.err_line().substr(0, head.size()), head) << r.err;
  EXPECT_NE(r.err_line().find(fmt::format(" at {:#x} is also entered 3 bytes in, by the branch at 0x", memcpy_impl)),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.err_line().ends_with("), which the 5-byte jump would cut in two")) << r.err;
  EXPECT_EQ(target_bytes(t, memcpy_impl, 16), before);
  expect_absent(t, "ifunc_memcpy_v2");
  expect_memcpy(t, false, "refused");
}

// A process whose GLIBC_TUNABLES make its resolvers choose other
// implementations than the tool's: the ones patched are the process's.
TEST(Ifunc, FollowsTheTargetsTunablesNotTheTools) {
  const std::string tunables = "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-EVEX,-AVX";
  Target t(target_bin("ifunc_strings"), {}, {tunables});
  const u64 strlen_impl = where(t).first;
  const Libc libc = libc_of(t);
  void* mine = dlsym(RTLD_DEFAULT, "strlen");
  Dl_info info{};
  ASSERT_NE(dladdr(mine, &info), 0);
  const u64 my_offset = reinterpret_cast<u64>(mine) - reinterpret_cast<u64>(info.dli_fbase);
  if (my_offset == strlen_impl - libc.bias) GTEST_SKIP() << "the tunables chose the same strlen here";

  const std::string lp = build("ifunc/strings_v2.c", libc.path, "ifunc_strings_v2.lp");
  OK({"load", P(t), lp});
  expect_strlen(t, true, "applied");
  const json l = list_json(t);
  const json* p = find_payload(l, "ifunc_strings_v2");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*func_named(*p, "strlen"))["old_addr"], fmt::format("{:#x}", strlen_impl));
  OK({"revert", P(t), "ifunc_strings_v2"});
  expect_strlen(t, false, "reverted");
}

// The old failure mode: a patch site on the resolver. A payload naming the
// resolver's address outright is refused, and nothing changes.
TEST(Ifunc, PatchingTheResolverIsRefused) {
  Target t(target_bin("ifunc_strings"));
  const Libc libc = libc_of(t);
  const u64 resolver = libc.bias + dynsym_value(libc.path, "strlen", STT_GNU_IFUNC);
  const std::string src = work_file("ifunc_resolver_" + P(t) + ".c");
  {
    std::ofstream out(src);
    out << "#include <hotsplice/livepatch.h>\n"
           "static unsigned long zero(const char *s) { (void)s; return 0; }\n"
        << "HOTSPLICE_FUNC_ENTRY_ = {.name = \"strlen\", .new_addr = (void *)zero, .old_addr = (void *)"
        << fmt::format("{:#x}", resolver) << "ul, .new_size = 0, .old_size = 16, .version = LIVEPATCH_PAYLOAD_VERSION};\n";
  }
  const std::string lp = work_file("ifunc_resolver_" + P(t) + ".lp");
  const HsRun b = hotsplice({"build", src, "--target", libc.path, "-o", lp});
  ASSERT_EQ(b.code, 0) << b.err;
  const Bytes before = target_bytes(t, resolver, 16);
  const HsRun r = hotsplice({"load", P(t), lp});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(),
            fmt::format("hotsplice: error: {}: PID {}: function 'strlen': {:#x} in {} is the resolver of the indirect "
                        "function 'strlen', which calls never reach; name 'strlen' to replace the implementation the "
                        "process uses",
                        lp, t.pid(), resolver, libc.path))
      << r.err;
  EXPECT_EQ(target_bytes(t, resolver, 16), before);
  expect_absent(t, "ifunc_resolver_" + P(t));
  EXPECT_EQ(t.ask("late HSIFUNC-x"), "late=9");
}

// The code check and recover act on the implementation's entry, where the
// patch is: original bytes put back under an APPLIED patch are refused
// naming that address, and recover rebuilds the record (implementation
// name included) from the image and the code.
TEST(Ifunc, CodeCheckAndRecoverWorkOnTheImplementation) {
  Target t(target_bin("ifunc_strings"));
  const Libc libc = libc_of(t);
  ASSERT_FALSE(libc.path.empty());
  const u64 impl = where(t).first;
  const std::string lp = build("ifunc/strings_v2.c", libc.path, "ifunc_strings_v2.lp");
  const Bytes head = t.read_memory(impl, 4);
  const u64 site = head == Bytes{0xf3, 0x0f, 0x1e, 0xfa} ? impl + 4 : impl;
  const Bytes original = t.read_memory(site, 5);
  OK({"load", P(t), lp, "--entry-only"});
  const Bytes jump = t.read_memory(site, 5);
  ASSERT_EQ(jump[0], 0xe9);
  const std::string name = (*func_named(*find_payload(list_json(t), "ifunc_strings_v2"), "strlen"))["implementation"];

  // recover: the same record, APPLIED, the implementation named again.
  const HsRun rec = hotsplice({"recover", P(t)});
  ASSERT_EQ(rec.code, 0) << rec.err;
  const json l = list_json(t);
  const json* f = func_named(*find_payload(l, "ifunc_strings_v2"), "strlen");
  ASSERT_NE(f, nullptr) << l.dump();
  EXPECT_EQ((*f)["old_addr"], fmt::format("{:#x}", impl));
  EXPECT_EQ((*f)["applied"], true);
  EXPECT_EQ((*f)["implementation"], name);
  expect_strlen(t, true, "recovered");

  // The original bytes back under the patch: refused, naming the site.
  {
    const int fd = ::open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, original.data(), original.size(), static_cast<off_t>(site)), 5);
    ::close(fd);
  }
  const HsRun r = hotsplice({"revert", P(t), "ifunc_strings_v2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(),
            fmt::format("hotsplice: error: PID {}: patch site of 'strlen' (payload 'ifunc_strings_v2') at {:#x} holds "
                        "{:02x}, but the registry says it holds {:02x} (APPLIED); 'hotsplice recover {}' rebuilds the "
                        "state from the process's code",
                        t.pid(), site, fmt::join(original, " "), fmt::join(jump, " "), t.pid()))
      << r.err;
  OK({"recover", P(t)});
  EXPECT_EQ(state_of(t, "ifunc_strings_v2"), "CHECKED");
  expect_strlen(t, false, "the original bytes, recovered as CHECKED");
  OK({"unload", P(t), "ifunc_strings_v2"});
}
