// hs_callcost: what a patched call costs compared with calling the
// replacement directly.
//
// Two pairs of functions with identical bodies: tiny (x * 3 + 1, the worst
// case: the call is all there is) and small (a 16-step FNV-1a, ~20 ns). The
// old_* ones are what gets patched, the new_* ones are called directly.
// loop_old / loop_new call one of them N times (direct `call rel32`).
//
//   hs_callcost selfpatch MODE FN N
//       (MODE: direct | patched | redirected | unpatched)
//       For callgrind. `patched` first writes at old_FN's entry exactly the
//       bytes hotsplice's engine writes there (hs::x86_64::patch_offset and
//       make_jump from src/arch: a `jmp rel32` to new_FN, after an endbr64 if
//       any), then runs loop_old; `redirected` also points loop_old's
//       `call old_FN` at new_FN, as the engine does with the direct calls it
//       finds (engine/call_sites.h); `direct` runs loop_new; `unpatched` runs
//       loop_old unpatched. Run with --toggle-collect=loop_old or loop_new.
//   hs_callcost time FN N ROUNDS
//       ns/call of unpatched old, direct new, self-patched old (jump to
//       new_FN) and self-patched old jumping to a copy of new_FN ~1 GiB away
//       (where a payload would be); each alternated with rounds of direct
//       calls, best of ROUNDS: "unpatched=<ns> direct_a=<ns> patched=<ns>
//       direct_b=<ns> far=<ns> direct_c=<ns>" (direct_X: the direct rounds
//       run alongside the variant before it).
//   hs_callcost serve
//       Line protocol for the real engine: "ready <pid>", then
//       "run old|new tiny|small N" -> "ns=<ns per call> acc=<sum>",
//       "ping" -> "pong", "quit" / EOF -> exit. The driver patches old_* with
//       `hotsplice load` (payload bench/patches/callcost_fix.c).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "arch/x86_64.h"

extern "C" {

__attribute__((noipa)) int old_tiny(int x) { return x * 3 + 1; }
__attribute__((noipa)) int new_tiny(int x) { return x * 3 + 1; }

__attribute__((noipa)) int old_small(int x) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++) {
    h ^= static_cast<uint8_t>(x >> ((i & 3) * 8)) + static_cast<uint32_t>(i);
    h *= 16777619u;
  }
  return static_cast<int>(h);
}
__attribute__((noipa)) int new_small(int x) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++) {
    h ^= static_cast<uint8_t>(x >> ((i & 3) * 8)) + static_cast<uint32_t>(i);
    h *= 16777619u;
  }
  return static_cast<int>(h);
}

__attribute__((noipa)) long loop_old_tiny(long n) {
  long acc = 0;
  for (long i = 0; i < n; i++) acc += old_tiny(static_cast<int>(i));
  return acc;
}
__attribute__((noipa)) long loop_new_tiny(long n) {
  long acc = 0;
  for (long i = 0; i < n; i++) acc += new_tiny(static_cast<int>(i));
  return acc;
}
__attribute__((noipa)) long loop_old_small(long n) {
  long acc = 0;
  for (long i = 0; i < n; i++) acc += old_small(static_cast<int>(i));
  return acc;
}
__attribute__((noipa)) long loop_new_small(long n) {
  long acc = 0;
  for (long i = 0; i < n; i++) acc += new_small(static_cast<int>(i));
  return acc;
}

}  // extern "C"

