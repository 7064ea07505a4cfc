// Chooses where a payload is mapped and names its mapping: see placement.h.
#include "engine/placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "arch/x86_64.h"

namespace hs {

Result<RemoteAddr> choose_base(const std::vector<MapEntry>& maps, RemoteRange object, u64 size) {
  constexpr u64 kPage = x86_64::kPageSize;
  constexpr u64 kGuard = 16 * kPage;
  constexpr u64 kLowest = 1ull << 20;
  // The largest distance that keeps every rel32 between the payload and the
  // object in range, a page to spare.
  constexpr u64 kReach = (1ull << 31) - kPage;
  // The top of the user address space (47 bits), less a page.
  constexpr u64 kHighest = 0x7ffffffff000ull;
  std::vector<RemoteRange> used;
  for (const auto& m : maps) used.push_back(m.range);
  std::sort(used.begin(), used.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  auto fits = [&](u64 b) {
    u64 lo = std::min(b, object.begin.value()), hi = std::max(b + size, object.end.value());
    return hi - lo <= kReach;
  };
  // Gaps between mappings, as [start, end).
  std::vector<std::pair<u64, u64>> gaps;
  u64 prev = kLowest;
  for (const auto& r : used) {
    if (r.begin.value() > prev) gaps.emplace_back(prev, r.begin.value());
    prev = std::max(prev, r.end.value());
  }
  gaps.emplace_back(prev, kHighest);
  // Below the object: the highest base in a gap that ends at or below it.
  std::optional<u64> best;
  for (const auto& [g0, g1] : gaps) {
    if (g1 > object.begin.value()) continue;
    if (g1 - g0 < size + 2 * kGuard) continue;
    u64 b = (g1 - kGuard - size) & ~(kPage - 1);
    if (fits(b) && (!best || b > *best)) best = b;
  }
  if (best) return RemoteAddr(*best);
  // Above it: the top of the lowest gap that starts above it, away from
  // whatever sits at the gap's bottom (a heap grows upwards).
  for (const auto& [g0, g1] : gaps) {
    if (g0 < object.end.value()) continue;
    if (g1 - g0 < size + 2 * kGuard) continue;
    u64 top = std::min(g1, object.begin.value() + kReach);
    if (top < g0 + kGuard + size) continue;
    u64 b = (top - kGuard - size) & ~(kPage - 1);
    if (b >= g0 + kGuard && fits(b)) return RemoteAddr(b);
  }
  return fail(ErrorKind::BadTarget, "no free address range of {:#x} bytes within reach of {:#x}-{:#x}", size,
              object.begin.value(), object.end.value());
}

std::string payload_mapping_name(std::string_view payload) { return fmt::format("hotsplice:{}", payload); }

}  // namespace hs
