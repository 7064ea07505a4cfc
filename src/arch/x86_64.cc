// x86-64: the parts of the psABI hotsplice relies on.
//
// Code models. `gcc -fPIC` defaults to the small PIC model: code and data of
// one object are assumed to lie within 2 GiB of each other, and everything is
// addressed relative to %rip with a signed 32-bit displacement. A call or a
// jump is `e8`/`e9` + rel32, a data access is `disp32(%rip)`. A live patch
// breaks the one assumption that model makes: the payload is a separate
// mapping, and the objects it refers to (the target executable, libc) are
// usually far apart -- a PIE sits near 0x55..., shared libraries near 0x7f...,
// tens of TiB away. The engine maps the payload near its target object, so
// references to that object reach; references to other objects may not.
//
// Relocation arithmetic. x86-64 uses RELA: the addend is in the relocation
// entry, the bytes at the place are ignored. The psABI names the operands:
//   S    value of the symbol (its address in the target)
//   A    the addend (r_addend)
//   P    address of the place being relocated
//   G    offset of the symbol's GOT entry from the GOT
//   GOT  address of the GOT
//   L    address of the symbol's PLT entry (here: its veneer, or S itself)
//   Z    size of the symbol
// and the field: word32 fields are checked as signed for PC-relative and
// 32S types and as unsigned (zero-extended) for R_X86_64_32; word64 fields
// cannot overflow.
//
// What gcc emits for C with -O2 -fPIC -ffunction-sections:
//   R_X86_64_PC32           S + A - P   rip-relative data in the payload; jump
//                                       tables (.long .L3-.L2 across sections);
//                                       .eh_frame's pc_begin
//   R_X86_64_PLT32          L + A - P   `call foo@PLT` (every call, since binutils 2.31)
//   R_X86_64_REX_GOTPCRELX  G + GOT + A - P   `mov foo@GOTPCREL(%rip), %rax`
//   R_X86_64_GOTPCRELX      the same without REX prefix (`call *foo@GOTPCREL(%rip)`)
//   R_X86_64_64             S + A       pointers in .data.rel.ro / .data /
//                                       .livepatch.funcs
// plus, with -mcmodel=large, 64-bit offsets from the GOT: GOTPC64 (GOT - P + A),
// GOTOFF64 (S + A - GOT), GOT64 (G + A), PLTOFF64 (L - GOT + A); and without
// -fPIC, R_X86_64_32 / 32S absolute addresses, which only work when the payload
// is mapped in the low 2 GiB.
//
// PLT and GOT. There is no dynamic linker for a payload: the loader resolves
// every symbol before the payload runs, like a static link with full RELRO.
// It builds a GOT inside the payload (one 8-byte slot per symbol that a GOT
// relocation names, read-only once loaded) and, instead of PLT entries,
// 8-byte veneers `jmp *slot(%rip)`. A PLT32 call whose target is within
// ±2 GiB is linked directly (L = S); one that is not goes through the veneer.
// A PC32 reference that does not reach is only rescued when it is a branch
// (the byte before the field is e8, e9 or 0f 8x): a data reference cannot be
// redirected by a veneer and is an error.
//
// Relaxation. GOTPCRELX / REX_GOTPCRELX promise that the instruction is one
// the linker may rewrite. For `mov foo@GOTPCREL(%rip), %reg` (8b /r) whose
// target is within reach we rewrite the opcode to `lea foo(%rip), %reg`
// (8d /r), saving the load; other forms keep using the GOT slot.
//
// TLS. A payload has no TLS block of its own (a section with SHF_TLS is
// refused when it is parsed), but its code may use the target's thread-local
// variables. Each is (module, offset in that module's block); the loader
// asks the process for the module's ID and, where the block sits at a fixed
// distance from the thread pointer in every thread (static TLS: the
// executable and the libraries loaded with it), for that distance
// (engine/tls.h). In these letters, for a TLS symbol S is its offset in its
// block, and T its TP offset (block's TP offset + S):
//   R_X86_64_TLSGD     G + GOT + A - P   general dynamic: `lea x@tlsgd(%rip),
//                                        %rdi; call __tls_get_addr@PLT`; G
//                                        is a pair of GOT slots {module ID,
//                                        S}, a real tls_index, and the call
//                                        is a real call (so dynamic TLS,
//                                        dlopen'd libraries, works too)
//   R_X86_64_GOTTPOFF  G + GOT + A - P   initial exec: `mov x@gottpoff(%rip),
//                                        %reg`; G is a GOT slot holding T
//   R_X86_64_TPOFF32   T + A             local exec: `mov %fs:x@tpoff, %eax`
// IE and LE need static TLS; GD is not relaxed (the call costs a few ns and
// is right for every module). Local dynamic (TLSLD, DTPOFF32) names the
// payload's own TLS, which it cannot have. TLS descriptors
// (-mtls-dialect=gnu2: GOTPC32_TLSDESC on `lea x@tlsdesc(%rip), %rax`,
// TLSDESC_CALL on `call *x@tlscall(%rax)`) would need ld.so's descriptor
// functions, which it does not export; for static TLS they are relaxed to
// initial exec as ld does (the lea becomes `mov x@gottpoff(%rip), %rax`,
// the call `xchg %ax, %ax`, so %rax holds the TP offset the code expects),
// and refused for dynamic TLS.
//
// Instructions the engine writes. A patched function starts with
// `jmp rel32` (e9, 5 bytes, ±2 GiB) to its replacement. Code built with
// -fcf-protection starts with `endbr64` (f3 0f 1e fa): under IBT, indirect
// calls must land on it, so the jump is written after it. NOP-outs use the
// SDM's recommended multi-byte NOPs (0f 1f /0 with a growing ModRM/SIB/disp),
// which decode as one instruction each.

