// A structure-aware fuzzer for what hotsplice reads back from a target's
// registry: read_registry (header, active slot, checksum, deserialize,
// check_state) and plan_repair (what a repair would write and unmap), all in
// memory. The registry lives in the target, so every byte of it is
// untrusted input (issue 9, "The registry is untrusted input").
//
// Seeds are valid states made by a small generator (payloads with
// functions, call sites, hooks, exports, applied or not, and journals of
// every operation with writes that fit), plus the files of a corpus
// directory (serialised states; tests/fuzz/registry_corpus). Each input is a
// whole registry image: a header page and two slots. Mutations: random bytes
// in the header, the slot header or the state (the checksum fixed up, or
// not); boundary values over an integer field of the serialised state;
// truncation and splicing; and field-level changes to a state that is then
// serialised with a valid checksum, the way a target forging its registry
// would write it. The fake process memory holds each patch site's bytes
// as the state says (or something else), and its mappings the payloads'.
//
// Oracles: no crash; every failure is a Corrupt or BadTarget error whose
// message is one line naming the registry; an accepted state survives a
// serialise / parse round trip; every write a repair plans is at a patch
// site (its length) or a recorded call site's displacement (4 bytes) of a
// payload in the state, and finds there its `before` or `after`; an unmap is
// only of mappings named as the journal's payload.
//
// usage: registry_fuzz ITERATIONS SEED [CORPUS_DIR]
//        registry_fuzz --write-seeds DIR    (writes the generator's seeds)
#include <dirent.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "arch/x86_64.h"
#include "engine/registry.h"
#include "engine/repair.h"
#include "support/file.h"

using namespace hs;

namespace {

constexpr u64 kSelf = 0x7f1234560000;  // where the fake registry is mapped
constexpr u64 kObject = 0x555555554000;
constexpr u64 kInteresting[] = {0,          1,          2,           3,          4,           5,
                                8,          0x10,       0x1f,        0x20,       0x40,        0x7f,
                                0x80,       0xff,       0x1000,      0xffff,     0x7fffffff,  0x80000000,
                                0xffffffff, 0x100000000, ~u64{0} - 4, ~u64{0},   1ull << 63, kSelf};

struct Fuzzer {
  std::mt19937_64 rng;
  std::vector<Bytes> corpus;  // serialised states
  u64 accepted = 0, rejected = 0, repairs = 0, refused_repairs = 0;

  u64 pick(u64 n) { return n ? rng() % n : 0; }
  bool coin() { return rng() & 1; }
  u64 interesting() { return kInteresting[pick(std::size(kInteresting))]; }

  // ---- the generator of valid states ----

  Bytes jump(u64 from, u64 to) {
    Bytes b(x86_64::kJumpSize);
    b[0] = x86_64::kJmpRel32;
    store_le<i32>(b.data() + 1, static_cast<i32>(to - (from + x86_64::kJumpSize)));
    return b;
  }
  Bytes rel32(u64 site, u64 to) {
    Bytes b(4);
    store_le<i32>(b.data(), static_cast<i32>(to - (site + x86_64::kBranchRel32Size)));
    return b;
  }

