// Writes the ELF file libdw unwinds payload code with: see unwind_elf.h.
#include "engine/unwind_elf.h"

#include <elf.h>

#include <cstring>

#include "arch/x86_64.h"

namespace hs {

Bytes payload_unwind_elf(u64 image_size, u64 eh_frame_offset, ByteView eh_frame) {
  static constexpr char kNames[] = "\0.eh_frame\0.shstrtab";  // offsets 1 and 11
  auto align8 = [](u64 v) { return (v + 7) & ~u64{7}; };
  const u64 ph_off = sizeof(Elf64_Ehdr);
  const u64 eh_off = align8(ph_off + sizeof(Elf64_Phdr));
  const u64 names_off = eh_off + eh_frame.size();
  const u64 sh_off = align8(names_off + sizeof kNames);
  Bytes out(sh_off + 3 * sizeof(Elf64_Shdr), 0);

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_DYN;
  eh.e_machine = X86_64::e_machine;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = ph_off;
  eh.e_shoff = sh_off;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 3;
  eh.e_shstrndx = 2;

  // The whole mapping as one segment at 0: libdw's bias for the module is
  // then the payload's base, and .eh_frame's sh_addr is its image offset.
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_flags = PF_R | PF_X;
  ph.p_memsz = image_size;
  ph.p_align = X86_64::page_size;

  Elf64_Shdr sh[3]{};
  sh[1].sh_name = 1;
  sh[1].sh_type = SHT_PROGBITS;
  sh[1].sh_flags = SHF_ALLOC;
  sh[1].sh_addr = eh_frame_offset;
  sh[1].sh_offset = eh_off;
  sh[1].sh_size = eh_frame.size();
  sh[1].sh_addralign = 8;
  sh[2].sh_name = 11;
  sh[2].sh_type = SHT_STRTAB;
  sh[2].sh_offset = names_off;
  sh[2].sh_size = sizeof kNames;
  sh[2].sh_addralign = 1;

  std::memcpy(out.data(), &eh, sizeof eh);
  std::memcpy(out.data() + ph_off, &ph, sizeof ph);
  if (!eh_frame.empty()) std::memcpy(out.data() + eh_off, eh_frame.data(), eh_frame.size());
  std::memcpy(out.data() + names_off, kNames, sizeof kNames);
  std::memcpy(out.data() + sh_off, sh, sizeof sh);
  return out;
}

}  // namespace hs
