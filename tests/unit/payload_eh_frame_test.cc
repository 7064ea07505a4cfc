// Unit tests of check_eh_frame (payload/eh_frame.h): a relocated .eh_frame
// walked as the target's unwinder will read it, with hand-made tables in a
// fake image, each malformation refused with its exact message; and the
// unwind block's encoding.
#include <gtest/gtest.h>

#include "payload/eh_frame.h"

namespace hs {
namespace {

constexpr u64 kBase = 0x10000;
constexpr u64 kEh = 0x40;  // the table's image offset

// An image of 0x100 bytes whose table at kEh is one CIE and one FDE as gcc
// writes them (pc-relative sdata4), describing code at offset `pc_off`,
// `range` bytes; `aug` is the CIE's augmentation ("zR" or "zPLR"), and with
// P the personality is read through the 8-byte slot at offset `slot`
// holding `personality`; with L the FDE's LSDA is at offset `lsda`.
struct Table {
  std::string aug = "zR";
  u64 pc_off = 0x10, range = 0x20;
  u64 slot = 0xf0, personality = 0x7f0000001000;
  u64 lsda = 0xe0;
  i64 cie_pointer_delta = 0;  // added to the FDE's CIE pointer
  bool terminator = true;
};

Bytes image_of(const Table& t) {
  Bytes img(0x100, 0);
  u64 at = kEh;
  auto u8_ = [&](u8 v) { img[at++] = v; };
  auto u32_ = [&](u32 v) {
    store_le<u32>(img.data() + at, v);
    at += 4;
  };
  auto pcrel4 = [&](u64 target_off) {
    u32_(static_cast<u32>(static_cast<i64>(target_off) - static_cast<i64>(at)));
  };
  // CIE
  const u64 cie = at;
  u32_(0);  // length, patched below
  u32_(0);  // CIE id
  u8_(1);   // version
  for (char c : t.aug) u8_(static_cast<u8>(c));
  u8_(0);
  u8_(1);     // code alignment
  u8_(0x78);  // data alignment -8
  u8_(16);    // return address register
  const u64 auglen_at = at;
  u8_(0);
  const u64 aug_start = at;
  for (char c : t.aug.substr(1)) {
    if (c == 'P') {
      u8_(0x9b);  // indirect | pcrel | sdata4
      pcrel4(t.slot);
    } else if (c == 'L') {
      u8_(0x1b);
    } else if (c == 'R') {
      u8_(0x1b);
    }
  }
  img[auglen_at] = static_cast<u8>(at - aug_start);
  while ((at - cie) % 4 != 0) u8_(0);
  store_le<u32>(img.data() + cie, static_cast<u32>(at - cie - 4));
  // FDE
  const u64 fde = at;
  u32_(0);
  u32_(static_cast<u32>(static_cast<i64>(at - cie) + t.cie_pointer_delta));
  pcrel4(t.pc_off);
  u32_(static_cast<u32>(t.range));
  if (t.aug.find('L') != std::string::npos) {
    u8_(4);
    pcrel4(t.lsda);
  } else {
    u8_(0);
  }
  while ((at - fde) % 4 != 0) u8_(0);
  store_le<u32>(img.data() + fde, static_cast<u32>(at - fde - 4));
  if (!t.terminator) store_le<u32>(img.data() + at, 0xdead);
  store_le<u64>(img.data() + t.slot, t.personality);
  return img;
}

u64 table_size(const Bytes& img) {
  u64 at = kEh;
  while (u32 len = load_le<u32>(img.data() + at)) {
    if (len == 0xdead) break;
    at += 4 + len;
  }
  return at - kEh;
}

Result<EhFrameSummary> check(const Table& t) {
  Bytes img = image_of(t);
  return check_eh_frame(img, kBase, kEh, table_size(img));
}

std::string error_of(const Table& t) {
  auto r = check(t);
  return r ? "(accepted)" : r.error().message();
}

TEST(PayloadEhFrame, GccShapedTableIsAcceptedWithAProbePc) {
  auto r = check({});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->cies, 1u);
  EXPECT_EQ(r->fdes, 1u);
  EXPECT_EQ(r->probe_pc, kBase + 0x10);
  EXPECT_FALSE(r->personality);
}

TEST(PayloadEhFrame, CxxShapedTableWithPersonalityAndLsda) {
  Table t;
  t.aug = "zPLR";
  auto r = check(t);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->personality);
  EXPECT_TRUE(r->lsda);
}

TEST(PayloadEhFrame, EmptyFdeGivesNoProbePc) {
  Table t;
  t.range = 0;
  auto r = check(t);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->probe_pc, 0u);
}

TEST(PayloadEhFrame, MalformedTablesAreRefusedNamingTheEntry) {
  Table out;
  out.range = 0x1000;
  EXPECT_EQ(error_of(out),
            ".eh_frame: entry at +0x14: it describes code at 0x10010+0x1000, outside the payload (0x10000..0x10100)");
  Table cie_ptr;
  cie_ptr.cie_pointer_delta = 4;
  EXPECT_EQ(error_of(cie_ptr), ".eh_frame: entry at +0x14: its CIE pointer 0x1c points before the table");
  Table cie_ptr2;
  cie_ptr2.cie_pointer_delta = -4;
  EXPECT_EQ(error_of(cie_ptr2), ".eh_frame: entry at +0x14: its CIE pointer 0x14 does not point at a CIE");
  Table aug;
  aug.aug = "zX";
  EXPECT_EQ(error_of(aug), ".eh_frame: entry at +0x0: CIE augmentation \"zX\" is not understood by the unwinder");
  Table unset;
  unset.aug = "zPR";
  unset.personality = 0;
  EXPECT_EQ(error_of(unset), ".eh_frame: entry at +0x0: the CIE's personality routine is not set (address 0)");
  Bytes img = image_of(Table{.aug = "zPR", .slot = 0xf0});
  // Point the personality slot outside: rewrite its pcrel4 (CIE: 4+4+1+"zPR\0"+3+1 augmentation length, 1 encoding).
  const u64 field = kEh + 4 + 4 + 1 + 4 + 3 + 1 + 1;
  store_le<u32>(img.data() + field, static_cast<u32>(0x200 - field));
  auto r = check_eh_frame(img, kBase, kEh, table_size(img));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(),
            ".eh_frame: entry at +0x0: the CIE's personality routine is read through 0x10200, outside the payload");
  Table lsda;
  lsda.aug = "zPLR";
  lsda.lsda = 0x180;
  EXPECT_EQ(error_of(lsda), ".eh_frame: entry at +0x1c: its LSDA at 0x10180 is outside the payload");
}

TEST(PayloadEhFrame, TableWithoutTerminatorIsAnInternalError) {
  Table t;
  t.terminator = false;
  auto r = check(t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind(), ErrorKind::Internal);
  EXPECT_EQ(r.error().message(), ".eh_frame: no zero terminator after the table");
}

TEST(PayloadEhFrame, UnwindBlockRoundTrips) {
  Bytes b = encode_unwind_block({0x1234, 0x80, 0x1010});
  ASSERT_EQ(b.size(), kUnwindBlockSize);
  auto u = decode_unwind_block(b);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->eh_frame, 0x1234u);
  EXPECT_EQ(u->eh_size, 0x80u);
  EXPECT_EQ(u->probe_pc, 0x1010u);
  b[0] = 'X';
  EXPECT_FALSE(decode_unwind_block(b));
  EXPECT_FALSE(decode_unwind_block(ByteView(b).first(8)));
}

}  // namespace
}  // namespace hs