  RegistryState generate() {
    RegistryState s;
    u64 seq = 1;
    const u64 np = pick(4);
    for (u64 i = 0; i < np; i++) {
      PayloadRecord p;
      p.name = fmt::format("p{}.{}", i, pick(100));
      p.file = "/tmp/x.lp";
      p.object_path = "/bin/target";
      p.build_id = {static_cast<u8>(i), 1, 2, 3};
      p.base = kObject + 0x10000000 + i * 0x100000;  // within rel32 reach of the object
      p.size = 0x1000 * (1 + pick(4));
      p.regions.push_back({0, 0x1000, PROT_READ | PROT_EXEC});
      p.upload_seq = seq++;
      for (u64 k = pick(4); k--;) {
        FuncState f;
        f.name = fmt::format("f{}", pick(8));
        f.old_addr = kObject + 0x1000 + pick(8) * 0x40;
        f.old_size = 0x40;
        f.patch_offset = coin() ? 0 : static_cast<u32>(x86_64::kEndbrSize);
        if (pick(4) == 0) {
          f.new_size = static_cast<u32>(pick(6));
          f.insn = Bytes(f.new_size, 0x90);
        } else {
          f.new_addr = p.base + pick(p.size);
          f.new_size = 0x20;
          f.insn = jump(f.site(), f.new_addr);
        }
        if (coin()) f.expect = {0xf3, 0x0f, 0x1e, 0xfa};
        if (f.new_addr && coin())
          for (u64 c = pick(3); c--;) f.call_sites.push_back(kObject + 0x3000 + pick(64) * 8);
        p.funcs.push_back(f);
      }
      if (coin()) p.hooks.push_back({"load", "on_load", p.base + pick(p.size)});
      if (coin()) p.hooks.push_back({"apply", "on_apply", p.base + pick(p.size)});
      p.exports.emplace_back("sym", p.base + pick(p.size));
      p.modinfo.emplace_back("cve", "CVE-0000-0001");
      p.eh_frame_offset = 0x100;
      p.eh_frame_size = 0x40;
      s.payloads.push_back(std::move(p));
    }
    // Some are applied: their functions then hold their patches.
    for (auto& p : s.payloads)
      if (coin()) {
        p.state = PayloadState::Applied;
        p.apply_seq = seq++;
        for (auto& f : p.funcs) {
          f.applied = true;
          f.undo = Bytes(f.insn.size(), 0x55);
        }
      } else if (coin()) {
        for (auto& f : p.funcs) f.undo = Bytes(f.insn.size(), 0x55);  // applied once, reverted
      }
    s.next_seq = seq + pick(3);
    if (coin()) s.journal = journal_for(s);
    return s;
  }

  // A journal that fits `s`: an operation on one of its payloads (or an
  // upload of a new one), with writes at its patch sites and call sites.
  Journal journal_for(const RegistryState& s) {
    Journal j;
    j.tool_pid = 4242;
    if (s.payloads.empty() || pick(4) == 0) {
      j.op = JournalOp::Upload;
      j.payload = "fresh";
      j.map_base = kObject + 0x10800000;
      j.map_size = 0x2000;
      return j;
    }
    const PayloadRecord& p = s.payloads[pick(s.payloads.size())];
    j.payload = p.name;
    if (p.state == PayloadState::Checked && pick(3) == 0) {
      j.op = JournalOp::Unload;
      j.map_base = p.base;
      j.map_size = p.size;
      return j;
    }
    j.op = p.state == PayloadState::Applied ? JournalOp::Revert : (coin() ? JournalOp::Apply : JournalOp::Replace);
    for (const auto& f : p.funcs) {
      if (p.state == PayloadState::Applied)
        j.writes.push_back({f.site(), f.insn, f.undo});
      else
        j.writes.push_back({f.site(), Bytes(f.insn.size(), 0x55), f.insn});
      for (u64 c : f.call_sites)
        j.writes.push_back({c + 1, rel32(c, f.old_addr), rel32(c, f.new_addr ? f.new_addr : f.old_addr)});
    }
    return j;
  }

  // ---- the fake process: memory and mappings ----

  struct FakeProcess {
    std::map<u64, u8> bytes;  // what differs from the filler
    std::vector<MapEntry> maps;
    u64 fail_at = 0;          // a read covering it fails (0: none)
    u8 at(u64 a) const {
      auto it = bytes.find(a);
      return it != bytes.end() ? it->second : static_cast<u8>((a * 0x9e3779b97f4a7c15ull) >> 56);
    }
  };

  void put(FakeProcess& fp, u64 a, ByteView b) {
    for (size_t i = 0; i < b.size(); i++) fp.bytes[a + i] = b[i];
  }

