// ELF notes: the walker every note area goes through (at ElfFile::create()
// for each SHT_NOTE section, again when notes or the build-id are read), the
// build-id lookup of ElfFile, and build-id notes read from and written for
// payloads.
#include "elf/notes.h"

#include <elf.h>

#include <algorithm>

#include "elf/elf_file.h"
#include "elf/reader_util.h"

namespace hs {

using elf_detail::align_up;
using elf_detail::bad;
using elf_detail::in_bounds;

Status walk_notes(ByteView data, u64 align, std::string_view what, std::string_view noun,
                  std::vector<RawNote>& out) {
  const u64 size = data.size();
  u64 off = 0;
  while (off < size) {
    const u64 left = size - off;
    if (left < 12)
      return bad("{}: note at offset 0x{:x}: 0x{:x} bytes left, too few for a note header (0xc)", what, off, left);
    const u32 namesz = load_le<u32>(data.data() + off);
    const u32 descsz = load_le<u32>(data.data() + off + 4);
    const u32 type = load_le<u32>(data.data() + off + 8);
    const u64 name_off = off + 12;
    if (!in_bounds(name_off, namesz, size))
      return bad("{}: note at offset 0x{:x}: namesz 0x{:x} is past the end of the {} (0x{:x})", what, off, namesz,
                 noun, size);
    // Padding aligns offsets within the note area (for 8-byte aligned notes
    // the name "GNU\0" at offset 12 ends at 16: no padding).
    const u64 desc_off = align_up(name_off + namesz, align);
    if (!in_bounds(desc_off, descsz, size))
      return bad("{}: note at offset 0x{:x}: descsz 0x{:x} is past the end of the {} (0x{:x})", what, off, descsz,
                 noun, size);
    RawNote n;
    n.offset = off;
    n.type = type;
    if (namesz > 0) {
      if (data[name_off + namesz - 1] != 0)
        return bad("{}: note at offset 0x{:x}: name is not NUL-terminated", what, off);
      n.name = std::string_view(reinterpret_cast<const char*>(data.data() + name_off), namesz - 1);
    }
    n.desc = data.subspan(desc_off, descsz);
    out.push_back(n);
    // The last note's descriptor padding may be missing.
    off = std::min<u64>(desc_off + align_up(descsz, align), size);
  }
  return {};
}

u64 note_alignment(u64 declared) { return declared == 8 ? 8 : 4; }

bool is_build_id_note(const RawNote& n) {
  return n.type == NT_GNU_BUILD_ID && n.name == "GNU" && !n.desc.empty() && n.desc.size() <= kMaxBuildIdSize;
}

Result<ByteView> build_id_from_note_area(ByteView data, std::string_view what) {
  std::vector<RawNote> notes;
  HS_CHECK(walk_notes(data, 4, what, "section", notes));
  if (notes.empty()) return bad("{}: no note, expected a GNU build-id note", what);
  if (notes.size() != 1)
    return bad("{}: 0x{:x} notes, expected exactly one GNU build-id note", what, notes.size());
  const RawNote& n = notes[0];
  if (n.type != NT_GNU_BUILD_ID) return bad("{}: note type 0x{:x} is not NT_GNU_BUILD_ID (0x3)", what, n.type);
  if (n.name != "GNU") return bad("{}: note name '{}' is not 'GNU'", what, ElfFile::printable(n.name));
  if (n.desc.empty() || n.desc.size() > kMaxBuildIdSize)
    return bad("{}: build-id length 0x{:x} is not in [0x1, 0x{:x}]", what, n.desc.size(), kMaxBuildIdSize);
  return n.desc;
}

// ---------------------------------------------------------------------------
// ElfFile's note accessors

Result<std::vector<ElfNote>> ElfFile::notes(size_t note_section_index) const {
  if (note_section_index == 0 || note_section_index >= shdrs_.size() ||
      shdrs_[note_section_index].sh_type != SHT_NOTE)
    return bad("{} is not a SHT_NOTE section", describe_section(note_section_index));
  std::vector<RawNote> raw;
  HS_CHECK(walk_notes(section_data(note_section_index), note_alignment(shdrs_[note_section_index].sh_addralign),
                      describe_section(note_section_index), "section", raw));
  std::vector<ElfNote> out;
  out.reserve(raw.size());
  for (const RawNote& r : raw) out.push_back(ElfNote{r.type, std::string(r.name), r.desc});
  return out;
}

Result<ByteView> ElfFile::build_id() const {
  if (auto idx = find_section(".note.gnu.build-id")) {
    if (shdrs_[*idx].sh_type == SHT_NOBITS) return bad("{}: has no data (SHT_NOBITS)", describe_section(*idx));
    return build_id_from_note_area(section_data(*idx), describe_section(*idx));
  }
  for (size_t i = 1; i < shdrs_.size(); ++i) {
    if (shdrs_[i].sh_type != SHT_NOTE) continue;
    std::vector<RawNote> raw;
    HS_CHECK(walk_notes(section_data(i), note_alignment(shdrs_[i].sh_addralign), describe_section(i), "section", raw));
    for (const RawNote& r : raw)
      if (is_build_id_note(r)) return r.desc;
  }
  const ByteView d = *data_;
  for (size_t i = 0; i < phdrs_.size(); ++i) {
    const Elf64_Phdr& ph = phdrs_[i];
    if (ph.p_type != PT_NOTE) continue;
    const std::string what = fmt::format("program header [index {}] (PT_NOTE)", i);
    if (!in_bounds(ph.p_offset, ph.p_filesz, d.size()))
      return bad("{}: p_offset 0x{:x} + p_filesz 0x{:x} is past the end of the file (0x{:x})", what, ph.p_offset,
                 ph.p_filesz, d.size());
    std::vector<RawNote> raw;
    HS_CHECK(walk_notes(d.subspan(ph.p_offset, ph.p_filesz), note_alignment(ph.p_align), what, "segment", raw));
    for (const RawNote& r : raw)
      if (is_build_id_note(r)) return r.desc;
  }
  return bad("no GNU build-id note (.note.gnu.build-id)");
}

// ---------------------------------------------------------------------------
// Build-id notes

Result<Bytes> parse_build_id_note(ByteView section, std::string_view what) {
  const ByteView id = HS_TRY(build_id_from_note_area(section, what));
  return Bytes(id.begin(), id.end());
}

Bytes make_build_id_note(ByteView build_id) {
  Bytes out(12 + 4 + align_up(build_id.size(), 4), 0);
  store_le<u32>(out.data(), 4);
  store_le<u32>(out.data() + 4, static_cast<u32>(build_id.size()));
  store_le<u32>(out.data() + 8, NT_GNU_BUILD_ID);
  std::memcpy(out.data() + 12, "GNU", 4);
  if (!build_id.empty()) std::memcpy(out.data() + 16, build_id.data(), build_id.size());
  return out;
}

}  // namespace hs
