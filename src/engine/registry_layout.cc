// The registry's raw layout (registry.h): the header page and the two slots,
// their checksum and generation, and read_registry, which reads a state back
// through any reader (a process, or the fuzzer's bytes) with every header
// field, the active slot's length, checksum and generation checked before the
// contents are parsed and bounded (deserialize, check_state).
#include <cstring>

#include "engine/registry.h"

namespace hs {

namespace {

constexpr u64 kSlotCapacity = (Registry::kCapacity - kRegistryHeaderSize) / 2;

}  // namespace

std::string registry_header_problem(ByteView page, u64 self) {
  if (page.size() != kRegistryHeaderSize) return "header unreadable";
  auto h = load_le<RegistryHeader>(page.data());
  if (std::memcmp(h.magic, kRegistryMagic, sizeof kRegistryMagic) != 0) return "bad magic";
  if (h.version != 1) return fmt::format("header version {}", h.version);
  if (h.header_size != kRegistryHeaderSize) return fmt::format("header size {:#x}", h.header_size);
  if (h.capacity != Registry::kCapacity) return fmt::format("capacity {:#x}", h.capacity);
  if (h.self != self) return fmt::format("header says it is at {:#x}", h.self);
  for (size_t i = sizeof h; i < page.size(); i++)
    if (page[i] != 0) return fmt::format("byte {:#x} of the header page is {:#04x}, not 0", i, page[i]);
  return {};
}

u64 registry_checksum(ByteView d) {
  u64 h = 0xcbf29ce484222325ull;  // FNV-1a
  for (u8 c : d) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

u64 registry_slot_capacity() { return kSlotCapacity; }
u64 registry_slot_offset(u64 slot) { return kRegistryHeaderSize + slot * kSlotCapacity; }

Bytes registry_slot_image(const RegistryState& s, u64 generation) {
  Bytes data = serialize(s, generation);
  RegistrySlotHeader sh{data.size(), registry_checksum(data)};
  Bytes out(sizeof sh + data.size());
  std::memcpy(out.data(), &sh, sizeof sh);
  std::memcpy(out.data() + sizeof sh, data.data(), data.size());
  return out;
}

RegistryHeader registry_header(u64 self) {
  RegistryHeader h{};
  std::memcpy(h.magic, kRegistryMagic, sizeof kRegistryMagic);
  h.version = 1;
  h.header_size = kRegistryHeaderSize;
  h.capacity = Registry::kCapacity;
  h.self = self;
  h.commit = 0;  // generation 0, slot 0, whose length is 0: the empty state
  return h;
}

Result<RegistryState> read_registry(const RegistryReader& read, u64 self, std::string_view who) {
  Bytes page = HS_TRY(read(0, kRegistryHeaderSize));
  if (auto why = registry_header_problem(page, self); !why.empty())
    return fail(ErrorKind::Corrupt, "{} at {:#x} is corrupt: {}", who, self, why);
  auto h = load_le<RegistryHeader>(page.data());
  const u64 slot = h.commit & 1, generation = h.commit >> 1;
  Bytes shb = HS_TRY(read(registry_slot_offset(slot), sizeof(RegistrySlotHeader)));
  if (shb.size() != sizeof(RegistrySlotHeader))
    return fail(ErrorKind::Corrupt, "{} is corrupt: slot {} unreadable", who, slot);
  auto sh = load_le<RegistrySlotHeader>(shb.data());
  if (sh.length > kSlotCapacity - sizeof(RegistrySlotHeader))
    return fail(ErrorKind::Corrupt, "{} is corrupt: slot {} length {:#x} exceeds {:#x}", who, slot, sh.length,
                kSlotCapacity - sizeof(RegistrySlotHeader));
  if (generation == 0) {
    // Only the fresh registry has generation 0: slot 0, empty.
    if (slot != 0 || sh.length != 0 || sh.checksum != 0)
      return fail(ErrorKind::Corrupt, "{} is corrupt: generation 0 with slot {} of length {:#x}", who, slot,
                  sh.length);
    return RegistryState{};
  }
  Bytes data = HS_TRY(read(registry_slot_offset(slot) + sizeof(RegistrySlotHeader), sh.length));
  if (data.size() != sh.length) return fail(ErrorKind::Corrupt, "{} is corrupt: slot {} unreadable", who, slot);
  if (registry_checksum(data) != sh.checksum)
    return fail(ErrorKind::Corrupt, "{} is corrupt: checksum mismatch in slot {}", who, slot);
  if (data.empty()) return fail(ErrorKind::Corrupt, "{} is corrupt: slot {} of generation {} is empty", who, slot,
                                generation);
  RegistryState s = HS_TRY(deserialize(data, who));
  if (s.generation != 0 && s.generation != generation)
    return fail(ErrorKind::Corrupt, "{} is corrupt: the active slot {} holds generation {}, the header says {}", who,
                slot, s.generation, generation);
  return s;
}

}  // namespace hs
