// The code is the truth (issue 9): before an operation acts on what the
// registry says, hotsplice checks the bytes at every patch site and recorded
// call site (engine/code_check.h), and a payload is not unmapped while
// something still refers into it. Here the test rewrites the target's code
// or GOT through /proc/PID/mem, as a target rewriting itself (or anything
// else with access to its memory) would, and checks that every verb acting
// on the registry's claims is refused with the exact line, that the bytes in
// the target are the same before and after, and that the target behaves as
// it did.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cinttypes>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness.h"
#include "process/objects.h"
#include "support/bytes.h"

using namespace hs::e2e;
using hs::Bytes;
using hs::u64;

namespace {

// Writes `b` at `addr` in the target through /proc/PID/mem.
void poke(const Target& t, u64 addr, const Bytes& b) {
  const int fd = ::open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const ssize_t n = ::pwrite(fd, b.data(), b.size(), static_cast<off_t>(addr));
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(b.size())) << fmt::format("writing {:#x}", addr);
}

std::string spaced(const Bytes& b) { return fmt::format("{:02x}", fmt::join(b, " ")); }

u64 hex(const nlohmann::json& v) { return std::stoull(v.get<std::string>(), nullptr, 16); }

// Function `fn`'s old_addr / new_addr as payload `name` records them.
u64 func_addr(const Target& t, const std::string& name, const std::string& fn, const char* which) {
  const auto l = list_json(t);
  const auto* p = find_payload(l, name);
  EXPECT_NE(p, nullptr) << name;
  if (!p) return 0;
  for (const auto& f : (*p)["funcs"])
    if (f["name"] == fn) return hex(f[which]);
  ADD_FAILURE() << name << " has no function " << fn;
  return 0;
}

// Where the patch of the function at `entry` goes (after an endbr64).
u64 patch_site(const Target& t, u64 entry) {
  const Bytes b = t.read_memory(entry, 4);
  return b == Bytes{0xf3, 0x0f, 0x1e, 0xfa} ? entry + 4 : entry;
}

// A 5-byte call (e8) or jmp (e9) rel32 at `from` to `to`.
Bytes branch(hs::u8 op, u64 from, u64 to) {
  Bytes b(5, op);
  hs::store_le<hs::i32>(b.data() + 1, static_cast<hs::i32>(to - (from + 5)));
  return b;
}

// hello's patch site holding `forged` while the registry says fix is
// APPLIED there: every verb refused with `line`, nothing changes, the target
// answers `call` with `answer` before and after.
void expect_refusals(Target& t, u64 hello, const std::string& line, const std::string& answer) {
  const Bytes text = t.read_memory(hello, 64);
  const std::string maps = t.maps();
  EXPECT_EQ(t.ask("call").substr(0, answer.size()), answer);
  expect_error({"revert", P(t), "fix"}, line);
  expect_error({"apply", P(t), "v3"}, line);
  expect_error({"unload", P(t), "v3"}, line);
  expect_error({"replace", P(t), "cum"}, line);
  EXPECT_EQ(t.read_memory(hello, 64), text) << "a refused operation must not write";
  EXPECT_EQ(t.maps(), maps) << "nor map or unmap anything";
  EXPECT_EQ(t.ask("call").substr(0, answer.size()), answer);
  EXPECT_EQ(state_of(t, "fix"), "APPLIED");
  EXPECT_EQ(state_of(t, "v3"), "CHECKED");
}

// fix (hello_v2, entry jump only, so the entry decides what `call` runs)
// applied; v3 (stacked on it) and cum (for replace) uploaded.
struct Hello {
  std::string fix, v3, cum, w;
};
Hello hello_payloads(const std::string& bin) {
  Hello h;
  h.fix = build("hello_v2.c", bin, "truth_v2.lp");
  h.v3 = build("hello_v3.c", bin, "truth_v3.lp", h.fix);
  h.cum = build("cumulative.c", bin, "truth_cum.lp");
  h.w = build("world_v2.c", bin, "truth_w.lp", h.fix);
  return h;
}

}  // namespace