  // Memory as the state says (each patch site holding its patch when
  // applied), with some sites set to what a journal write left (before or
  // after), or to something else.
  FakeProcess fake_process(const RegistryState& s) {
    FakeProcess fp;
    for (const auto& p : s.payloads) {
      MapEntry m;
      m.range = {RemoteAddr(p.base), RemoteAddr(p.base + std::min<u64>(p.size, 1ull << 40))};
      m.path = fmt::format("/memfd:hotsplice:{} (deleted)", p.name);
      fp.maps.push_back(m);
      for (const auto& f : p.funcs)
        if (f.applied) put(fp, f.site(), f.insn);
    }
    if (s.journal) {
      if (s.journal->op == JournalOp::Upload && coin()) {
        MapEntry m;
        m.range = {RemoteAddr(s.journal->map_base), RemoteAddr(s.journal->map_base + (s.journal->map_size & 0xffffff))};
        m.path = fmt::format("/memfd:hotsplice:{} (deleted)", coin() ? s.journal->payload : "other");
        fp.maps.push_back(m);
      }
      const size_t done = pick(s.journal->writes.size() + 1);
      for (size_t k = 0; k < done; k++) put(fp, s.journal->writes[k].addr, s.journal->writes[k].after);
      if (!s.journal->writes.empty() && pick(5) == 0) {
        const auto& w = s.journal->writes[pick(s.journal->writes.size())];
        if (!w.after.empty()) fp.bytes[w.addr + pick(w.after.size())] ^= 0x40;
      }
    }
    if (pick(10) == 0) fp.fail_at = kObject + 0x1000 + pick(0x3000);
    return fp;
  }

  // ---- mutations ----

  void poke(Bytes& b, u64 off, unsigned width, u64 v) {
    if (off > b.size() || width > b.size() - off) return;
    for (unsigned i = 0; i < width; i++) b[off + i] = static_cast<u8>(v >> (8 * i));
  }

