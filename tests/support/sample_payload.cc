#include "support/sample_payload.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include <fmt/format.h>

#include "elf/elf_file.h"

namespace hs::test {

std::string note_asm(std::string_view section, u8 fill) {
  std::string s = fmt::format(".section {},\"a\",@note\n.balign 4\n.long 4\n.long 20\n.long 3\n.asciz \"GNU\"\n.byte ",
                              section);
  for (int i = 0; i < 20; ++i) s += fmt::format("{}{}", i ? "," : "", fill);
  return s + "\n";
}

std::expected<std::string, std::string> compile_payload(const std::string& dir, std::string_view name,
                                                        std::string_view source, std::string_view notes,
                                                        std::string_view cflags) {
  const std::string base = fmt::format("{}/{}", dir, name);
  const std::string log = base + ".log";
  write_file(base + ".c", source);
  write_file(base + "-notes.s", std::string(notes) + ".section .note.GNU-stack,\"\",@progbits\n");
  const std::string cmd = fmt::format(
      "gcc -O2 -fPIC -ffunction-sections -fdata-sections -Wall -I'{0}/include' {1} -c '{2}.c' -o '{2}.o' >'{3}' 2>&1 "
      "&& gcc -c '{2}-notes.s' -o '{2}-notes.o' >>'{3}' 2>&1 "
      "&& ld -r --build-id=sha1 '{2}.o' '{2}-notes.o' -o '{2}.lp' >>'{3}' 2>&1",
      HS_SOURCE_DIR, cflags, base, log);
  if (std::system(cmd.c_str()) != 0) return std::unexpected("payload build failed:\n" + cmd + "\n" + slurp(log));
  return base + ".lp";
}

std::string build_payload(const TempDir& dir, std::string_view source, std::string_view name) {
  auto lp = compile_payload(dir.path(), name, source,
                            note_asm(".livepatch.depends", kDependsFill) +
                                note_asm(".livepatch.object_depends", kObjectDependsFill));
  if (!lp) {
    ADD_FAILURE() << lp.error();
    return {};
  }
  Bytes bytes = read_bytes(*lp);
  auto elf = ElfFile::create(bytes);
  if (!elf) {
    ADD_FAILURE() << elf.error().message();
    return {};
  }
  if (auto idx = elf->find_section(".livepatch.funcs")) {
    const Elf64_Shdr& sh = elf->sections()[*idx];
    for (u64 off = 0; off + 104 <= sh.sh_size; off += 104) {
      u8* f = bytes.data() + sh.sh_offset + off;
      if (load_le<u32>(f + 28) == 0) store_le<u32>(f + 28, kOldSize);
    }
  }
  write_bytes(*lp, bytes);
  return *lp;
}

}  // namespace hs::test
