// Small byte helpers shared by every layer.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace hs {

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using i32 = int32_t;
using i64 = int64_t;

using Bytes = std::vector<u8>;
using ByteView = std::span<const u8>;

// Lower-case hex of a byte string ("" for empty).
std::string to_hex(ByteView b);
// Parses lower/upper-case hex; returns false on odd length or a non-hex digit.
bool from_hex(std::string_view s, Bytes& out);

// Unaligned little-endian loads/stores (x86-64 only, so host order is LE).
template <class T>
T load_le(const u8* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void store_le(u8* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace hs
