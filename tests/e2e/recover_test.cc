// End-to-end: `hotsplice recover PID [--revert-all]` (issue 9, "Recovery for
// the operator"). Real targets patched with real payloads, whose registry the
// test then wipes through /proc/PID/mem; recover must rebuild the state from
// the process (payload mappings, image descriptors, the bytes at the patch
// sites), or put the original bytes back. Every test checks what the target
// answers and the bytes in it, not just exit codes.
#include <elf.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness.h"
#include "support/bytes.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

using hs::Bytes;
using hs::u64;

struct Range {
  u64 lo = 0, hi = 0;
};

// The registry mappings of t ("/memfd:hotsplice-registry").
std::vector<Range> registries(const Target& t) {
  std::vector<Range> out;
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);) {
    Range r;
    if (line.find("/memfd:hotsplice-registry") == std::string::npos) continue;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64, &r.lo, &r.hi) == 2) out.push_back(r);
  }
  return out;
}

Bytes read_mem(const Target& t, u64 addr, size_t len) {
  Bytes b(len);
  int fd = open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(pread(fd, b.data(), len, static_cast<off_t>(addr)), static_cast<ssize_t>(len));
  close(fd);
  return b;
}

void write_mem(const Target& t, u64 addr, const Bytes& b) {
  int fd = open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, b.data(), b.size(), static_cast<off_t>(addr)), static_cast<ssize_t>(b.size()));
  close(fd);
}

// What a compromised target could do: zero the first 64 KiB of its registry
// (header and the start of both slots).
void zero_registry(const Target& t) {
  auto regs = registries(t);
  ASSERT_EQ(regs.size(), 1u) << t.maps();
  write_mem(t, regs[0].lo, Bytes(64 * 1024, 0));
}

// The target binary's file and where its executable segment is in t.
struct TextSegment {
  Bytes file;     // the segment's bytes in the file
  u64 addr = 0;   // where they are mapped in t
};

TextSegment text_segment(const Target& t, const std::string& bin) {
  std::ifstream in(bin, std::ios::binary);
  Bytes f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TextSegment seg;
  if (f.size() < sizeof(Elf64_Ehdr)) return seg;
  Elf64_Ehdr eh;
  memcpy(&eh, f.data(), sizeof eh);
  // The load bias: the mapping of file offset 0.
  u64 bias = 0;
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);) {
    u64 lo = 0, hi = 0, off = 0;
    if (!line.ends_with(bin)) continue;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64 " %*s %" SCNx64, &lo, &hi, &off) == 3 && off == 0) {
      bias = lo;
      break;
    }
  }
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, f.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type == PT_LOAD && ph.p_offset == 0) bias -= ph.p_vaddr;
  }
  for (int i = 0; i < eh.e_phnum; i++) {
    Elf64_Phdr ph;
    memcpy(&ph, f.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    seg.file.assign(f.begin() + static_cast<long>(ph.p_offset), f.begin() + static_cast<long>(ph.p_offset + ph.p_filesz));
    seg.addr = bias + ph.p_vaddr;
  }
  return seg;
}

// The executable segment of t's binary holds exactly the file's bytes
// (every patch site and every call site back as it was).
void expect_text_is_the_files(const Target& t, const std::string& bin) {
  TextSegment seg = text_segment(t, bin);
  ASSERT_FALSE(seg.file.empty());
  Bytes mem = read_mem(t, seg.addr, seg.file.size());
  size_t differ = 0;
  for (size_t i = 0; i < mem.size(); i++)
    if (mem[i] != seg.file[i]) {
      if (differ++ == 0) ADD_FAILURE() << fmt::format("first difference at {:#x}", seg.addr + i);
    }
  EXPECT_EQ(differ, 0u) << "bytes of the text that differ from the file";
}

// The text of t's binary differs from its file (something is patched).
bool text_differs(const Target& t, const std::string& bin) {
  TextSegment seg = text_segment(t, bin);
  return read_mem(t, seg.addr, seg.file.size()) != seg.file;
}

// A PID that names no process: a child that has exited and been reaped.
pid_t unused_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

}  // namespace