  void mutate_bytes(Bytes& b) {
    if (b.empty()) {
      for (u64 n = pick(64); n--;) b.push_back(static_cast<u8>(rng()));
      return;
    }
    switch (pick(6)) {
      case 0:
        for (u64 n = 1 + pick(4); n--;) b[pick(b.size())] = static_cast<u8>(rng());
        break;
      case 1: b[pick(b.size())] ^= static_cast<u8>(1u << pick(8)); break;
      case 2: {  // a boundary value over a length, count or address
        static constexpr unsigned widths[] = {1, 4, 8};
        const unsigned w = widths[pick(3)];
        const u64 at = pick(b.size());
        u64 old = 0;
        for (unsigned i = 0; i < w && at + i < b.size(); i++) old |= u64{b[at + i]} << (8 * i);
        poke(b, at, w, coin() ? interesting() : old + pick(3) - 1);
        break;
      }
      case 3: b.resize(pick(b.size())); break;
      case 4: {  // splice a chunk of another state
        const Bytes& o = corpus[pick(corpus.size())];
        if (o.empty()) break;
        u64 len = 1 + pick(std::min<u64>(48, o.size())), from = pick(o.size() - len + 1), to = pick(b.size());
        for (u64 k = 0; k < len && to + k < b.size(); k++) b[to + k] = o[from + k];
        break;
      }
      default: {  // duplicate or drop a chunk
        u64 at = pick(b.size()), len = 1 + pick(std::min<u64>(32, b.size() - at));
        if (coin())
          b.insert(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at),
                   b.begin() + static_cast<long>(at + len));
        else
          b.erase(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + len));
      }
    }
  }

  // A field-level change to a state: what a target forging its registry
  // (with a valid checksum) could write.
  void mutate_state(RegistryState& s) {
    auto any_payload = [&]() -> PayloadRecord* {
      return s.payloads.empty() ? nullptr : &s.payloads[pick(s.payloads.size())];
    };
    auto any_func = [&]() -> FuncState* {
      PayloadRecord* p = any_payload();
      return p && !p->funcs.empty() ? &p->funcs[pick(p->funcs.size())] : nullptr;
    };
    switch (pick(16)) {
      case 0: s.next_seq = interesting(); break;
      case 1:
        if (auto* p = any_payload()) p->name = coin() ? s.payloads[0].name : std::string(pick(70), coin() ? 'a' : '/');
        break;
      case 2:
        if (auto* p = any_payload()) p->state = static_cast<PayloadState>(pick(4));
        break;
      case 3:
        if (auto* p = any_payload()) (coin() ? p->base : p->size) = interesting();
        break;
      case 4:
        if (auto* p = any_payload()) (coin() ? p->apply_seq : p->upload_seq) = pick(3) ? pick(8) : interesting();
        break;
      case 5:
        if (auto* f = any_func()) f->new_addr = pick(3) ? f->new_addr + interesting() : interesting();
        break;
      case 6:
        if (auto* f = any_func()) {
          Bytes& b = pick(3) == 0 ? f->insn : coin() ? f->undo : f->expect;
          b.resize(pick(3) ? pick(40) : interesting() & 0xff);
        }
        break;
      case 7:
        if (auto* f = any_func()) {
          if (coin())
            f->old_addr = interesting();
          else
            f->old_size = static_cast<u32>(interesting());
        }
        break;
      case 8:
        if (auto* f = any_func()) f->patch_offset = static_cast<u32>(interesting());
        break;
      case 9:
        if (auto* f = any_func()) f->applied = !f->applied;
        break;
      case 10:
        if (auto* f = any_func()) f->call_sites.push_back(coin() ? interesting() : s.payloads[0].base + 8);
        break;
      case 11:
        if (auto* p = any_payload())
          p->hooks.push_back({coin() ? "apply" : "bogus", "h", coin() ? interesting() : p->base + p->size});
        break;
      case 12:
        if (auto* p = any_payload()) p->exports.emplace_back("e", interesting());
        break;
      case 13: {  // a journal write somewhere else, or of another length
        if (!s.journal) s.journal = journal_for(s);
        JournalWrite w;
        w.addr = coin() ? interesting() : (s.payloads.empty() ? kObject : s.payloads[0].base + 0x10);
        if (!s.journal->writes.empty() && coin()) w.addr = s.journal->writes[pick(s.journal->writes.size())].addr + pick(3);
        w.before = Bytes(pick(8), 0xcc);
        w.after = Bytes(coin() ? w.before.size() : pick(8), 0xc3);
        s.journal->writes.push_back(w);
        break;
      }
      case 14:
        if (!s.journal) s.journal = journal_for(s);
        switch (pick(5)) {
          case 0: s.journal->op = static_cast<JournalOp>(pick(8)); break;
          case 1: s.journal->payload = coin() ? "nobody" : ""; break;
          case 2: (coin() ? s.journal->map_base : s.journal->map_size) = interesting(); break;
          case 3:
            if (!s.journal->writes.empty()) std::swap(s.journal->writes.front().before, s.journal->writes.front().after);
            break;
          default:
            if (!s.journal->writes.empty()) s.journal->writes.back().after.assign(s.journal->writes.back().after.size(), 0xcc);
        }
        break;
      default:
        if (s.payloads.size() > 1 && coin())
          s.payloads[1].base = s.payloads[0].base + pick(s.payloads[0].size);  // overlapping
        else if (auto* p = any_payload())
          p->regions.push_back({interesting(), interesting(), static_cast<int>(pick(16))});
    }
  }

  // ---- one input ----

  bool check_error(const Error& e, const char* where) {
    const std::string& m = e.message();
    if ((e.kind() != ErrorKind::Corrupt && e.kind() != ErrorKind::BadTarget) || m.empty() ||
        m.find('\n') != std::string::npos || m.find("registry") == std::string::npos) {
      std::fprintf(stderr, "%s: bad error (kind %s): '%s'\n", where, kind_name(e.kind()), m.c_str());
      return false;
    }
    return true;
  }

  // The registry image: a header page and the two slots' bytes, read at
  // offsets from the mapping's start.
  struct Image {
    Bytes header;
    Bytes slot[2];
    Result<Bytes> read(u64 offset, size_t len) const {
      Bytes out(len, 0);
      for (int k = 0; k < 2; k++) {
        const u64 at = registry_slot_offset(static_cast<u64>(k));
        if (offset >= at && offset - at < registry_slot_capacity()) {
          for (size_t i = 0; i < len && offset - at + i < slot[k].size(); i++) out[i] = slot[k][offset - at + i];
          return out;
        }
      }
      if (offset + len <= header.size()) return Bytes(header.begin() + static_cast<long>(offset),
                                                      header.begin() + static_cast<long>(offset + len));
      return fail(ErrorKind::Corrupt, "registry image: nothing at offset {:#x}", offset);
    }
  };

  Image image_of(ByteView data, u64 generation, bool fix_checksum) {
    Image im;
    im.header.assign(kRegistryHeaderSize, 0);
    RegistryHeader h = registry_header(kSelf);
    const u64 slot = generation & 1;
    h.commit = (generation << 1) | slot;
    std::memcpy(im.header.data(), &h, sizeof h);
    RegistrySlotHeader sh{data.size(), fix_checksum ? registry_checksum(data) : rng()};
    im.slot[slot].resize(sizeof sh);
    std::memcpy(im.slot[slot].data(), &sh, sizeof sh);
    im.slot[slot].insert(im.slot[slot].end(), data.begin(), data.end());
    im.slot[slot ^ 1] = Bytes(pick(64), 0xab);
    return im;
  }

  bool run_image(const Image& im) {
    auto st = read_registry([&im](u64 off, size_t len) { return im.read(off, len); }, kSelf, "registry of PID 1");
    if (!st) {
      rejected++;
      return check_error(st.error(), "read_registry");
    }
    accepted++;
    Bytes again = serialize(*st, st->generation);
    auto back = deserialize(again);
    if (!back || serialize(*back, back->generation) != again) {
      std::fprintf(stderr, "an accepted state does not survive a round trip\n");
      return false;
    }
    if (st->journal) return run_repair(*st);
    return true;
  }

  bool run_repair(const RegistryState& s) {
    FakeProcess fp = fake_process(s);
    MemoryReader mem = [&fp](RemoteAddr a, size_t len) -> Result<Bytes> {
      if (fp.fail_at && fp.fail_at >= a.value() && fp.fail_at - a.value() < len)
        return fail(ErrorKind::TargetGone, "cannot read {} bytes at {}", len, a);
      Bytes b(len);
      for (size_t i = 0; i < len; i++) b[i] = fp.at(a.value() + i);
      return b;
    };
    auto plan = plan_repair(s, mem, fp.maps, 1);
    if (!plan) {
      refused_repairs++;
      if (plan.error().kind() == ErrorKind::TargetGone) return true;  // the fake read failed
      return check_error(plan.error(), "plan_repair");
    }
    repairs++;
    FakeProcess now = fp;
    for (const auto& w : plan->writes) {
      bool known = false;
      for (const auto& p : s.payloads)
        for (const auto& f : p.funcs) {
          known |= w.addr == f.site() && w.after.size() == f.insn.size();
          for (u64 c : f.call_sites) known |= w.addr == c + 1 && w.after.size() == 4;
        }
      if (!known) {
        std::fprintf(stderr, "repair writes %zu bytes at %#llx, not a patch or call site\n", w.after.size(),
                     static_cast<unsigned long long>(w.addr));
        return false;
      }
      for (size_t i = 0; i < w.before.size(); i++)
        if (now.at(w.addr + i) != w.before[i]) {
          std::fprintf(stderr, "repair write at %#llx was planned on bytes that are not there\n",
                       static_cast<unsigned long long>(w.addr));
          return false;
        }
      put(now, w.addr, w.after);
    }
    if (plan->unmap) {
      const std::string name = fmt::format("/memfd:hotsplice:{} (deleted)", s.journal->payload);
      for (const auto& m : fp.maps)
        if (m.range.overlaps(*plan->unmap) && m.path != name) {
          std::fprintf(stderr, "repair unmaps %s\n", m.path.c_str());
          return false;
        }
    }
    return true;
  }

  bool run_one() {
    RegistryState s;
    Bytes data;
    if (!corpus.empty() && pick(3) == 0) {
      data = corpus[pick(corpus.size())];
      auto st = deserialize(data);
      if (st) s = *st;
    } else {
      s = generate();
    }
    u64 generation = 1 + pick(1000);
    switch (pick(10)) {
      case 0:
      case 1:
      case 2: {  // forged: a field changed, written with a valid checksum
        for (u64 n = 1 + pick(3); n--;) mutate_state(s);
        data = serialize(s, coin() ? generation : 0);
        return run_image(image_of(data, generation, true));
      }
      case 3:
      case 4:
      case 5:
      case 6: {  // the bytes mutated, the checksum fixed up
        if (data.empty()) data = serialize(s, generation);
        for (u64 n = 1 + pick(3); n--;) mutate_bytes(data);
        return run_image(image_of(data, generation, true));
      }
      case 7: {  // random bytes
        Bytes r(pick(512));
        for (auto& c : r) c = static_cast<u8>(rng());
        if (coin() && r.size() >= 4) store_le<u32>(r.data(), static_cast<u32>(1 + pick(2)));
        return run_image(image_of(r, generation, true));
      }
      default: {  // the header or slot header scribbled over
        data = serialize(s, generation);
        Image im = image_of(data, generation, coin());
        Bytes& b = coin() ? im.header : im.slot[generation & 1];
        const u64 span = std::min<u64>(b.size(), 64);
        if (span)
          for (u64 n = 1 + pick(3); n--;) b[pick(span)] = static_cast<u8>(rng());
        return run_image(im);
      }
    }
  }
};

