// The image descriptor: a small record the loader puts at the start of a
// linked payload's read-only region, so that the image mapped in a target
// says by itself what it is, without the payload file or hotsplice's
// registry. `hotsplice recover` (engine/recover.h) reads it to rebuild a
// lost or corrupt registry from the process. The payload file format is
// unchanged: the descriptor exists only in the mapped image.
//
// Layout (little-endian, 8-aligned, at the first byte of the R region):
//
//   0   magic    "HSIMAGE1"
//   8   u32      total size of the descriptor in bytes
//   12  u32      version (1)
//   16  u64 x 2  .livepatch.funcs: image offset, number of entries
//   32  u64 x 2  .eh_frame: image offset, size (0, 0: none)
//   48  u64 x 2  .modinfo: image offset, size (0, 0: none)
//   64  u64 x 16 hook sections, in kHookKinds order: image offset, slots
//   192 u8 + n   build-id, then depends, then object_depends: a length byte
//                and that many bytes each
//
// Offsets are from the image base; the function entries there are the
// relocated ones (name and new_addr pointers, old_addr and old_size filled
// in by the loader).
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

inline constexpr std::string_view kDescriptorMagic = "HSIMAGE1";
inline constexpr u32 kDescriptorVersion = 1;
inline constexpr size_t kDescriptorFixedSize = 192;
// The hook kinds, in the descriptor's order (as registry.h's HookRecord names them).
inline constexpr std::array<std::string_view, 8> kHookKinds = {"load",      "unload",    "preapply", "apply",
                                                               "postapply", "prerevert", "revert",   "postrevert"};

struct ImageSpan {
  u64 offset = 0, count = 0;  // count: entries, bytes or slots, as the field says
};

struct ImageDescriptor {
  ImageSpan funcs, eh_frame, modinfo;
  std::array<ImageSpan, kHookKinds.size()> hooks{};
  Bytes build_id, depends, object_depends;
};

// The size encode_descriptor() will produce for these build-ids (8-aligned).
size_t descriptor_size(const ImageDescriptor& d);
// The descriptor's bytes (descriptor_size(d) of them). Build-ids longer than
// 255 bytes are an error (BadPayload).
Result<Bytes> encode_descriptor(const ImageDescriptor& d);
// Reads a descriptor from bytes found in a target (untrusted): nullopt if
// the magic is not there; Corrupt if it is but the rest does not hold
// together (sizes, lengths, offsets past `image_size`).
Result<std::optional<ImageDescriptor>> parse_descriptor(ByteView bytes, u64 image_size);

}  // namespace hs