// The registry says APPLIED, the code holds the original bytes again.
TEST(Truth, OriginalBytesUnderAnAppliedPatchRefuseEveryVerb) {
  const std::string bin = target_bin("hello");
  const Hello lp = hello_payloads(bin);
  Target t(bin);
  OK({"upload", P(t), "fix", lp.fix});
  const u64 hello = func_addr(t, "fix", "hello", "old_addr");
  const u64 site = patch_site(t, hello);
  const Bytes original = t.read_memory(site, 5);
  OK({"apply", P(t), "fix", "--entry-only"});
  const Bytes jump = t.read_memory(site, 5);
  ASSERT_EQ(jump[0], 0xe9);
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
  OK({"upload", P(t), "v3", lp.v3});
  OK({"upload", P(t), "cum", lp.cum});

  ASSERT_NO_FATAL_FAILURE(poke(t, site, original));
  EXPECT_EQ(t.ask("call"), "hello=1 count=2") << "the original code runs while the registry says APPLIED";
  ASSERT_NO_FATAL_FAILURE(expect_refusals(
      t, hello,
      fmt::format("hotsplice: error: PID {}: patch site of 'hello' (payload 'fix') at {:#x} holds {}, but the "
                  "registry says it holds {} (APPLIED); 'hotsplice recover {}' rebuilds the state from the process's code",
                  t.pid(), site, spaced(original), spaced(jump), t.pid()),
      "hello=1"));

  // The code back as the registry says: everything works again.
  ASSERT_NO_FATAL_FAILURE(poke(t, site, jump));
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.read_memory(site, 5), original);
  OK({"unload", P(t), "v3"});
  OK({"unload", P(t), "cum"});
  OK({"unload", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=5");
}

// The registry says APPLIED, the patch site jumps somewhere else (world()).
TEST(Truth, AJumpElsewhereAtAnAppliedPatchSiteRefusesEveryVerb) {
  const std::string bin = target_bin("hello");
  const Hello lp = hello_payloads(bin);
  Target t(bin);
  OK({"upload", P(t), "fix", lp.fix});
  OK({"apply", P(t), "fix", "--entry-only"});
  OK({"upload", P(t), "v3", lp.v3});
  OK({"upload", P(t), "cum", lp.cum});
  OK({"upload", P(t), "w", lp.w});
  const u64 hello = func_addr(t, "fix", "hello", "old_addr");
  const u64 world = func_addr(t, "w", "world", "old_addr");
  const u64 site = patch_site(t, hello);
  const Bytes jump = t.read_memory(site, 5);
  const Bytes elsewhere = branch(0xe9, site, world);
  ASSERT_NO_FATAL_FAILURE(poke(t, site, elsewhere));
  EXPECT_EQ(t.ask("call"), "hello=10 count=1") << "hello() now runs world()";
  const std::string line = fmt::format(
      "hotsplice: error: PID {}: patch site of 'hello' (payload 'fix') at {:#x} holds {}, but the "
      "registry says it holds {} (APPLIED); 'hotsplice recover {}' rebuilds the state from the process's code",
      t.pid(), site, spaced(elsewhere), spaced(jump), t.pid());
  ASSERT_NO_FATAL_FAILURE(expect_refusals(t, hello, line, "hello=10"));
  expect_error({"unload", P(t), "w"}, line);
  EXPECT_TRUE(mapped(t, "w"));

  ASSERT_NO_FATAL_FAILURE(poke(t, site, jump));
  EXPECT_EQ(t.ask("call"), "hello=2 count=4");
  OK({"revert", P(t), "fix"});
  for (const char* name : {"w", "cum", "v3", "fix"}) OK({"unload", P(t), name});
  EXPECT_EQ(t.ask("call"), "hello=1 count=5");
}

// The forged case: a call the registry says goes to v2's
// replacement (APPLIED, the top) is made to call into v3, which is only
// CHECKED. Reverting v2 or unloading v3 would leave the call running
// unmapped code: both are refused.
TEST(Truth, ACallRedirectedIntoACheckedPayloadRefusesRevertAndUnload) {
  const std::string bin = target_bin("callers");
  const std::string v2 = build("scale_v2.c", bin, "truth_scale_v2.lp");
  const std::string v3 = build("scale_v3.c", bin, "truth_scale_v3.lp", v2);
  Target t(bin);
  u64 text_begin = 0, text_end = 0;
  ASSERT_EQ(sscanf(t.ask("addrs").c_str(), "scale=%*x decoy=%*x text=%" SCNx64 "-%" SCNx64, &text_begin, &text_end), 2);
  OK({"load", P(t), v2, "--name", "v2"});
  OK({"upload", P(t), "v3", v3});
  const u64 scale = func_addr(t, "v2", "scale", "old_addr");
  const u64 r2 = func_addr(t, "v2", "scale", "new_addr");
  const u64 r3 = func_addr(t, "v3", "scale", "new_addr");
  EXPECT_EQ(t.ask("direct"), "direct=16");

  // via_call's `call` to v2's replacement (the redirected E8).
  const Bytes text = t.read_memory(text_begin, text_end - text_begin);
  u64 site = 0;
  for (size_t i = 0; i + 5 <= text.size() && !site; i++)
    if (text[i] == 0xe8 && hs::load_le<hs::i32>(text.data() + i + 1) == static_cast<hs::i32>(r2 - (text_begin + i + 5)))
      site = text_begin + i;
  ASSERT_NE(site, 0u) << "no call redirected to v2";
  const Bytes forged = branch(0xe8, site, r3);
  ASSERT_NO_FATAL_FAILURE(poke(t, site, forged));
  EXPECT_EQ(t.ask("direct"), "direct=21") << "the call now runs v3's scale";

  const Bytes before = t.read_memory(text_begin, text_end - text_begin);
  const std::string line = fmt::format(
      "hotsplice: error: PID {}: call site of 'scale' (payload 'v2') at {:#x} holds {}, a call to {:#x} in payload "
      "'v3' (CHECKED), but the registry says it goes to 'scale' at {:#x} or to its replacement at {:#x} in payload "
      "'v2' (APPLIED); 'hotsplice recover {}' rebuilds the state from the process's code",
      t.pid(), site, spaced(forged), r3, scale, r2, t.pid());
  expect_error({"revert", P(t), "v2"}, line);
  expect_error({"unload", P(t), "v3"}, line);
  EXPECT_TRUE(t.read_memory(text_begin, text_end - text_begin) == before) << "a refused operation must not write";
  EXPECT_TRUE(mapped(t, "v3"));
  EXPECT_EQ(state_of(t, "v2"), "APPLIED");
  EXPECT_EQ(t.ask("direct"), "direct=21");

  // The call back where the registry says: revert and unload work again.
  ASSERT_NO_FATAL_FAILURE(poke(t, site, branch(0xe8, site, r2)));
  OK({"revert", P(t), "v2"});
  OK({"unload", P(t), "v3"});
  OK({"unload", P(t), "v2"});
  EXPECT_EQ(t.ask("direct"), "direct=11");
}

// A GOT slot of the executable pointing into a CHECKED payload: unload is
// refused naming the slot, the payload stays mapped, the process answers.
TEST(Truth, AGotSlotPointingIntoAPayloadRefusesUnload) {
  const std::string bin = target_bin("hello");
  const std::string fix = build("hello_v2.c", bin, "truth_got_v2.lp");
  Target t(bin);
  OK({"upload", P(t), "fix", fix});
  const u64 base = hex((*find_payload(list_json(t), "fix"))["base"]);

  auto proc = hs::Process::open(t.pid());
  ASSERT_TRUE(proc.has_value());
  auto objs = hs::mapped_objects(*proc);
  ASSERT_TRUE(objs.has_value());
  const hs::MappedObject& exe = objs->front();
  const auto got = exe.elf->find_section(".got");
  ASSERT_TRUE(got.has_value()) << exe.path;
  const u64 got_addr = exe.elf->sections()[*got].sh_addr + exe.bias.value();
  const u64 got_size = exe.elf->sections()[*got].sh_size;
  // A slot the program does not use while it runs (a weak undefined symbol
  // such as __gmon_start__ holds 0).
  const Bytes slots = t.read_memory(got_addr, got_size);
  u64 slot = 0;
  for (size_t off = 0; off + 8 <= slots.size() && !slot; off += 8)
    if (hs::load_le<u64>(slots.data() + off) == 0) slot = got_addr + off;
  ASSERT_NE(slot, 0u) << "no zero slot in the GOT of " << exe.path;

  Bytes ptr(8);
  hs::store_le<u64>(ptr.data(), base + 0x10);
  ASSERT_NO_FATAL_FAILURE(poke(t, slot, ptr));
  const std::string maps = t.maps();
  expect_error({"unload", P(t), "fix"},
               fmt::format("hotsplice: error: PID {}: cannot unload 'fix': the GOT slot at {:#x} of {} points into it "
                           "at {:#x}",
                           t.pid(), slot, exe.path, base + 0x10));
  EXPECT_TRUE(mapped(t, "fix"));
  EXPECT_EQ(t.maps(), maps);
  EXPECT_EQ(state_of(t, "fix"), "CHECKED");
  EXPECT_EQ(t.ask("ping"), "pong");
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");

  ASSERT_NO_FATAL_FAILURE(poke(t, slot, Bytes(8, 0)));
  OK({"unload", P(t), "fix"});
  expect_absent(t, "fix");
  EXPECT_EQ(t.ask("call"), "hello=1 count=2");
}
