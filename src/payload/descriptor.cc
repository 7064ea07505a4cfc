// The image descriptor (see descriptor.h): writing it, and reading it back
// from bytes a target may have changed, with every length and offset checked.
#include "payload/descriptor.h"

#include <algorithm>

#include "payload/payload.h"

namespace hs {
namespace {

constexpr size_t kAlign = 8;

size_t tail_size(const ImageDescriptor& d) {
  return 3 + d.build_id.size() + d.depends.size() + d.object_depends.size();
}

}  // namespace

size_t descriptor_size(const ImageDescriptor& d) {
  return (kDescriptorFixedSize + tail_size(d) + kAlign - 1) & ~(kAlign - 1);
}

Result<Bytes> encode_descriptor(const ImageDescriptor& d) {
  for (const Bytes* b : {&d.build_id, &d.depends, &d.object_depends})
    if (b->size() > 255) return fail(ErrorKind::BadPayload, "build-id of {:#x} bytes is longer than 0xff", b->size());
  Bytes out(descriptor_size(d), 0);
  u8* p = out.data();
  std::copy(kDescriptorMagic.begin(), kDescriptorMagic.end(), p);
  store_le<u32>(p + 8, static_cast<u32>(out.size()));
  store_le<u32>(p + 12, kDescriptorVersion);
  size_t at = 16;
  auto span = [&](const ImageSpan& s) {
    store_le<u64>(p + at, s.offset);
    store_le<u64>(p + at + 8, s.count);
    at += 16;
  };
  span(d.funcs);
  span(d.eh_frame);
  span(d.modinfo);
  for (const ImageSpan& h : d.hooks) span(h);
  for (const Bytes* b : {&d.build_id, &d.depends, &d.object_depends}) {
    p[at++] = static_cast<u8>(b->size());
    std::copy(b->begin(), b->end(), p + at);
    at += b->size();
  }
  return out;
}

Result<std::optional<ImageDescriptor>> parse_descriptor(ByteView b, u64 image_size) {
  if (b.size() < kDescriptorFixedSize || !std::equal(kDescriptorMagic.begin(), kDescriptorMagic.end(), b.begin()))
    return std::optional<ImageDescriptor>();
  const u32 size = load_le<u32>(b.data() + 8), version = load_le<u32>(b.data() + 12);
  if (version != kDescriptorVersion)
    return fail(ErrorKind::Corrupt, "image descriptor version {} (this hotsplice reads {})", version,
                kDescriptorVersion);
  if (size < kDescriptorFixedSize + 3 || size > b.size())
    return fail(ErrorKind::Corrupt, "image descriptor size {:#x} is outside [{:#x}, {:#x}]", size,
                kDescriptorFixedSize + 3, b.size());
  ImageDescriptor d;
  size_t at = 16;
  auto span = [&](ImageSpan& s, u64 unit, std::string_view what) -> Status {
    s.offset = load_le<u64>(b.data() + at);
    s.count = load_le<u64>(b.data() + at + 8);
    at += 16;
    if (s.offset > image_size || s.count > (image_size - s.offset) / unit)
      return fail(ErrorKind::Corrupt, "image descriptor: {} at {:#x} ({:#x} x {:#x} bytes) is past the image ({:#x})",
                  what, s.offset, s.count, unit, image_size);
    return {};
  };
  HS_CHECK(span(d.funcs, kFuncSize, ".livepatch.funcs"));
  HS_CHECK(span(d.eh_frame, 1, ".eh_frame"));
  HS_CHECK(span(d.modinfo, 1, ".modinfo"));
  for (size_t i = 0; i < d.hooks.size(); i++) HS_CHECK(span(d.hooks[i], kHookSlotSize, kHookKinds[i]));
  for (Bytes* out : {&d.build_id, &d.depends, &d.object_depends}) {
    if (at >= size) return fail(ErrorKind::Corrupt, "image descriptor: build-ids run past its size {:#x}", size);
    const size_t n = b[at++];
    if (n > size - at) return fail(ErrorKind::Corrupt, "image descriptor: build-ids run past its size {:#x}", size);
    out->assign(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n));
    at += n;
  }
  return std::optional<ImageDescriptor>(std::move(d));
}

}  // namespace hs
