// Finding the FDE that covers an address in an object's .eh_frame: see
// eh_frame.h. A linear walk (CIE and FDE records as the LSB's .eh_frame
// format gives them), bounds-checked like the rest of the reader; each CIE's
// pointer encoding is read once.
#include "elf/eh_frame.h"

#include <map>

namespace hs {
namespace {

constexpr u8 kOmit = 0xff;
constexpr u8 kPcrel = 0x10;

// A cursor over the section's bytes; every read checks the bounds and a
// failed read leaves `ok` false.
struct Cursor {
  ByteView d;
  u64 at = 0;
  bool ok = true;

  bool have(u64 n) const { return ok && at <= d.size() && n <= d.size() - at; }
  template <class T>
  T fixed() {
    if (!have(sizeof(T))) {
      ok = false;
      return T{};
    }
    T v = load_le<T>(d.data() + at);
    at += sizeof(T);
    return v;
  }
  u64 uleb() {
    u64 v = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (!have(1) || shift > 63) {
        ok = false;
        return 0;
      }
      const u8 b = d[at++];
      v |= u64{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
  }
  i64 sleb() {
    i64 v = 0;
    unsigned shift = 0;
    for (;; shift += 7) {
      if (!have(1) || shift > 63) {
        ok = false;
        return 0;
      }
      const u8 b = d[at++];
      v |= static_cast<i64>(u64{b & 0x7fu} << shift);
      if (!(b & 0x80)) {
        if (shift + 7 < 64 && (b & 0x40)) v |= -(i64{1} << (shift + 7));
        return v;
      }
    }
  }
  // A pointer in encoding `enc` (DW_EH_PE_*), read at link-time address
  // `vaddr`; only absolute and pc-relative values (all .eh_frame holds).
  std::optional<u64> pointer(u8 enc, u64 vaddr) {
    u64 v = 0;
    switch (enc & 0x0f) {
      case 0x00: v = fixed<u64>(); break;
      case 0x01: v = uleb(); break;
      case 0x02: v = fixed<u16>(); break;
      case 0x03: v = fixed<u32>(); break;
      case 0x04: v = fixed<u64>(); break;
      case 0x09: v = static_cast<u64>(sleb()); break;
      case 0x0a: v = static_cast<u64>(static_cast<i64>(static_cast<int16_t>(fixed<u16>()))); break;
      case 0x0b: v = static_cast<u64>(static_cast<i64>(static_cast<int32_t>(fixed<u32>()))); break;
      case 0x0c: v = fixed<u64>(); break;
      default: ok = false; return std::nullopt;
    }
    if (!ok) return std::nullopt;
    switch (enc & 0x70) {
      case 0x00: return v;
      case kPcrel: return vaddr + v;
      default: return std::nullopt;
    }
  }
};

// The FDE pointer encoding a CIE at `off` gives ('R' in its augmentation;
// absolute 8-byte pointers without one). nullopt: unreadable.
std::optional<u8> cie_fde_encoding(ByteView d, u64 off, u64 end) {
  Cursor c{d.first(end), off};
  const u8 version = c.fixed<u8>();
  if (!c.ok || (version != 1 && version != 3)) return std::nullopt;
  std::string aug;
  for (u8 ch = c.fixed<u8>(); c.ok && ch != 0; ch = c.fixed<u8>()) aug.push_back(static_cast<char>(ch));
  if (!c.ok) return std::nullopt;
  (void)c.uleb();  // code alignment
  (void)c.sleb();  // data alignment
  if (version == 1)
    (void)c.fixed<u8>();
  else
    (void)c.uleb();  // return address register
  if (aug.empty() || aug[0] != 'z') return c.ok ? std::optional<u8>(0) : std::nullopt;
  (void)c.uleb();  // augmentation data length
  for (size_t i = 1; i < aug.size() && c.ok; ++i) {
    switch (aug[i]) {
      case 'R': return c.fixed<u8>();
      case 'L': (void)c.fixed<u8>(); break;
      case 'P': {
        const u8 enc = c.fixed<u8>();
        if (!c.pointer(enc & 0x7f, 0)) return std::nullopt;
        break;
      }
      case 'S':
      case 'B': break;
      default: return std::nullopt;
    }
  }
  return c.ok ? std::optional<u8>(0) : std::nullopt;
}

}  // namespace

namespace {

// Calls `each(range)` for every FDE until it returns true.
template <class F>
void walk_fdes(const ElfFile& elf, F&& each) {
  const auto idx = elf.find_section(".eh_frame");
  if (!idx || elf.sections()[*idx].sh_type == SHT_NOBITS) return;
  const ByteView d = elf.section_data(*idx);
  const u64 base = elf.sections()[*idx].sh_addr;
  std::map<u64, std::optional<u8>> cies;  // CIE offset -> its FDE encoding
  Cursor c{d};
  while (c.have(4)) {
    u64 len = c.fixed<u32>();
    if (len == 0) break;  // terminator
    if (len == 0xffffffff) len = c.fixed<u64>();
    if (!c.ok || !c.have(len) || len < 4) break;
    const u64 end = c.at + len;
    const u64 id_at = c.at;
    const u32 id = c.fixed<u32>();
    if (id != 0 && id <= id_at) {  // an FDE; `id` leads back to its CIE
      const u64 cie = id_at - id;
      auto it = cies.find(cie);
      if (it == cies.end()) {
        Cursor cc{d, cie};
        u64 clen = cc.fixed<u32>();
        std::optional<u8> enc;
        if (cc.ok && clen != 0 && clen != 0xffffffff && cc.have(clen) && clen >= 4 && cc.fixed<u32>() == 0)
          enc = cie_fde_encoding(d, cc.at, cie + 4 + clen);
        it = cies.emplace(cie, enc).first;
      }
      if (it->second && *it->second != kOmit) {
        Cursor f{d.first(end), c.at};
        const auto begin = f.pointer(*it->second, base + f.at);
        const auto size = f.pointer(*it->second & 0x0f, 0);
        if (begin && size && each(FdeRange{*begin, *size})) return;
      }
    }
    c.at = end;
  }
}

}  // namespace

std::optional<FdeRange> fde_covering(const ElfFile& elf, u64 vaddr) {
  std::optional<FdeRange> out;
  walk_fdes(elf, [&](const FdeRange& r) {
    if (vaddr >= r.begin && vaddr - r.begin < r.size) out = r;
    return out.has_value();
  });
  return out;
}

std::vector<FdeRange> fdes_overlapping(const ElfFile& elf, u64 lo, u64 hi) {
  std::vector<FdeRange> out;
  walk_fdes(elf, [&](const FdeRange& r) {
    if (r.begin < hi && r.begin + r.size > lo) out.push_back(r);
    return false;
  });
  return out;
}

}  // namespace hs