std::vector<Bytes> read_corpus(const std::string& dir) {
  std::vector<Bytes> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names)
    if (auto b = read_whole_file(dir + "/" + n)) out.push_back(std::move(*b));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    Fuzzer f;
    f.rng.seed(9);
    for (int i = 0; i < 16; i++) {
      RegistryState s = f.generate();
      Bytes b = serialize(s, 1 + static_cast<u64>(i));
      std::string path = fmt::format("{}/seed-{:02}", argv[2], i);
      FILE* out = std::fopen(path.c_str(), "wb");
      if (!out || std::fwrite(b.data(), 1, b.size(), out) != b.size() || std::fclose(out) != 0) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
    return 0;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ITERATIONS SEED [CORPUS_DIR]\n       %s --write-seeds DIR\n", argv[0], argv[0]);
    return 64;
  }
  const u64 iterations = std::stoull(argv[1]);
  Fuzzer f;
  f.rng.seed(std::stoull(argv[2]));
  if (argc > 3) f.corpus = read_corpus(argv[3]);
  // The corpus replayed as it is, each file the active slot of a registry.
  for (size_t i = 0; i < f.corpus.size(); i++) {
    if (!f.run_image(f.image_of(f.corpus[i], 1 + i, true))) {
      std::fprintf(stderr, "corpus file %zu fails\n", i);
      return 1;
    }
  }
  // Every generated seed is a valid state.
  for (int i = 0; i < 200; i++) {
    RegistryState s = f.generate();
    if (auto st = check_state(s); !st) {
      std::fprintf(stderr, "a generated seed is refused: %s\n", st.error().message().c_str());
      return 1;
    }
    f.corpus.push_back(serialize(s));
  }
  for (u64 n = 0; n < iterations; n++)
    if (!f.run_one()) {
      std::fprintf(stderr, "failed at iteration %llu\n", static_cast<unsigned long long>(n));
      return 1;
    }
  std::printf(
      "registry_fuzz: %llu inputs, %llu accepted, %llu rejected with one-line errors; repairs planned %llu, refused "
      "%llu\n",
      static_cast<unsigned long long>(iterations), static_cast<unsigned long long>(f.accepted),
      static_cast<unsigned long long>(f.rejected), static_cast<unsigned long long>(f.repairs),
      static_cast<unsigned long long>(f.refused_repairs));
  return 0;
}
