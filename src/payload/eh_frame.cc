// Walking a linked payload's .eh_frame as the target's unwinder will, and
// the unwind block's encoding: see eh_frame.h.
#include "payload/eh_frame.h"

#include <cstring>
#include <map>

#include "elf/elf_file.h"

namespace hs {
namespace {

constexpr u8 kOmit = 0xff;
constexpr u8 kIndirect = 0x80;
constexpr u8 kPcRel = 0x10;

// Reads inside [pos, end) of the image, failing with the entry's offset.
class Cursor {
 public:
  Cursor(ByteView image, u64 base, u64 pos, u64 end, u64 table, std::string what)
      : img_(image), base_(base), pos_(pos), end_(end), table_(table), what_(std::move(what)) {}

  u64 pos() const { return pos_; }
  void seek(u64 p) { pos_ = p; }

  template <class T>
  Result<T> fixed() {
    if (end_ - pos_ < sizeof(T)) return short_read();
    T v = load_le<T>(img_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  Result<u64> uleb() {
    u64 v = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (pos_ >= end_ || shift > 63) return short_read();
      u8 b = img_[pos_++];
      v |= u64{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
  }
  Result<i64> sleb() {
    u64 v = 0;
    unsigned shift = 0;
    for (;;) {
      if (pos_ >= end_ || shift > 63) return short_read();
      u8 b = img_[pos_++];
      v |= u64{b & 0x7fu} << shift;
      shift += 7;
      if (!(b & 0x80)) {
        if (shift < 64 && (b & 0x40)) v |= ~u64{0} << shift;
        return static_cast<i64>(v);
      }
    }
  }
  Result<std::string_view> cstring() {
    const u8* p = img_.data() + pos_;
    const void* nul = std::memchr(p, 0, end_ - pos_);
    if (!nul) return short_read();
    std::string_view s(reinterpret_cast<const char*>(p), static_cast<const u8*>(nul) - p);
    pos_ += s.size() + 1;
    return s;
  }

  // A pointer in encoding `enc` (not omit), its address in the target.
  Result<u64> pointer(u8 enc, std::string_view field) {
    const u64 at = base_ + pos_;
    u64 v = 0;
    switch (enc & 0x0f) {
      case 0x00: v = HS_TRY(fixed<u64>()); break;
      case 0x01: v = HS_TRY(uleb()); break;
      case 0x02: v = HS_TRY(fixed<u16>()); break;
      case 0x03: v = HS_TRY(fixed<u32>()); break;
      case 0x04: v = HS_TRY(fixed<u64>()); break;
      case 0x09: v = static_cast<u64>(HS_TRY(sleb())); break;
      case 0x0a: v = static_cast<u64>(static_cast<i64>(HS_TRY(fixed<u16>()) ^ 0x8000) - 0x8000); break;
      case 0x0b: v = static_cast<u64>(static_cast<i64>(static_cast<i32>(HS_TRY(fixed<u32>())))); break;
      case 0x0c: v = HS_TRY(fixed<u64>()); break;
      default: return bad("{} uses pointer encoding {:#04x}, which the unwinder cannot read", field, enc);
    }
    switch (enc & 0x70) {
      case 0x00: break;
      case kPcRel: v += at; break;
      default: return bad("{} uses pointer encoding {:#04x} (not absolute or PC-relative)", field, enc);
    }
    return v;
  }

  u64 entry_offset() const { return entry_; }
  void set_entry(u64 e) { entry_ = e; }

  template <class... Args>
  std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args) const {
    return fail(ErrorKind::BadPayload, "{}: entry at +{:#x}: {}", what_, entry_ - table_,
                fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  std::unexpected<Error> short_read() const { return bad("runs past its end"); }

  ByteView img_;
  u64 base_, pos_, end_, table_;
  std::string what_;
  u64 entry_ = 0;
};

struct Cie {
  u8 fde_enc = 0;         // absptr unless 'R'
  u8 lsda_enc = kOmit;
  bool augmented = false;  // 'z'
};

}  // namespace

Result<EhFrameSummary> check_eh_frame(ByteView image, u64 base, u64 offset, u64 size) {
  const std::string what = ".eh_frame";
  if (offset > image.size() || size > image.size() - offset ||
      image.size() - offset - size < kEhFrameTerminatorSize)
    return fail(ErrorKind::Internal, "{} at {:#x}+{:#x} and its terminator are outside the image ({:#x} bytes)", what,
                offset, size, image.size());
  const u64 end = offset + size;
  if (load_le<u32>(image.data() + end) != 0)
    return fail(ErrorKind::Internal, "{}: no zero terminator after the table", what);
  const u64 image_end = base + image.size();
  auto in_image = [&](u64 a, u64 n) { return a >= base && a <= image_end && n <= image_end - a; };

  EhFrameSummary out;
  std::map<u64, Cie> cies;  // by image offset
  // Two passes: every CIE first (an FDE may name any CIE), then the FDEs.
  for (int pass = 0; pass < 2; ++pass) {
    for (u64 at = offset; at < end;) {
      Cursor c(image, base, at, end, offset, what);
      c.set_entry(at);
      const u32 len = HS_TRY(c.fixed<u32>());
      if (len == 0) break;  // a terminator: the unwinder stops here too
      if (len == 0xffffffff) return c.bad("64-bit DWARF lengths are not supported by the unwinder");
      if (len > end - c.pos()) return c.bad("its length {:#x} runs past the table", len);
      const u64 entry_end = c.pos() + len;
      Cursor e(image, base, c.pos(), entry_end, offset, what);
      e.set_entry(at);
      const u64 id_pos = e.pos();
      const u32 id = HS_TRY(e.fixed<u32>());
      if (id == 0 && pass == 0) {
        Cie cie;
        const u8 version = HS_TRY(e.fixed<u8>());
        if (version != 1 && version != 3) return e.bad("CIE version {} (1 or 3 expected)", version);
        std::string_view aug = HS_TRY(e.cstring());
        (void)HS_TRY(e.uleb());  // code alignment
        (void)HS_TRY(e.sleb());  // data alignment
        if (version == 1)
          (void)HS_TRY(e.fixed<u8>());
        else
          (void)HS_TRY(e.uleb());  // return address register
        if (!aug.empty()) {
          if (aug[0] != 'z')
            return e.bad("CIE augmentation \"{}\" is not understood by the unwinder", ElfFile::printable(aug));
          cie.augmented = true;
          const u64 aug_len = HS_TRY(e.uleb());
          if (aug_len > entry_end - e.pos()) return e.bad("CIE augmentation data runs past the entry");
          Cursor a(image, base, e.pos(), e.pos() + aug_len, offset, what);
          a.set_entry(at);
          for (char ch : aug.substr(1)) {
            switch (ch) {
              case 'R': cie.fde_enc = HS_TRY(a.fixed<u8>()); break;
              case 'L': cie.lsda_enc = HS_TRY(a.fixed<u8>()); break;
              case 'S': break;
              case 'P': {
                const u8 enc = HS_TRY(a.fixed<u8>());
                if (enc == kOmit) break;
                u64 p = HS_TRY(a.pointer(enc, "the CIE's personality routine"));
                if (enc & kIndirect) {
                  if (!in_image(p, 8))
                    return a.bad("the CIE's personality routine is read through {:#x}, outside the payload", p);
                  p = load_le<u64>(image.data() + (p - base));
                }
                if (p == 0) return a.bad("the CIE's personality routine is not set (address 0)");
                out.personality = true;
                break;
              }
              default:
                return e.bad("CIE augmentation \"{}\" is not understood by the unwinder", ElfFile::printable(aug));
            }
          }
        }
        if (cie.fde_enc == kOmit || (cie.fde_enc & kIndirect))
          return e.bad("FDE pointer encoding {:#04x} is not usable", cie.fde_enc);
        cies.emplace(at, cie);
        out.cies++;
      } else if (id != 0 && pass == 1) {
        // The CIE pointer counts back from its own position.
        if (id > id_pos - offset) return e.bad("its CIE pointer {:#x} points before the table", id);
        auto it = cies.find(id_pos - id);
        if (it == cies.end()) return e.bad("its CIE pointer {:#x} does not point at a CIE", id);
        const Cie& cie = it->second;
        const u64 pc = HS_TRY(e.pointer(cie.fde_enc, "the FDE's code address"));
        const u64 range = HS_TRY(e.pointer(cie.fde_enc & 0x0f, "the FDE's code range"));
        if (!in_image(pc, range))
          return e.bad("it describes code at {:#x}+{:#x}, outside the payload ({:#x}..{:#x})", pc, range, base,
                       image_end);
        if (cie.augmented) {
          const u64 aug_len = HS_TRY(e.uleb());
          if (aug_len > entry_end - e.pos()) return e.bad("FDE augmentation data runs past the entry");
          if (cie.lsda_enc != kOmit && aug_len > 0) {
            u64 lsda = HS_TRY(e.pointer(cie.lsda_enc, "the FDE's LSDA"));
            if (cie.lsda_enc & kIndirect) {
              if (!in_image(lsda, 8)) return e.bad("its LSDA is read through {:#x}, outside the payload", lsda);
              lsda = load_le<u64>(image.data() + (lsda - base));
            }
            if (lsda != 0) {
              if (!in_image(lsda, 1)) return e.bad("its LSDA at {:#x} is outside the payload", lsda);
              out.lsda = true;
            }
          }
        }
        if (range != 0 && out.probe_pc == 0) out.probe_pc = pc;
        out.fdes++;
      }
      at = entry_end;
    }
  }
  return out;
}

std::optional<UnwindBlock> decode_unwind_block(ByteView b) {
  if (b.size() < kUnwindBlockSize || std::memcmp(b.data(), kUnwindBlockMagic.data(), kUnwindBlockMagic.size()) != 0)
    return std::nullopt;
  UnwindBlock u;
  u.eh_frame = load_le<u64>(b.data() + kUnwindBlockEhFrameOff);
  u.eh_size = load_le<u64>(b.data() + kUnwindBlockEhSizeOff);
  u.probe_pc = load_le<u64>(b.data() + kUnwindBlockProbeOff);
  return u;
}

Bytes encode_unwind_block(const UnwindBlock& u) {
  Bytes b(kUnwindBlockSize, 0);
  std::memcpy(b.data(), kUnwindBlockMagic.data(), kUnwindBlockMagic.size());
  store_le<u64>(b.data() + kUnwindBlockEhFrameOff, u.eh_frame);
  store_le<u64>(b.data() + kUnwindBlockEhSizeOff, u.eh_size);
  store_le<u64>(b.data() + kUnwindBlockProbeOff, u.probe_pc);
  return b;
}

}  // namespace hs
