// A target that scribbles over its own registry (issue 9, "The registry is
// untrusted input"). The registry lives in the target's memory, so a buggy or
// compromised process can write anything there; the test does it through
// /proc/PID/mem, which has the same effect. Whatever it writes, hotsplice
// must say the registry is corrupt (one line naming the PID) and do
// nothing: never crash or hang, never report "0 payloads" for a patched
// process, never create a second registry beside the corrupt one, never
// write where a forged journal points, and leave the target running its
// patched code.
#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <map>
#include <cstring>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include <sys/mman.h>

#include "engine/registry.h"
#include "harness.h"
#include "process/named_memfd.h"
#include "process/process.h"
#include "process/remote_syscall.h"
#include "process/thread_group.h"

using namespace hs::e2e;

namespace {

using hs::Bytes;
using hs::u64;

struct Mapping {
  u64 lo = 0, hi = 0;
  std::string path;
};

std::vector<Mapping> mappings(const Target& t) {
  std::vector<Mapping> out;
  std::istringstream maps(t.maps());
  for (std::string line; std::getline(maps, line);) {
    Mapping m;
    if (sscanf(line.c_str(), "%" SCNx64 "-%" SCNx64, &m.lo, &m.hi) != 2) continue;
    std::istringstream fields(line);
    std::string skip;
    fields >> skip >> skip >> skip >> skip >> skip;  // range, perms, offset, device, inode
    std::getline(fields >> std::ws, m.path);
    out.push_back(m);
  }
  return out;
}

int registry_mappings(const Target& t) {
  int n = 0;
  for (const auto& m : mappings(t)) n += m.path.starts_with("/memfd:hotsplice-registry");
  return n;
}

Bytes peek(const Target& t, u64 addr, size_t n) {
  int fd = open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_RDONLY);
  Bytes b(n);
  ssize_t got = fd >= 0 ? pread(fd, b.data(), n, static_cast<off_t>(addr)) : -1;
  if (fd >= 0) close(fd);
  EXPECT_EQ(got, static_cast<ssize_t>(n)) << "reading " << n << " bytes at " << std::hex << addr;
  return b;
}

void poke(const Target& t, u64 addr, hs::ByteView b) {
  int fd = open(fmt::format("/proc/{}/mem", t.pid()).c_str(), O_WRONLY);
  ssize_t put = fd >= 0 ? pwrite(fd, b.data(), b.size(), static_cast<off_t>(addr)) : -1;
  if (fd >= 0) close(fd);
  ASSERT_EQ(put, static_cast<ssize_t>(b.size())) << "writing at " << std::hex << addr;
}

// The registry of a patched target as the test scribbles over it: where it
// is, and a copy of its header and active slot to put back.
struct Reg {
  u64 base = 0;
  Bytes header;       // the header struct
  u64 slot_at = 0;    // the active slot's address
  Bytes slot;         // its slot header and state
  hs::RegistryState state;

  explicit Reg(const Target& t) {
    for (const auto& m : mappings(t))
      if (m.path.starts_with("/memfd:hotsplice-registry")) base = m.lo;
    EXPECT_NE(base, 0u) << t.maps();
    header = peek(t, base, sizeof(hs::RegistryHeader));
    auto h = hs::load_le<hs::RegistryHeader>(header.data());
    slot_at = base + hs::registry_slot_offset(h.commit & 1);
    auto sh = hs::load_le<hs::RegistrySlotHeader>(peek(t, slot_at, sizeof(hs::RegistrySlotHeader)).data());
    slot = peek(t, slot_at, sizeof sh + sh.length);
    auto st = hs::deserialize(hs::ByteView(slot).subspan(sizeof sh));
    EXPECT_TRUE(st.has_value()) << st.error().message();
    if (st) state = *st;
  }
  void restore(const Target& t) const {
    poke(t, base, header);
    poke(t, slot_at, slot);
  }
  // Commits `s` the way hotsplice does (the inactive slot, then the
  // header's commit word), checksum and all: a forgery a reader cannot tell
  // from a real commit by its bytes.
  void forge(const Target& t, const hs::RegistryState& s) const {
    auto h = hs::load_le<hs::RegistryHeader>(peek(t, base, sizeof(hs::RegistryHeader)).data());
    const u64 slot_no = (h.commit & 1) ^ 1, generation = (h.commit >> 1) + 1;
    poke(t, base + hs::registry_slot_offset(slot_no), hs::registry_slot_image(s, generation));
    const u64 commit = generation << 1 | slot_no;
    poke(t, base + offsetof(hs::RegistryHeader, commit), hs::ByteView(reinterpret_cast<const hs::u8*>(&commit), 8));
  }
};

