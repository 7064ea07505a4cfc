// What the unit tests of the engine's pure parts (plan.h, code_check.h) drive
// them with: a fake target memory that counts its reads, and a registry
// payload replacing one function of a made-up object, with the bytes of a
// jump or a call between two addresses.
#pragma once

#include <sys/mman.h>

#include <map>
#include <string>
#include <utility>

#include "arch/x86_64.h"
#include "engine/plan.h"

namespace hs::test {

// Target memory: the bytes put there, anything else unreadable.
class FakeMemory {
 public:
  void put(u64 addr, const Bytes& b) {
    for (size_t i = 0; i < b.size(); i++) bytes_[addr + i] = b[i];
  }
  MemoryReader reader() const {
    return [this](RemoteAddr at, size_t len) -> Result<Bytes> {
      reads_++;
      Bytes out;
      for (u64 a = at.value(); a < at.value() + len; a++) {
        auto it = bytes_.find(a);
        if (it == bytes_.end()) return fail(ErrorKind::TargetGone, "cannot read {:#x}", a);
        out.push_back(it->second);
      }
      return out;
    };
  }
  // Calls of reader()'s function so far (failed ones too).
  int reads() const { return reads_; }

 private:
  std::map<u64, u8> bytes_;
  mutable int reads_ = 0;
};

inline constexpr u64 kFn = 0x401000;      // the function patched
inline constexpr u64 kOther = 0x401800;   // another function of the object
inline constexpr u64 kCaller = 0x402000;  // a function calling kFn (the call at kCaller + 4)
inline const Bytes kPrologue = {0x55, 0x48, 0x89, 0xe5, 0x41, 0x54, 0x53, 0x48, 0x83, 0xec, 0x10, 0xc3};

inline Bytes jump(u64 from, u64 to) { return *x86_64::make_jump(RemoteAddr(from), RemoteAddr(to)); }

inline Bytes call(u64 at, u64 to) {
  Bytes b(5);
  b[0] = x86_64::kCallRel32;
  store_le<i32>(b.data() + 1, *x86_64::branch_rel32_displacement(at, to));
  return b;
}

inline Bytes rel32(u64 at, u64 to) {
  const Bytes c = call(at, to);
  return Bytes(c.begin() + 1, c.end());
}

// A payload replacing kFn ("f") with code at `new_addr`, its jump written
// after `patch_offset` bytes, the call at kCaller + 4 recorded.
inline PayloadRecord fake_payload(std::string name, u64 base, u64 new_addr, u32 patch_offset = 0) {
  PayloadRecord p;
  p.name = std::move(name);
  p.object_path = "/bin/t";
  p.base = base;
  p.size = 0x3000;
  p.regions.push_back({0, 0x1000, PROT_READ | PROT_EXEC});
  p.regions.push_back({0x1000, 0x1000, PROT_READ});
  FuncState f;
  f.name = "f";
  f.old_addr = kFn;
  f.old_size = static_cast<u32>(kPrologue.size());
  f.new_addr = new_addr;
  f.new_size = 0x40;
  f.patch_offset = patch_offset;
  f.insn = jump(f.site(), new_addr);
  f.call_sites = {kCaller + 4};
  p.funcs.push_back(f);
  return p;
}

}  // namespace hs::test
