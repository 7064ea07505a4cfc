// The reader's integer rules in one place, for elf_file.cc and notes.cc:
// bounds compared before any pointer is formed, structures copied out of
// unaligned file bytes, and BadPayload errors. Internal to src/elf.
#pragma once

#include <cstring>
#include <utility>

#include "support/bytes.h"
#include "support/error.h"

namespace hs::elf_detail {

template <class... Args>
std::unexpected<Error> bad(fmt::format_string<Args...> f, Args&&... args) {
  return fail(ErrorKind::BadPayload, f, std::forward<Args>(args)...);
}

// [off, off + len) lies within [0, size); never overflows.
constexpr bool in_bounds(u64 off, u64 len, u64 size) { return !(off > size || len > size - off); }

template <class T>
T copy_out(ByteView data, u64 off) {  // the caller has checked in_bounds(off, sizeof(T), size)
  T v;
  std::memcpy(&v, data.data() + off, sizeof v);
  return v;
}

// Only for values below 2^63 and a power-of-two `a` (file offsets), so this cannot overflow.
constexpr u64 align_up(u64 v, u64 a) { return (v + a - 1) & ~(a - 1); }

}  // namespace hs::elf_detail