TEST(Recover, RebuildsTwoStackedPayloadsFromAZeroedRegistry) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "rec_a.lp");
  std::string b = build("hello_v3.c", bin, "rec_b.lp", a);
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  OK({"load", P(t), b, "--name", "b"});
  EXPECT_EQ(t.ask("call"), "hello=3 count=1");
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));

  HsRun r = hotsplice({"recover", P(t)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("old registry corrupt"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a  APPLIED  " + bin + "  1 function"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("b  APPLIED  " + bin + "  1 function"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": the patch of payload 'b'"), std::string::npos) << r.out;  // a's site
  EXPECT_NE(r.out.find(": its patch"), std::string::npos) << r.out;                 // b's site
  EXPECT_NE(r.out.find("not known from the process"), std::string::npos) << r.out;
  EXPECT_EQ(registries(t).size(), 1u) << "never two registries";
  EXPECT_EQ(t.ask("call"), "hello=3 count=2") << "recover changes no code";
  // On a sound registry it rebuilds the same state (and says the old one was valid).
  r = hotsplice({"recover", P(t)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("old registry valid, 2 payloads"), std::string::npos) << r.out;
  EXPECT_EQ(registries(t).size(), 1u);

  json l = list_json(t);
  EXPECT_EQ(state_of(l, "a"), "APPLIED");
  EXPECT_EQ(state_of(l, "b"), "APPLIED");
  ASSERT_EQ(l["payloads"].size(), 2u);
  EXPECT_EQ(l["payloads"][0]["name"], "a");
  EXPECT_EQ(l["payloads"][0]["funcs"][0]["name"], "hello");
  EXPECT_EQ(l["payloads"][0]["funcs"][0]["applied"], true);

  // The stacking order is right: only b, the top, can be reverted first.
  r = hotsplice({"revert", P(t), "a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find("payload 'a' is not the top of the applied stack"), std::string::npos) << r.err;
  EXPECT_NE(r.err_line().find("revert 'b' first"), std::string::npos) << r.err;
  OK({"revert", P(t), "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=3");
  OK({"revert", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=4");
  // The undo bytes recover rebuilt are the original ones.
  ASSERT_NO_FATAL_FAILURE(expect_text_is_the_files(t, bin));
  OK({"unload", P(t), "b"});
  OK({"unload", P(t), "a"});
  expect_absent(t, "a");
  expect_absent(t, "b");
  // And a fresh apply works on the rebuilt registry.
  OK({"load", P(t), a, "--name", "again"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=5");
}

TEST(Recover, RevertAllPutsTheObjectFilesBytesBack) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "recall_a.lp");
  std::string b = build("world_v2.c", bin, "recall_b.lp", a);
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  OK({"load", P(t), b, "--name", "b"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=1");
  EXPECT_EQ(t.ask("world"), "world=20");
  EXPECT_TRUE(text_differs(t, bin));
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));

  HsRun r = hotsplice({"recover", P(t), "--revert-all"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("a  CHECKED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("b  CHECKED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hello site"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": its patch; original bytes"), std::string::npos) << r.out;
  EXPECT_EQ(t.ask("call"), "hello=1 count=2");
  EXPECT_EQ(t.ask("world"), "world=10");
  ASSERT_NO_FATAL_FAILURE(expect_text_is_the_files(t, bin));
  EXPECT_EQ(registries(t).size(), 1u);

  // The payloads stay mapped, as CHECKED; the usual verbs work on them.
  json l = list_json(t);
  EXPECT_EQ(state_of(l, "a"), "CHECKED");
  EXPECT_EQ(state_of(l, "b"), "CHECKED");
  EXPECT_TRUE(mapped(t, "a"));
  OK({"apply", P(t), "a"});
  OK({"apply", P(t), "b"});
  EXPECT_EQ(t.ask("world"), "world=20");
  OK({"revert", P(t), "b"});
  OK({"revert", P(t), "a"});
  OK({"unload", P(t), "b"});
  OK({"unload", P(t), "a"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=3");
  ASSERT_NO_FATAL_FAILURE(expect_text_is_the_files(t, bin));
}

// A function that starts with endbr64: the patch site is 4 bytes in, and
// the rebuilt undo bytes are the file's bytes there.
TEST(Recover, AnEndbr64FunctionIsPatchedAfterIt) {
  std::string bin = target_bin("cet");
  std::string lp = build("cet_v2.c", bin, "reccet.lp");
  Target t(bin);
  const u64 fn = std::stoull(hs::test::key_values(t.ask("addr"))["cet_value"], nullptr, 16);
  OK({"load", P(t), lp, "--name", "cet"});
  EXPECT_EQ(t.ask("call"), "value=2");
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));
  HsRun r = hotsplice({"recover", P(t)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(fmt::format("[x] cet_value site {:#x} -> ", fn + 4)), std::string::npos) << r.out;
  EXPECT_EQ(state_of(t, "cet"), "APPLIED");
  EXPECT_EQ(t.ask("call"), "value=2");
  OK({"revert", P(t), "cet"});
  EXPECT_EQ(t.ask("call"), "value=1");
  ASSERT_NO_FATAL_FAILURE(expect_text_is_the_files(t, bin));
}

TEST(Recover, ACheckedPayloadIsFoundChecked) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "recchk_a.lp");
  Target t(bin);
  OK({"upload", P(t), "fix", a});
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));

  HsRun r = hotsplice({"recover", P(t), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_EQ(j["payloads"].size(), 1u);
  EXPECT_EQ(j["payloads"][0]["name"], "fix");
  EXPECT_EQ(j["payloads"][0]["state"], "CHECKED");
  EXPECT_EQ(j["payloads"][0]["funcs"][0]["name"], "hello");
  EXPECT_EQ(j["payloads"][0]["funcs"][0]["found"], "the original bytes");
  EXPECT_EQ(j["payloads"][0]["funcs"][0]["applied"], false);
  EXPECT_EQ(j["pid"], t.pid());

  EXPECT_EQ(state_of(t, "fix"), "CHECKED");
  json l = list_json(t);
  EXPECT_EQ(l["payloads"][0]["modinfo"]["cve"], "CVE-0000-0002") << "modinfo read back from the image";
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
  OK({"apply", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=2");
  OK({"revert", P(t), "fix"});
  EXPECT_EQ(t.ask("call"), "hello=1 count=3");
  OK({"unload", P(t), "fix"});
  expect_absent(t, "fix");
}

TEST(Recover, AHalfAppliedPayloadIsRefusedAndRevertAllRestoresIt) {
  std::string bin = target_bin("hello");
  std::string c = build("cumulative.c", bin, "rechalf.lp");
  Target t(bin);
  // The original bytes of world's entry, before anything is patched.
  TextSegment seg = text_segment(t, bin);
  // --entry-only: the callers keep going through the entry jump, so
  // undoing that jump alone undoes the patch of world.
  OK({"load", P(t), c, "--name", "c", "--entry-only"});
  EXPECT_EQ(t.ask("call"), "hello=4 count=1");
  EXPECT_EQ(t.ask("world"), "world=40");
  json l = list_json(t);
  const json* wf = nullptr;
  for (const json& f : l["payloads"][0]["funcs"])
    if (f["name"] == "world") wf = &f;
  ASSERT_NE(wf, nullptr) << l.dump();
  const u64 world = std::stoull((*wf)["old_addr"].get<std::string>(), nullptr, 16);
  const u64 world_new = std::stoull((*wf)["new_addr"].get<std::string>(), nullptr, 16);
  Bytes jump{0xe9, 0, 0, 0, 0};  // jmp rel32 (the hello target has no endbr64)
  hs::store_le<hs::i32>(jump.data() + 1, static_cast<hs::i32>(world_new - (world + 5)));
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));
  // world's jump undone behind hotsplice's back: c is half-applied.
  const Bytes orig(seg.file.begin() + static_cast<long>(world - seg.addr),
                   seg.file.begin() + static_cast<long>(world - seg.addr + 5));
  ASSERT_NO_FATAL_FAILURE(write_mem(t, world, orig));
  EXPECT_EQ(t.ask("world"), "world=10");

  HsRun r = hotsplice({"recover", P(t)});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_line(),
            fmt::format("hotsplice: error: payload 'c' is applied in PID {}, but function 'world' at {:#x} holds {}, "
                        "not {}; `hotsplice recover {} --revert-all` puts the original bytes back",
                        t.pid(), world, hs::to_hex(orig), hs::to_hex(jump), t.pid()));
  EXPECT_EQ(t.ask("call"), "hello=4 count=2") << "a refused recover changes nothing";

  r = hotsplice({"recover", P(t), "--revert-all"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("c  CHECKED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("world site"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": the original bytes"), std::string::npos) << r.out;
  EXPECT_EQ(t.ask("call"), "hello=1 count=3");
  EXPECT_EQ(t.ask("world"), "world=10");
  ASSERT_NO_FATAL_FAILURE(expect_text_is_the_files(t, bin));
  EXPECT_EQ(state_of(t, "c"), "CHECKED");
  OK({"unload", P(t), "c"});
  expect_absent(t, "c");
}

// Hooks are read back from the image (named by address), so unload still
// runs the unload hook; a payload without functions is said to be
// recovered as CHECKED, since no code shows whether it was applied.
// Bytes at a patch site that no payload wrote (the target's own doing):
// named, and left as they are, by recover and by --revert-all.
TEST(Recover, ForeignBytesAtASiteAreNamedAndLeftAlone) {
  std::string bin = target_bin("hello");
  std::string a = build("hello_v2.c", bin, "recforeign.lp");
  Target t(bin);
  OK({"load", P(t), a, "--name", "a"});
  json l = list_json(t);
  const u64 hello = std::stoull(l["payloads"][0]["funcs"][0]["old_addr"].get<std::string>(), nullptr, 16);
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));
  const Bytes foreign(5, 0x90);
  ASSERT_NO_FATAL_FAILURE(write_mem(t, hello, foreign));
  TextSegment seg = text_segment(t, bin);
  const Bytes orig(seg.file.begin() + static_cast<long>(hello - seg.addr),
                   seg.file.begin() + static_cast<long>(hello - seg.addr + 5));

  // The direct calls to hello still go to a's replacement: a is in use,
  // half-applied, and recover refuses.
  HsRun r = hotsplice({"recover", P(t)});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err_line().find(fmt::format("payload 'a' is applied in PID {}, but function 'hello' at {:#x} holds "
                                          "9090909090, not e9",
                                          t.pid(), hello)),
            std::string::npos)
      << r.err;
  EXPECT_EQ(t.ask("call"), "hello=2 count=1") << "calls still reach the replacement";
  r = hotsplice({"recover", P(t), "--revert-all"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, fmt::format("hotsplice: payload 'a': function 'hello' at {:#x}: left as it is: it holds "
                               "9090909090, which no payload here wrote\n",
                               hello));
  EXPECT_EQ(read_mem(t, hello, 5), foreign);
  EXPECT_EQ(t.ask("world"), "world=10") << "the target carries on";
  EXPECT_EQ(state_of(t, "a"), "CHECKED");
  // Now a plain recover names the foreign bytes, and leaves them.
  r = hotsplice({"recover", P(t)});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, fmt::format("hotsplice: payload 'a': function 'hello' at {:#x} holds 9090909090, neither its "
                               "original bytes {} nor a payload's patch; left as it is\n",
                               hello, hs::to_hex(orig)));
  EXPECT_NE(r.out.find("a  CHECKED"), std::string::npos) << r.out;
  EXPECT_EQ(read_mem(t, hello, 5), foreign);
  // Every direct call is back as in the file; only hello's entry differs.
  Bytes text = read_mem(t, seg.addr, seg.file.size());
  std::copy(orig.begin(), orig.end(), text.begin() + static_cast<long>(hello - seg.addr));
  EXPECT_TRUE(text == seg.file);
}

TEST(Recover, HooksAreKeptByAddressAndUnloadRunsThem) {
  std::string bin = target_bin("calc");
  std::string lp = build("hooks.c", bin, "rechooks.lp");
  Target t(bin);
  auto global = [&t] {
    int g = -1000000, st = 0;
    std::string a = t.ask("get");
    EXPECT_EQ(sscanf(a.c_str(), "global=%d static=%d", &g, &st), 2) << a;
    return g;
  };
  OK({"upload", P(t), "h", lp});
  EXPECT_EQ(global(), 1000) << "load hook";
  ASSERT_NO_FATAL_FAILURE(zero_registry(t));

  HsRun r = hotsplice({"recover", P(t), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "hotsplice: payload 'h' patches no function, so the code cannot say whether it was applied: "
                   "recovered as CHECKED\n");
  EXPECT_EQ(global(), 1000) << "recover runs no hook";
  json l = list_json(t);
  const json* p = find_payload(l, "h");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["state"], "CHECKED");
  ASSERT_EQ((*p)["hooks"]["load"].size(), 1u);
  EXPECT_TRUE((*p)["hooks"]["load"][0].get<std::string>().starts_with("0x")) << p->dump();
  ASSERT_EQ((*p)["hooks"]["unload"].size(), 1u);
  EXPECT_TRUE((*p)["hooks"].contains("postapply"));
  EXPECT_TRUE((*p)["hooks"].contains("postrevert"));
  OK({"apply", P(t), "h"});
  EXPECT_EQ(global(), 1100) << "postapply hook, found by address";
  OK({"revert", P(t), "h"});
  EXPECT_EQ(global(), 1000) << "postrevert hook";
  OK({"unload", P(t), "h"});
  EXPECT_EQ(global(), 0) << "unload hook";
  expect_absent(t, "h");
}

TEST(Recover, AProcessNeverPatchedHasNothingToRecover) {
  Target t(target_bin("hello"));
  HsRun r = hotsplice({"recover", P(t)});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: PID {} has nothing to recover: no payload mapping and no registry\n",
                               t.pid()));
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(registries(t).empty()) << "no registry created";
  EXPECT_EQ(t.ask("call"), "hello=1 count=1");
}

TEST(Recover, BadArgumentsAreNamed) {
  const pid_t gone = unused_pid();
  HsRun r = hotsplice({"recover", std::to_string(gone)});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: no process with PID {}\n", gone));
  r = hotsplice({"recover", "abc"});
  EXPECT_EQ(r.code, 64);
  EXPECT_EQ(r.err_line(), "hotsplice: error: Could not convert: pid = abc");
  r = hotsplice({"recover"});
  EXPECT_EQ(r.code, 64);
  EXPECT_EQ(r.err_line(), "hotsplice: error: pid is required");
}
