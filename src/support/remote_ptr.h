// An address in the target process. It is deliberately not a pointer: it has
// arithmetic and comparisons but no dereference, so reading target memory
// through a host pointer cannot compile. (rr's remote_ptr, for the same reason.)
#pragma once

#include <compare>
#include <cstdint>

#include <fmt/format.h>

namespace hs {

class RemoteAddr {
 public:
  constexpr RemoteAddr() = default;
  constexpr explicit RemoteAddr(uint64_t v) : v_(v) {}

  constexpr uint64_t value() const { return v_; }
  constexpr bool is_null() const { return v_ == 0; }

  constexpr RemoteAddr operator+(int64_t d) const { return RemoteAddr(v_ + static_cast<uint64_t>(d)); }
  constexpr RemoteAddr operator-(int64_t d) const { return RemoteAddr(v_ - static_cast<uint64_t>(d)); }
  constexpr RemoteAddr& operator+=(int64_t d) { v_ += static_cast<uint64_t>(d); return *this; }
  // Signed distance a - b.
  constexpr int64_t operator-(RemoteAddr o) const { return static_cast<int64_t>(v_ - o.v_); }

  constexpr auto operator<=>(const RemoteAddr&) const = default;

 private:
  uint64_t v_ = 0;
};

// Half-open range [begin, end) of target addresses.
struct RemoteRange {
  RemoteAddr begin;
  RemoteAddr end;
  constexpr uint64_t size() const { return end.value() - begin.value(); }
  constexpr bool contains(RemoteAddr a) const { return a >= begin && a < end; }
  constexpr bool overlaps(const RemoteRange& o) const { return begin < o.end && o.begin < end; }
};

}  // namespace hs

template <>
struct fmt::formatter<hs::RemoteAddr> : fmt::formatter<uint64_t> {
  auto format(hs::RemoteAddr a, format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{:#x}", a.value());
  }
};