#include "arch/x86_64.h"

#include <cstddef>
#include <initializer_list>
#include <utility>
#include <array>
#include <limits>

namespace hs::x86_64 {

// ---- instruction bytes -----------------------------------------------------

static constexpr u8 jmp_rel32[] = {
  kJmpRel32Opcode, 0, 0, 0, 0,  // jmp rel32
};

static constexpr u8 veneer[] = {
  0xff, 0x25, 0, 0, 0, 0,  // jmp *disp32(%rip)
  kInt3,                   // int3 (padding, never reached)
  kInt3,                   // int3
};
static_assert(sizeof(veneer) == X86_64::veneer_size);
static_assert(sizeof(jmp_rel32) == X86_64::jump_size);
static_assert(sizeof(kEndbr64) == X86_64::endbr_size);

// Intel SDM vol. 2B, "NOP -- No Operation", recommended multi-byte sequences.
static constexpr u8 nop1[] = {0x90};                                            // nop
static constexpr u8 nop2[] = {0x66, 0x90};                                      // xchg %ax, %ax
static constexpr u8 nop3[] = {0x0f, 0x1f, 0x00};                                // nopl (%rax)
static constexpr u8 nop4[] = {0x0f, 0x1f, 0x40, 0x00};                          // nopl 0(%rax)
static constexpr u8 nop5[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};                    // nopl 0(%rax,%rax,1)
static constexpr u8 nop6[] = {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00};              // nopw 0(%rax,%rax,1)
static constexpr u8 nop7[] = {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00};        // nopl 0L(%rax)
static constexpr u8 nop8[] = {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00};  // nopl 0L(%rax,%rax,1)
static constexpr u8 nop9[] = {0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00};  // nopw 0L(%rax,%rax,1)

static constexpr std::array<ByteView, X86_64::max_nop_size + 1> nops = {
    ByteView(), ByteView(nop1), ByteView(nop2), ByteView(nop3), ByteView(nop4),
    ByteView(nop5), ByteView(nop6), ByteView(nop7), ByteView(nop8), ByteView(nop9),
};

static constexpr i64 kInt32Min = std::numeric_limits<i32>::min();
static constexpr i64 kInt32Max = std::numeric_limits<i32>::max();
static constexpr i64 kUInt32Max = std::numeric_limits<u32>::max();

static bool fits_s32(i64 v) { return v >= kInt32Min && v <= kInt32Max; }

// Differences of target addresses, computed modulo 2^64 and read as signed
// (no signed overflow for any input).
static i64 diff(u64 a, u64 b) { return static_cast<i64>(a - b); }

Result<Bytes> make_jump(RemoteAddr from, RemoteAddr to) {
  i64 rel = diff(to.value(), from.value() + sizeof(jmp_rel32));
  if (!fits_s32(rel))
    return fail(ErrorKind::BadTarget,
                "cannot jump from {} to {} with jmp rel32: displacement {:#x} is out of range [{:#x}, {:#x}]", from,
                to, rel, kInt32Min, kInt32Max);
  Bytes b(std::begin(jmp_rel32), std::end(jmp_rel32));
  store_le<i32>(b.data() + 1, static_cast<i32>(rel));
  return b;
}

Bytes make_nops(size_t n) {
  Bytes b;
  b.reserve(n);
  while (n > 0) {
    size_t k = std::min(n, X86_64::max_nop_size);
    b.insert(b.end(), nops[k].begin(), nops[k].end());
    n -= k;
  }
  return b;
}

bool starts_with_endbr64(ByteView code) {
  return code.size() >= sizeof(kEndbr64) && std::equal(std::begin(kEndbr64), std::end(kEndbr64), code.begin());
}

size_t patch_offset(ByteView first_bytes) { return starts_with_endbr64(first_bytes) ? sizeof(kEndbr64) : 0; }

u64 branch_rel32_target(u64 at, ByteView rel32) {
  return at + kBranchRel32Size + static_cast<u64>(static_cast<i64>(load_le<i32>(rel32.data())));
}

std::optional<u64> branch_rel32_destination(u64 at, ByteView insn) {
  if (insn.size() < kBranchRel32Size || !is_branch_rel32_opcode(insn[0])) return std::nullopt;
  return branch_rel32_target(at, insn.subspan(1, 4));
}

std::optional<i32> branch_rel32_displacement(u64 at, u64 to) {
  const i64 rel = diff(to, at + kBranchRel32Size);
  if (!fits_s32(rel)) return std::nullopt;
  return static_cast<i32>(rel);
}

static constexpr u8 mov_eax_syscall[] = {
  0xb8, 0, 0, 0, 0,  // mov $imm32, %eax
  0x0f, 0x05,        // syscall
};
static_assert(sizeof(mov_eax_syscall) == kMovEaxSyscallSize);

bool is_mov_eax_syscall(ByteView code, u64 nr) {
  return code.size() == sizeof(mov_eax_syscall) && code[0] == mov_eax_syscall[0] &&
         load_le<u32>(code.data() + 1) == nr && code[5] == mov_eax_syscall[5] && code[6] == mov_eax_syscall[6];
}

Result<Bytes> make_veneer(RemoteAddr at, RemoteAddr slot) {
  // The displacement is relative to the end of the 6-byte jmp.
  i64 rel = diff(slot.value(), at.value() + 6);
  if (!fits_s32(rel))
    return fail(ErrorKind::Internal, "veneer at {} cannot reach its slot at {}: displacement {:#x} is out of range [{:#x}, {:#x}]",
                at, slot, rel, kInt32Min, kInt32Max);
  Bytes b(std::begin(veneer), std::end(veneer));
  store_le<i32>(b.data() + 2, static_cast<i32>(rel));
  return b;
}

// ---- relocations -------------------------------------------------------------

// R_X86_64_CODE_* (APX, psABI 2024) are not in Debian 12's <elf.h>.
static constexpr u32 R_X86_64_CODE_4_GOTPCRELX = 43;
static constexpr u32 R_X86_64_CODE_6_GOTPC32_TLSDESC = 51;

static constexpr std::array<std::string_view, 52> reloc_names = {
    "R_X86_64_NONE",        "R_X86_64_64",
    "R_X86_64_PC32",        "R_X86_64_GOT32",
    "R_X86_64_PLT32",       "R_X86_64_COPY",
    "R_X86_64_GLOB_DAT",    "R_X86_64_JUMP_SLOT",
    "R_X86_64_RELATIVE",    "R_X86_64_GOTPCREL",
    "R_X86_64_32",          "R_X86_64_32S",
    "R_X86_64_16",          "R_X86_64_PC16",
    "R_X86_64_8",           "R_X86_64_PC8",
    "R_X86_64_DTPMOD64",    "R_X86_64_DTPOFF64",
    "R_X86_64_TPOFF64",     "R_X86_64_TLSGD",
    "R_X86_64_TLSLD",       "R_X86_64_DTPOFF32",
    "R_X86_64_GOTTPOFF",    "R_X86_64_TPOFF32",
    "R_X86_64_PC64",        "R_X86_64_GOTOFF64",
    "R_X86_64_GOTPC32",     "R_X86_64_GOT64",
    "R_X86_64_GOTPCREL64",  "R_X86_64_GOTPC64",
    "R_X86_64_GOTPLT64",    "R_X86_64_PLTOFF64",
    "R_X86_64_SIZE32",      "R_X86_64_SIZE64",
    "R_X86_64_GOTPC32_TLSDESC", "R_X86_64_TLSDESC_CALL",
    "R_X86_64_TLSDESC",     "R_X86_64_IRELATIVE",
    "R_X86_64_RELATIVE64",  "",  // 39: reserved, was R_X86_64_PC32_BND
    "",                     // 40: reserved, was R_X86_64_PLT32_BND
    "R_X86_64_GOTPCRELX",
    "R_X86_64_REX_GOTPCRELX", "R_X86_64_CODE_4_GOTPCRELX",
    "R_X86_64_CODE_4_GOTTPOFF", "R_X86_64_CODE_4_GOTPC32_TLSDESC",
    "R_X86_64_CODE_5_GOTPCRELX", "R_X86_64_CODE_5_GOTTPOFF",
    "R_X86_64_CODE_5_GOTPC32_TLSDESC", "R_X86_64_CODE_6_GOTPCRELX",
    "R_X86_64_CODE_6_GOTTPOFF", "R_X86_64_CODE_6_GOTPC32_TLSDESC",
};
static_assert(reloc_names[R_X86_64_REX_GOTPCRELX] == "R_X86_64_REX_GOTPCRELX");
static_assert(reloc_names[R_X86_64_CODE_4_GOTPCRELX] == "R_X86_64_CODE_4_GOTPCRELX");
static_assert(reloc_names[R_X86_64_CODE_6_GOTPC32_TLSDESC] == "R_X86_64_CODE_6_GOTPC32_TLSDESC");

std::string_view reloc_name(u32 type) { return type < reloc_names.size() ? reloc_names[type] : std::string_view(); }

std::string reloc_display_name(u32 type) {
  std::string_view name = reloc_name(type);
  return name.empty() ? fmt::format("unknown type {:#x}", type) : std::string(name);
}

static std::string type_text(u32 type) {
  std::string_view name = reloc_name(type);
  return name.empty() ? fmt::format("relocation type {:#x}", type) : std::string(name);
}

std::string describe_relocation(u32 type, u64 offset, std::string_view symbol) {
  return fmt::format("{} at offset {:#x} against '{}'", type_text(type), offset, symbol);
}

Result<RelocNeeds> scan_relocation(u32 type, u64 offset, std::string_view symbol) {
  switch (type) {
    case R_X86_64_NONE:
    case R_X86_64_64:
    case R_X86_64_32:
    case R_X86_64_32S:
    case R_X86_64_PC64:
    case R_X86_64_SIZE32:
    case R_X86_64_SIZE64:
      return RelocNeeds{};
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
      return RelocNeeds{.may_branch = true};
    case R_X86_64_GOT32:
    case R_X86_64_GOT64:
    case R_X86_64_GOTPLT64:
      return RelocNeeds{.got_slot = true};
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
    case R_X86_64_GOTPCREL64:
      return RelocNeeds{.got_slot = true, .got_base = true};
    case R_X86_64_GOTOFF64:
    case R_X86_64_GOTPC32:
    case R_X86_64_GOTPC64:
    case R_X86_64_PLTOFF64:
      return RelocNeeds{.got_base = true};
    case R_X86_64_TLSGD:
      return RelocNeeds{.got_base = true, .tls = TlsAccess::GeneralDynamic};
    case R_X86_64_GOTTPOFF:
      return RelocNeeds{.got_base = true, .tls = TlsAccess::InitialExec};
    case R_X86_64_TPOFF32:
      return RelocNeeds{.tls = TlsAccess::LocalExec};
    case R_X86_64_GOTPC32_TLSDESC:
      return RelocNeeds{.got_base = true, .tls = TlsAccess::Descriptor};
    case R_X86_64_TLSDESC_CALL:
      return RelocNeeds{.tls = TlsAccess::DescriptorCall};
    case 45:  // R_X86_64_CODE_4_GOTPC32_TLSDESC
    case 48:  // R_X86_64_CODE_5_GOTPC32_TLSDESC
    case R_X86_64_CODE_6_GOTPC32_TLSDESC:
      return fail(ErrorKind::BadPayload,
                  "unsupported relocation {} (type {:#x}) at offset {:#x} against '{}': TLS descriptors in "
                  "APX instructions are not supported; build the patch with -mtls-dialect=gnu",
                  reloc_name(type), type, offset, symbol);
    case R_X86_64_TLSLD:
    case R_X86_64_DTPOFF32:
    case R_X86_64_DTPOFF64:
      return fail(ErrorKind::BadPayload,
                  "unsupported relocation {} (type {:#x}) at offset {:#x} against '{}': local-dynamic TLS refers to "
                  "the payload's own thread-local variables, which a payload cannot have",
                  reloc_name(type), type, offset, symbol);
    default:
      break;
  }
  std::string_view name = reloc_name(type);
  if (name.empty())
    return fail(ErrorKind::BadPayload, "unsupported relocation type {:#x} at offset {:#x} against '{}'", type,
                offset, symbol);
  return fail(ErrorKind::BadPayload, "unsupported relocation {} (type {:#x}) at offset {:#x} against '{}'", name,
              type, offset, symbol);
}

size_t reloc_field_size(u32 type) {
  switch (type) {
    case R_X86_64_64:
    case R_X86_64_GLOB_DAT:
    case R_X86_64_JUMP_SLOT:
    case R_X86_64_RELATIVE:
    case R_X86_64_DTPMOD64:
    case R_X86_64_DTPOFF64:
    case R_X86_64_TPOFF64:
    case R_X86_64_PC64:
    case R_X86_64_GOTOFF64:
    case R_X86_64_GOT64:
    case R_X86_64_GOTPCREL64:
    case R_X86_64_GOTPC64:
    case R_X86_64_GOTPLT64:
    case R_X86_64_PLTOFF64:
    case R_X86_64_SIZE64:
    case R_X86_64_IRELATIVE:
    case R_X86_64_RELATIVE64: return 8;
    case R_X86_64_TLSDESC: return 16;
    case R_X86_64_PC32:
    case R_X86_64_GOT32:
    case R_X86_64_PLT32:
    case R_X86_64_GOTPCREL:
    case R_X86_64_32:
    case R_X86_64_32S:
    case R_X86_64_TLSGD:
    case R_X86_64_TLSLD:
    case R_X86_64_DTPOFF32:
    case R_X86_64_GOTTPOFF:
    case R_X86_64_TPOFF32:
    case R_X86_64_GOTPC32:
    case R_X86_64_SIZE32:
    case R_X86_64_GOTPC32_TLSDESC:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
    case 43:  // R_X86_64_CODE_4_GOTPCRELX
    case 44:  // R_X86_64_CODE_4_GOTTPOFF
    case 45:  // R_X86_64_CODE_4_GOTPC32_TLSDESC
      return 4;
    case R_X86_64_16:
    case R_X86_64_PC16: return 2;
    case R_X86_64_NONE: return 0;
    default: return 1;  // R_X86_64_8, PC8, TLSDESC_CALL, unknown
  }
}

namespace {

// Writes one relocated field; range errors name the relocation, the symbol,
// the value and the allowed range (mold's write32s, with the message).
class FieldWriter {
 public:
  FieldWriter(u8* loc, const RelocInput& r) : loc_(loc), r_(r) {}