namespace {

using Loop = long (*)(long);

struct Pair {
  void* old_fn;
  void* new_fn;
  Loop loop_old;
  Loop loop_new;
};

bool pick(const char* fn, Pair& p) {
  if (std::strcmp(fn, "tiny") == 0) {
    p = {reinterpret_cast<void*>(&old_tiny), reinterpret_cast<void*>(&new_tiny), loop_old_tiny, loop_new_tiny};
    return true;
  }
  if (std::strcmp(fn, "small") == 0) {
    p = {reinterpret_cast<void*>(&old_small), reinterpret_cast<void*>(&new_small), loop_old_small, loop_new_small};
    return true;
  }
  return false;
}

double now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Writes what the engine writes at a patched function: the jump produced by
// the same arch code, at the same offset (after endbr64).
bool self_patch(const Pair& p, void* target = nullptr) {
  auto site = reinterpret_cast<uintptr_t>(p.old_fn);
  const auto* head = reinterpret_cast<const hs::u8*>(site);
  size_t off = hs::x86_64::patch_offset(hs::ByteView(head, 4));
  auto to = reinterpret_cast<uintptr_t>(target ? target : p.new_fn);
  auto jmp = hs::x86_64::make_jump(hs::RemoteAddr(site + off), hs::RemoteAddr(to));
  if (!jmp) return false;
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo = (site + off) & ~static_cast<uintptr_t>(page - 1);
  uintptr_t hi = (site + off + jmp->size() + static_cast<uintptr_t>(page) - 1) & ~static_cast<uintptr_t>(page - 1);
  if (mprotect(reinterpret_cast<void*>(lo), hi - lo, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return false;
  std::memcpy(reinterpret_cast<void*>(site + off), jmp->data(), jmp->size());
  return mprotect(reinterpret_cast<void*>(lo), hi - lo, PROT_READ | PROT_EXEC) == 0;
}

// What the engine does to the direct calls it finds: loop_old's
// `call old_FN` (E8 rel32; the loop is our own -O2 code, so its bytes are
// not decoded here) is pointed at new_FN. Returns how many were rewritten.
int redirect_calls(const Pair& p) {
  auto loop = reinterpret_cast<uintptr_t>(p.loop_old);
  auto old_fn = reinterpret_cast<uintptr_t>(p.old_fn), new_fn = reinterpret_cast<uintptr_t>(p.new_fn);
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t lo = loop & ~static_cast<uintptr_t>(page - 1);
  if (mprotect(reinterpret_cast<void*>(lo), 2 * static_cast<size_t>(page), PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
    return 0;
  int n = 0;
  for (uintptr_t a = loop; a < loop + 64; a++) {
    auto* b = reinterpret_cast<hs::u8*>(a);
    int32_t rel;
    std::memcpy(&rel, b + 1, sizeof rel);
    if (b[0] != 0xE8 || a + 5 + static_cast<uintptr_t>(static_cast<intptr_t>(rel)) != old_fn) continue;
    rel = static_cast<int32_t>(static_cast<intptr_t>(new_fn - (a + 5)));
    std::memcpy(b + 1, &rel, sizeof rel);
    n++;
  }
  mprotect(reinterpret_cast<void*>(lo), 2 * static_cast<size_t>(page), PROT_READ | PROT_EXEC);
  return n;
}

// A copy of new_FN's code (both are position-independent: no memory
// operands) in an anonymous mapping about 1 GiB below the executable, the
// kind of distance a payload mapping has from the code it patches.
void* far_copy(const Pair& p) {
  const size_t len = 4096;
  auto here = reinterpret_cast<uintptr_t>(p.new_fn);
  for (uintptr_t d = 1ull << 30; d >= (1ull << 24); d >>= 1) {
    void* want = reinterpret_cast<void*>((here - d) & ~static_cast<uintptr_t>(len - 1));
    void* m = mmap(want, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED) continue;
    std::memcpy(m, p.new_fn, 256);
    if (mprotect(m, len, PROT_READ | PROT_EXEC) != 0) return nullptr;
    return m;
  }
  return nullptr;
}

double time_loop(Loop loop, long n, long& acc) {
  double t0 = now_ns();
  acc += loop(n);
  return (now_ns() - t0) / static_cast<double>(n);
}

int usage() {
  std::fprintf(stderr,
               "usage: hs_callcost selfpatch direct|patched|redirected|unpatched tiny|small N\n"
               "       hs_callcost time tiny|small N ROUNDS\n"
               "       hs_callcost serve\n");
  return 64;
}

int serve() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("ready %d\n", static_cast<int>(getpid()));
  char line[256];
  while (std::fgets(line, sizeof line, stdin)) {
    line[std::strcspn(line, "\r\n")] = 0;
    char which[16] = {}, fn[16] = {};
    long n = 0;
    Pair p{};
    if (std::sscanf(line, "run %15s %15s %ld", which, fn, &n) == 3 && n > 0 && pick(fn, p)) {
      long acc = 0;
      double ns = time_loop(std::strcmp(which, "old") == 0 ? p.loop_old : p.loop_new, n, acc);
      std::printf("ns=%.4f acc=%ld\n", ns, acc);
    } else if (std::strcmp(line, "ping") == 0) {
      std::printf("pong\n");
    } else if (std::strcmp(line, "quit") == 0) {
      break;
    } else {
      std::printf("error unknown command %s\n", line);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return serve();
  Pair p{};
  if (argc == 5 && std::strcmp(argv[1], "selfpatch") == 0 && pick(argv[3], p)) {
    long n = std::atol(argv[4]);
    std::string mode = argv[2];
    long acc = 0;
    if (mode == "patched" || mode == "redirected") {
      if (!self_patch(p) || (mode == "redirected" && redirect_calls(p) != 1)) {
        std::fprintf(stderr, "hs_callcost: self-patching failed\n");
        return 1;
      }
      acc = p.loop_old(n);
    } else if (mode == "unpatched") {
      acc = p.loop_old(n);
    } else if (mode == "direct") {
      acc = p.loop_new(n);
    } else {
      return usage();
    }
    std::printf("acc=%ld\n", acc);
    return 0;
  }
  if (argc == 5 && std::strcmp(argv[1], "time") == 0 && pick(argv[2], p)) {
    long n = std::atol(argv[3]);
    int rounds = std::atoi(argv[4]);
    long acc = 0;
    // Three phases, each alternating its variant with the direct call, so
    // each variant is compared with direct rounds run at the same time
    // (the machine's load changes over seconds).
    double best_unpatched = 1e9, best_adjacent = 1e9, best_far = 1e9;
    double direct_a = 1e9, direct_b = 1e9, direct_c = 1e9;
    for (int r = 0; r < rounds; r++) {
      best_unpatched = std::min(best_unpatched, time_loop(p.loop_old, n, acc));
      direct_a = std::min(direct_a, time_loop(p.loop_new, n, acc));
    }
    if (!self_patch(p)) {
      std::fprintf(stderr, "hs_callcost: self-patching failed\n");
      return 1;
    }
    for (int r = 0; r < rounds; r++) {
      best_adjacent = std::min(best_adjacent, time_loop(p.loop_old, n, acc));
      direct_b = std::min(direct_b, time_loop(p.loop_new, n, acc));
    }
    void* far = far_copy(p);
    if (!far || !self_patch(p, far)) {
      std::fprintf(stderr, "hs_callcost: self-patching to a far copy failed\n");
      return 1;
    }
    for (int r = 0; r < rounds; r++) {
      best_far = std::min(best_far, time_loop(p.loop_old, n, acc));
      direct_c = std::min(direct_c, time_loop(p.loop_new, n, acc));
    }
    std::printf("unpatched=%.4f direct_a=%.4f patched=%.4f direct_b=%.4f far=%.4f direct_c=%.4f acc=%ld\n",
                best_unpatched, direct_a, best_adjacent, direct_b, best_far, direct_c, acc);
    return 0;
  }
  return usage();
}
