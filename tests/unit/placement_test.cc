// Unit tests of where a payload is mapped (engine/placement.h): a gap below
// the object is preferred, above it when there is no room below, nothing is
// refused with its message; and the name of the mapping.
#include <gtest/gtest.h>

#include <vector>

#include "engine/placement.h"

namespace hs {
namespace {

MapEntry mapping(u64 begin, u64 end) {
  MapEntry m;
  m.range = {RemoteAddr(begin), RemoteAddr(end)};
  return m;
}

RemoteRange range(u64 begin, u64 end) { return {RemoteAddr(begin), RemoteAddr(end)}; }

constexpr u64 kPage = 0x1000, kGuard = 16 * kPage, kSize = 0x3000;

TEST(ChooseBase, TheHighestGapBelowTheObjectIsPreferred) {
  // The object, a library far below it and a mapping just below it: the
  // payload goes right under the object, 16 pages away from it.
  const std::vector<MapEntry> maps = {mapping(0x40000000, 0x40010000), mapping(0x3f000000, 0x3f100000),
                                      mapping(0x20000000, 0x20100000), mapping(0x40010000, 0x40100000)};
  auto base = choose_base(maps, range(0x40000000, 0x40010000), kSize);
  ASSERT_TRUE(base.has_value()) << base.error().message();
  EXPECT_EQ(base->value(), 0x40000000 - kGuard - kSize);
}

TEST(ChooseBase, AGapBelowTooSmallForTheGuardsIsSkipped) {
  // Below the object only a hole of size + one guard: not enough (a guard
  // on both sides); the next gap down is used, at its top.
  const u64 hole_begin = 0x40000000 - kSize - kGuard;
  const std::vector<MapEntry> maps = {mapping(0x3f000000, hole_begin), mapping(0x40000000, 0x40010000)};
  auto base = choose_base(maps, range(0x40000000, 0x40010000), kSize);
  ASSERT_TRUE(base.has_value()) << base.error().message();
  EXPECT_EQ(base->value(), 0x3f000000 - kGuard - kSize);
}

TEST(ChooseBase, AboveTheObjectWhenThereIsNoRoomBelow) {
  // Everything from 1 MiB up to the object is taken, and a heap sits right
  // above it: the payload goes as high as rel32 reach allows, away from the
  // heap, page-aligned.
  const u64 obj_begin = 0x200000, obj_end = 0x210000;
  const std::vector<MapEntry> maps = {mapping(0x100000, obj_begin), mapping(obj_begin, obj_end),
                                      mapping(obj_end, 0x300000)};
  auto base = choose_base(maps, range(obj_begin, obj_end), kSize);
  ASSERT_TRUE(base.has_value()) << base.error().message();
  const u64 reach = (1ull << 31) - kPage;
  EXPECT_EQ(base->value(), (obj_begin + reach - kGuard - kSize) & ~(kPage - 1));
  EXPECT_LE(base->value() + kSize - obj_begin, reach);
  EXPECT_GE(base->value(), 0x300000 + kGuard);
}

TEST(ChooseBase, NothingWithinReachIsRefused) {
  // Taken: everything below the object, and 4 GiB above it.
  const u64 obj_begin = 0x100000000, obj_end = 0x100010000;
  const std::vector<MapEntry> maps = {mapping(0x100000, obj_begin), mapping(obj_begin, obj_end),
                                      mapping(obj_end, obj_begin + (4ull << 30))};
  auto base = choose_base(maps, range(obj_begin, obj_end), kSize);
  ASSERT_FALSE(base.has_value());
  EXPECT_EQ(base.error().kind(), ErrorKind::BadTarget);
  EXPECT_EQ(base.error().message(),
            "no free address range of 0x3000 bytes within reach of 0x100000000-0x100010000");
}

TEST(ChooseBase, AnObjectTooFarAboveTheFreeSpaceIsRefused) {
  // The only gap below ends more than 2 GiB under the object's end.
  const u64 obj_begin = 0x200000000, obj_end = 0x200010000;
  const std::vector<MapEntry> maps = {mapping(0x180000000, obj_begin), mapping(obj_begin, obj_end),
                                      mapping(obj_end, 0x7ffffffff000)};
  auto base = choose_base(maps, range(obj_begin, obj_end), kSize);
  ASSERT_FALSE(base.has_value());
  EXPECT_EQ(base.error().message(),
            "no free address range of 0x3000 bytes within reach of 0x200000000-0x200010000");
}

TEST(PayloadMappingName, IsHotspliceColonName) { EXPECT_EQ(payload_mapping_name("fix-1"), "hotsplice:fix-1"); }

}  // namespace
}  // namespace hs
