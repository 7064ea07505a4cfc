// ELF notes (SHT_NOTE sections, PT_NOTE segments) and the one note
// hotsplice cares about, the GNU build-id: walking a note area with every
// bound checked, reading a build-id, and writing a build-id note.
#pragma once

#include <string_view>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

inline constexpr u64 kMaxBuildIdSize = 64;

// One note of a note area, as laid out in the file.
struct RawNote {
  u64 offset = 0;
  u32 type = 0;
  std::string_view name;
  ByteView desc;
};

// Walks the notes of `data` (a SHT_NOTE section or PT_NOTE segment). `align`
// is 4, or 8 for note areas aligned to 8 (.note.gnu.property). Messages are
// prefixed with `what` and call the area `noun` ("section" / "segment").
Status walk_notes(ByteView data, u64 align, std::string_view what, std::string_view noun, std::vector<RawNote>& out);

// The alignment of a note area whose sh_addralign / p_align is `declared`.
u64 note_alignment(u64 declared);

// A well-formed GNU build-id note (type NT_GNU_BUILD_ID, name "GNU",
// descriptor 1..64 bytes).
bool is_build_id_note(const RawNote& n);

// Parses a GNU build-id note body as it appears in `.livepatch.depends`,
// `.livepatch.object_depends` and `.note.gnu.build-id`: exactly one note,
// type NT_GNU_BUILD_ID (3), name "GNU", descsz 1..64. `what` names the section
// in messages.
Result<ByteView> build_id_from_note_area(ByteView data, std::string_view what);
Result<Bytes> parse_build_id_note(ByteView section, std::string_view what);

// Encodes a GNU build-id note (namesz 4 "GNU\0", type 3, 4-byte padded).
Bytes make_build_id_note(ByteView build_id);

}  // namespace hs
