// A symbol found in the target (its address there, size, object and type):
// what a symbol lookup hands the loader, shared by the elf, payload and
// engine layers.
#pragma once

#include <string>

#include "support/bytes.h"
#include "support/remote_ptr.h"

namespace hs {

// A function or object symbol found in the target.
struct TargetSymbol {
  RemoteAddr addr;
  u64 size = 0;
  std::string object;  // path of the object it was found in, for messages
  u8 type = 0;         // STT_* when known; for STT_TLS, addr is the offset in the object's TLS block
  // Non-empty: the symbol is an indirect function (STT_GNU_IFUNC) and this is
  // the implementation its resolver chose in the process (engine/ifunc.h),
  // named ("__strlen_avx2", or "libc.so.6+0x1a2b3c"); size is its extent.
  std::string implementation;
  std::string name;    // the symbol's own name in the table, when found in one ("parse.isra.0", "_ZN2ns1fEi")
};

}  // namespace hs