  // Signed 32-bit field: [-0x80000000, 0x7fffffff].
  Status write32s(i64 v) {
    if (!fits_s32(v)) return out_of_range(v, kInt32Min, kInt32Max);
    store_le<i32>(loc_, static_cast<i32>(v));
    return {};
  }
  // Zero-extended 32-bit field: [0x0, 0xffffffff].
  Status write32(i64 v) {
    if (v < 0 || v > kUInt32Max) return out_of_range(v, 0, kUInt32Max);
    store_le<u32>(loc_, static_cast<u32>(v));
    return {};
  }
  Status write64(u64 v) {
    store_le<u64>(loc_, v);
    return {};
  }

 private:
  std::unexpected<Error> out_of_range(i64 v, i64 lo, i64 hi) const {
    return fail(ErrorKind::BadPayload, "{}: value {:#x} is out of range [{:#x}, {:#x}]",
                describe_relocation(r_.type, r_.offset, r_.symbol), v, lo, hi);
  }

  u8* loc_;
  const RelocInput& r_;
};

}  // namespace

// Is the 4-byte field at `off` the displacement of `call`/`jmp rel32` or
// `jcc rel32`? The byte before a rip-relative disp32 is always a ModRM with
// mod 00 and r/m 101 (0x05 under mask 0xc7), which e8, e9 and 80..8f are not,
// so a data reference cannot be mistaken for a branch.
static bool is_branch_field(std::span<const u8> sec, u64 off, i64 A) {
  if (A != -4) return false;  // the displacement is the instruction's last field
  if (off >= 1 && (sec[off - 1] == kCallRel32Opcode || sec[off - 1] == kJmpRel32Opcode)) return true;
  return off >= 2 && sec[off - 2] == 0x0f && (sec[off - 1] & 0xf0) == 0x80;       // jcc rel32
}

// `mov foo@GOTPCREL(%rip), %reg` (8b, ModRM mod 00 r/m 101), optionally after
// a REX prefix for R_X86_64_REX_GOTPCRELX.
static bool is_relaxable_mov(std::span<const u8> sec, u64 off, u32 type) {
  if (off < 2 || sec[off - 2] != 0x8b || (sec[off - 1] & 0xc7) != 0x05) return false;
  if (type == R_X86_64_REX_GOTPCRELX) return off >= 3 && (sec[off - 3] & 0xf0) == 0x40;
  return true;
}

Status apply_relocation(std::span<u8> section, const RelocInput& r) {
  RelocNeeds needs = HS_TRY(scan_relocation(r.type, r.offset, r.symbol));
  size_t size = reloc_field_size(r.type);
  if (r.offset > section.size() || size > section.size() - r.offset)
    return fail(ErrorKind::BadPayload, "{} is past the end of the section (size {:#x})",
                describe_relocation(r.type, r.offset, r.symbol), section.size());
  if ((needs.got_slot || needs.tls == TlsAccess::GeneralDynamic || needs.tls == TlsAccess::InitialExec ||
       needs.tls == TlsAccess::Descriptor) &&
      !r.has_got_slot)
    return fail(ErrorKind::Internal, "{}: no GOT slot was reserved", describe_relocation(r.type, r.offset, r.symbol));

  const u64 S = r.S, P = r.P, Z = r.Z, GOT = r.GOT, G = r.G, L = r.L;
  const u64 A = static_cast<u64>(r.A);  // arithmetic is modulo 2^64; fields read it as signed
  FieldWriter w(section.data() + r.offset, r);

  switch (r.type) {
    case R_X86_64_NONE:
      return {};
    case R_X86_64_64:
      return w.write64(S + A);
    case R_X86_64_PC32:
    case R_X86_64_PLT32: {
      i64 v = diff(S + A, P);
      bool branch = r.type == R_X86_64_PLT32 || is_branch_field(section, r.offset, r.A);
      if (!fits_s32(v) && r.has_veneer && branch) v = diff(L + A, P);
      return w.write32s(v);
    }
    case R_X86_64_GOT32:
      return w.write32s(static_cast<i64>(G + A));
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
      if (i64 direct = diff(S + A, P); fits_s32(direct) && is_relaxable_mov(section, r.offset, r.type)) {
        section[r.offset - 2] = 0x8d;  // mov foo@GOTPCREL(%rip), %reg -> lea foo(%rip), %reg
        return w.write32s(direct);
      }
      [[fallthrough]];
    case R_X86_64_GOTPCREL:
      return w.write32s(diff(G + GOT + A, P));
    case R_X86_64_32:
      return w.write32(static_cast<i64>(S + A));
    case R_X86_64_32S:
      return w.write32s(static_cast<i64>(S + A));
    case R_X86_64_PC64:
      return w.write64(S + A - P);
    case R_X86_64_GOTOFF64:
      return w.write64(S + A - GOT);
    case R_X86_64_GOTPC32:
      return w.write32s(diff(GOT + A, P));
    case R_X86_64_GOT64:
    case R_X86_64_GOTPLT64:
      return w.write64(G + A);
    case R_X86_64_GOTPCREL64:
      return w.write64(G + GOT - P + A);
    case R_X86_64_GOTPC64:
      return w.write64(GOT - P + A);
    case R_X86_64_PLTOFF64:
      // L - GOT + A: a 64-bit offset reaches any address, so L = S.
      return w.write64(S - GOT + A);
    case R_X86_64_SIZE32:
      return w.write32(static_cast<i64>(Z + A));
    case R_X86_64_SIZE64:
      return w.write64(Z + A);
    case R_X86_64_TLSGD:
    case R_X86_64_GOTTPOFF:
      return w.write32s(diff(G + GOT + A, P));
    case R_X86_64_TPOFF32:
      return w.write32s(static_cast<i64>(r.T + A));
    case R_X86_64_GOTPC32_TLSDESC:
      // lea x@tlsdesc(%rip), %rax (48 8d 05) -> mov x@gottpoff(%rip), %rax (48 8b 05)
      if (r.offset < 3 || section[r.offset - 3] != 0x48 || section[r.offset - 2] != 0x8d ||
          section[r.offset - 1] != 0x05)
        return fail(ErrorKind::BadPayload, "{}: not the `lea x@tlsdesc(%rip), %rax` a TLS descriptor is loaded with",
                    describe_relocation(r.type, r.offset, r.symbol));
      section[r.offset - 2] = 0x8b;
      return w.write32s(diff(G + GOT + A, P));
    case R_X86_64_TLSDESC_CALL:
      // call *x@tlscall(%rax) (ff 10) -> xchg %ax, %ax (66 90): %rax already holds the TP offset
      if (section.size() - r.offset < 2 || section[r.offset] != 0xff || section[r.offset + 1] != 0x10)
        return fail(ErrorKind::BadPayload, "{}: not the `call *x@tlscall(%rax)` of a TLS descriptor",
                    describe_relocation(r.type, r.offset, r.symbol));
      section[r.offset] = 0x66;
      section[r.offset + 1] = 0x90;
      return {};
    default:
      break;
  }
  return fail(ErrorKind::Internal, "{}: classified as supported but not applied",
              describe_relocation(r.type, r.offset, r.symbol));
}


Bytes make_recovery_tail(RemoteAddr at, RemoteAddr ctx) {
  Bytes out;
  // Appends an instruction whose last 4 bytes are a rip-relative disp32 to
  // the context field at `field_off`.
  auto riprel = [&](std::initializer_list<u8> head, size_t field_off) {
    out.insert(out.end(), head.begin(), head.end());
    const u64 next = at.value() + out.size() + 4;
    const i64 disp = static_cast<i64>(ctx.value() + field_off - next);
    const u32 d = static_cast<u32>(static_cast<i32>(disp));
    for (int b = 0; b < 4; b++) out.push_back(static_cast<u8>(d >> (8 * b)));
  };
  // mov field(%rip), %reg: REX.W(+R) 8b modrm(00 reg 101) disp32.
  auto load = [&](unsigned reg, size_t field_off) {
    riprel({static_cast<u8>(reg >= 8 ? 0x4c : 0x48), 0x8b, static_cast<u8>(0x05 | ((reg & 7) << 3))}, field_off);
  };
  using C = RecoveryContext;
  load(4, offsetof(C, rsp));                                        // mov rsp(%rip), %rsp
  out.insert(out.end(), {0x48, 0x8d, 0xa4, 0x24, 0x00, 0xfe, 0xff, 0xff});  // lea -512(%rsp), %rsp
  riprel({0xff, 0x35}, offsetof(C, rflags));                         // pushq rflags(%rip)
  out.push_back(0x9d);                                               // popfq
  // From here on nothing may change the flags.
  const std::pair<unsigned, size_t> regs[] = {
      {0, offsetof(C, rax)}, {3, offsetof(C, rbx)}, {1, offsetof(C, rcx)},  {2, offsetof(C, rdx)},
      {6, offsetof(C, rsi)}, {7, offsetof(C, rdi)}, {5, offsetof(C, rbp)},  {8, offsetof(C, r8)},
      {9, offsetof(C, r9)},  {10, offsetof(C, r10)}, {11, offsetof(C, r11)}, {12, offsetof(C, r12)},
      {13, offsetof(C, r13)}, {14, offsetof(C, r14)}, {15, offsetof(C, r15)},
  };
  for (auto [reg, off] : regs) load(reg, off);                       // mov field(%rip), %reg
  load(4, offsetof(C, rsp));                                         // mov rsp(%rip), %rsp
  riprel({0xff, 0x25}, offsetof(C, rip));                            // jmp *rip(%rip)
  return out;
}

Bytes make_call_return(RemoteAddr at, RemoteAddr vector, bool xsave, RemoteAddr tail) {
  Bytes out = {
      0x48, 0xc7, 0x44, 0x24, 0xf8,  // movq $0, -8(%rsp): the return address
      0x00, 0x00, 0x00, 0x00,        //   just used; "the call has returned"
      0x48, 0x89, 0xc7,              // mov %rax, %rdi
      0xb8, 0x27, 0x00, 0x00, 0x00,  // mov $39 (getpid), %eax
      0x0f, 0x05,                    // syscall
      0xb8, 0xff, 0xff, 0xff, 0xff,  // mov $-1, %eax   (xrstor: every
      0xba, 0xff, 0xff, 0xff, 0xff,  // mov $-1, %edx    component)
  };
  auto rel32 = [&](u64 target) {
    const u64 next = at.value() + out.size() + 4;
    const u32 d = static_cast<u32>(static_cast<i32>(static_cast<i64>(target - next)));
    for (int b = 0; b < 4; b++) out.push_back(static_cast<u8>(d >> (8 * b)));
  };
  // REX.W 0f ae /5 (xrstor64) or /1 (fxrstor64), modrm 00 reg 101: disp32(%rip).
  out.insert(out.end(), {0x48, 0x0f, 0xae, static_cast<u8>(xsave ? 0x2d : 0x0d)});
  rel32(vector.value());
  out.push_back(kJmpRel32Opcode);  // jmp tail
  rel32(tail.value());
  return out;
}

}  // namespace hs::x86_64