class Registry : public testing::Test {
 protected:
  static void SetUpTestSuite() { lp_ = build("hello_v2.c", target_bin("hello"), "registry_hello_v2.lp"); }

  // A hello target with hello_v2 loaded as "fix" (applied).
  void SetUp() override {
    t_ = std::make_unique<Target>(target_bin("hello"));
    OK({"load", P(*t_), lp_, "--name", "fix"});
    ASSERT_EQ(t_->ask("call"), "hello=2 count=1");
  }

  // A verb run on the corrupt registry: refused with the one-line
  // corruption message, no crash, no hang, no "0 payloads", no second
  // registry.
  void expect_refused(const std::vector<std::string>& args, const std::string& what, int registries = 1) {
    HsRun r = hotsplice(args);
    const std::string pid = P(*t_);
    EXPECT_NE(r.code, 134) << what;
    EXPECT_NE(r.code, 139) << what;
    EXPECT_EQ(r.code, 1) << what << ": " << r.out << r.err;
    EXPECT_LT(r.ms, 10000) << what << " took " << r.ms << " ms";
    EXPECT_EQ(r.out.find("0 payloads"), std::string::npos) << what << ": " << r.out;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << what << ": one line: " << r.err;
    EXPECT_TRUE(r.err.starts_with("hotsplice: error: registry of PID " + pid + " ")) << what << ": " << r.err;
    EXPECT_NE(r.err.find(" is corrupt: "), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(registry_mappings(*t_), registries) << what << ": " << t_->maps();
  }

  // After the registry is put back: the target alive, patched, and
  // hotsplice agreeing.
  void expect_patched(int count) {
    ASSERT_TRUE(t_->alive());
    EXPECT_EQ(t_->ask("call"), fmt::format("hello=2 count={}", count));
    EXPECT_EQ(state_of(*t_, "fix"), "APPLIED");
    EXPECT_EQ(registry_mappings(*t_), 1);
  }

  // The verbs that act, run in turn on a corrupt registry.
  std::vector<std::string> verb(size_t k) {
    switch (k % 4) {
      case 0: return {"apply", P(*t_), "fix"};
      case 1: return {"revert", P(*t_), "fix"};
      case 2: return {"unload", P(*t_), "fix"};
      default: return {"upload", P(*t_), "second", lp_};
    }
  }

  static std::string lp_;
  std::unique_ptr<Target> t_;
};
std::string Registry::lp_;

TEST_F(Registry, RandomBytesOverHeaderAndSlotAreCorruption) {
  Reg reg(*t_);
  std::mt19937_64 rng(20261207);
  for (int round = 0; round < 24; round++) {
    // Random bytes over part of the header, the slot, or both.
    const bool header = round % 3 != 1, slot = round % 3 != 0;
    // Random bytes, each unlike the one it replaces.
    auto scribble = [&](u64 at, const Bytes& was) {
      Bytes junk(1 + rng() % was.size());
      const size_t from = rng() % (was.size() - junk.size() + 1);
      for (size_t i = 0; i < junk.size(); i++) {
        junk[i] = static_cast<hs::u8>(rng());
        if (junk[i] == was[from + i]) junk[i] ^= 0x5a;
      }
      poke(*t_, at + from, junk);
    };
    if (header) scribble(reg.base, reg.header);
    if (slot) scribble(reg.slot_at, reg.slot);
    const std::string what = fmt::format("round {}", round);
    expect_refused({"list", P(*t_)}, what + ", list");
    expect_refused(verb(static_cast<size_t>(round)), what + ", " + verb(static_cast<size_t>(round))[0]);
    reg.restore(*t_);
  }
  expect_patched(2);
}

// Every byte of the header struct and of the active slot (its header and
// the whole state), flipped one at a time: `list` refuses each, and one in
// 23 is also tried with apply, revert, unload or upload. A byte of the
// header page past the struct is flipped too (it must stay zero).
TEST_F(Registry, EveryFlippedByteOfASmallRegistryIsCorruption) {
  Reg reg(*t_);
  ASSERT_LT(reg.slot.size(), 4096u) << "a small registry";
  struct At {
    u64 addr;
    std::string what;
  };
  std::vector<At> offsets;
  for (u64 i = 0; i < reg.header.size(); i++) offsets.push_back({reg.base + i, fmt::format("header byte {}", i)});
  offsets.push_back({reg.base + 2048, "header page byte 2048"});
  for (u64 i = 0; i < reg.slot.size(); i++) offsets.push_back({reg.slot_at + i, fmt::format("slot byte {}", i)});
  size_t sampled = 0;
  for (size_t k = 0; k < offsets.size(); k++) {
    const At& at = offsets[k];
    const Bytes was = peek(*t_, at.addr, 1);
    const hs::u8 flipped = static_cast<hs::u8>(was[0] ^ 0xff);
    poke(*t_, at.addr, hs::ByteView(&flipped, 1));
    expect_refused({"list", P(*t_)}, at.what + ", list");
    if (k % 23 == 0) {
      const auto v = verb(sampled++);
      expect_refused(v, at.what + ", " + v[0]);
    }
    poke(*t_, at.addr, was);
    if (HasFailure()) break;  // one flip is enough to read
  }
  EXPECT_GT(sampled, 10u);
  expect_patched(2);
}

// A journal forged with a valid checksum, its writes pointing outside the
// payload and its patch sites: the target's own code, the payload's data,
// the stack, the registry itself. Each way a repair could take (roll back
// or forward: apply, revert, replace) is refused, and not a byte changes
// there. A forged upload whose mapping is the target's executable is
// refused too, and the executable stays mapped.
TEST_F(Registry, ForgedJournalWithAValidChecksumWritesNowhere) {
  Reg reg(*t_);
  const hs::PayloadRecord* fix = reg.state.find("fix");
  ASSERT_NE(fix, nullptr);
  u64 exe = 0, stack = 0;
  for (const auto& m : mappings(*t_)) {
    if (!exe && m.path == target_bin("hello")) exe = m.lo;
    if (m.path == "[stack]") stack = m.hi - 64;
  }
  ASSERT_NE(exe, 0u) << t_->maps();
  ASSERT_NE(stack, 0u) << t_->maps();
  const std::vector<u64> targets = {exe + 0x40, fix->base + fix->size - 8, stack, reg.base + 0x100,
                                    fix->funcs.at(0).site() + 8};
  std::map<u64, Bytes> kept;
  for (u64 a : targets) kept[a] = peek(*t_, a, 5);

  int count = 1;
  for (hs::JournalOp op : {hs::JournalOp::Apply, hs::JournalOp::Revert, hs::JournalOp::Replace}) {
    for (u64 a : targets) {
      hs::RegistryState s = reg.state;
      hs::Journal j;
      j.op = op;
      j.payload = "fix";
      j.tool_pid = 1;
      // Whichever way the repair went, it would write 0xcc over what is
      // there: before (rolled back) and after (rolled forward) are each
      // either the bytes there now or int3s.
      const Bytes int3(5, 0xcc);
      const bool forward = op != hs::JournalOp::Revert;  // "fix" is APPLIED
      j.writes.push_back({a, forward ? kept[a] : int3, forward ? int3 : kept[a]});
      s.journal = j;
      reg.forge(*t_, s);
      const std::string what = fmt::format("{} journal writing at {:#x}", hs::op_name(op), a);
      HsRun r = hotsplice({"list", P(*t_)});
      EXPECT_EQ(r.code, 1) << what << ": " << r.err;
      EXPECT_EQ(r.err, fmt::format("hotsplice: error: registry of PID {} is corrupt: journal writes 5 bytes at {:#x}, "
                                   "neither a patch site nor a call site of a payload; 'hotsplice recover {}' rebuilds "
                                   "the state from the process's code\n",
                                   t_->pid(), a, t_->pid()))
          << what;
      expect_refused({"revert", P(*t_), "fix"}, what + ", revert");
      expect_refused({"upload", P(*t_), "second", lp_}, what + ", upload");
      for (u64 b : targets) EXPECT_EQ(peek(*t_, b, 5), kept[b]) << what << ": bytes at " << std::hex << b;
      reg.forge(*t_, reg.state);
    }
  }
  // An upload journal whose mapping is the target's executable: a repair
  // would unmap it.
  hs::RegistryState s = reg.state;
  hs::Journal j;
  j.op = hs::JournalOp::Upload;
  j.payload = "ghost";
  j.map_base = exe;
  j.map_size = 0x1000;
  s.journal = j;
  reg.forge(*t_, s);
  HsRun r = hotsplice({"apply", P(*t_), "fix"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err, fmt::format("hotsplice: error: registry of PID {} is corrupt: its journal uploads 'ghost' at {:#x}+"
                               "0x1000, over a mapping at {:#x} that is not that payload's; 'hotsplice recover {}' "
                               "rebuilds the state from the process's code\n",
                               t_->pid(), exe, exe, t_->pid()));
  EXPECT_NE(t_->maps().find(target_bin("hello")), std::string::npos);
  reg.forge(*t_, reg.state);
  expect_patched(++count);
}

// Two mappings named as the registry (the target made one more, as it
// could: here made by remote system calls in it): corrupt, and never a
// third.
TEST_F(Registry, TwoRegistryMappingsAreCorruption) {
  Reg reg(*t_);
  {
    auto proc = hs::Process::open(t_->pid());
    ASSERT_TRUE(proc.has_value()) << proc.error().message();
    auto group = hs::ThreadGroup::seize(*proc);
    ASSERT_TRUE(group.has_value()) << group.error().message();
    auto th = group->stop_one();
    ASSERT_TRUE(th.has_value()) << th.error().message();
    auto rs = hs::RemoteSyscalls::create(*group, **th, *proc);
    ASSERT_TRUE(rs.has_value()) << rs.error().message();
    auto second = hs::map_named_memfd(*proc, *rs, **th, hs::Registry::kMemfdName, hs::RemoteAddr(),
                                      hs::Registry::kCapacity, PROT_READ | PROT_WRITE, MAP_SHARED);
    ASSERT_TRUE(second.has_value()) << second.error().message();
    ASSERT_TRUE(rs->finish().has_value());
    ASSERT_TRUE(group->detach().has_value());
  }
  ASSERT_EQ(registry_mappings(*t_), 2) << t_->maps();
  expect_refused({"list", P(*t_)}, "list", 2);
  expect_refused({"upload", P(*t_), "second", lp_}, "upload", 2);
  expect_refused({"revert", P(*t_), "fix"}, "revert", 2);
  HsRun r = hotsplice({"list", P(*t_)});
  EXPECT_TRUE(r.err.find(" is corrupt: two registry mappings, at ") != std::string::npos) << r.err;
  EXPECT_EQ(t_->ask("call"), "hello=2 count=2");
}

}  // namespace
