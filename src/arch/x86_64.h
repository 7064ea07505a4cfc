// The x86-64 back end: relocation arithmetic and the few instructions the
// engine writes into a target. See x86_64.cc for an essay on the psABI bits
// used here.
//
// Everything in this file computes bytes; nothing touches a process. Bytes are
// built in the tool and run in the target, so every function that encodes a
// PC-relative instruction takes the address the bytes will *run* at
// (Frida gum's distinction between where code is written and where it runs).
#pragma once

#include <elf.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "support/bytes.h"
#include "support/error.h"
#include "support/remote_ptr.h"

namespace hs {

// Architecture traits, one struct per architecture (mold's style).
struct X86_64 {
  static constexpr u16 e_machine = EM_X86_64;
  static constexpr u64 page_size = 4096;
  static constexpr size_t jump_size = 5;        // jmp rel32
  static constexpr size_t endbr_size = 4;       // endbr64
  static constexpr size_t got_entry_size = 8;   // one absolute address
  static constexpr size_t veneer_size = 8;      // jmp *disp32(%rip), padded to 8
  static constexpr size_t veneer_align = 8;
  static constexpr size_t max_nop_size = 9;     // longest recommended NOP
};

namespace x86_64 {

inline constexpr u64 kPageSize = X86_64::page_size;
inline constexpr size_t kJumpSize = X86_64::jump_size;
inline constexpr size_t kEndbrSize = X86_64::endbr_size;
inline constexpr size_t kVeneerSize = X86_64::veneer_size;
inline constexpr size_t kGotEntrySize = X86_64::got_entry_size;

// ---- instruction bytes -----------------------------------------------------

// The instructions hotsplice writes into a target or looks for in one; every
// layer takes them from here.
inline constexpr u8 kCallRel32Opcode = 0xe8;  // call rel32 (followed by the rel32)
inline constexpr u8 kJmpRel32Opcode = 0xe9;   // jmp rel32 (followed by the rel32)
inline constexpr u8 kInt3 = 0xcc;             // int3
inline constexpr u8 kEndbr64[] = {
    0xf3, 0x0f, 0x1e, 0xfa,  // endbr64
};
inline constexpr u8 kSyscall[] = {
    0x0f, 0x05,  // syscall
};

// `jmp rel32` at `from` to `to`: e9 + (to - (from + 5)). BadTarget error if
// the displacement does not fit in a signed 32-bit integer (±2 GiB).
Result<Bytes> make_jump(RemoteAddr from, RemoteAddr to);

// Exactly `n` bytes of the recommended multi-byte NOPs (Intel SDM vol. 2B,
// "NOP"), longest first: n = 12 gives a 9-byte NOP followed by a 3-byte one.
Bytes make_nops(size_t n);

// True if `code` starts with `endbr64` (f3 0f 1e fa).
bool starts_with_endbr64(ByteView code);

// Where a patch goes inside a function whose first bytes are `first_bytes`:
// 4 after an `endbr64` (indirect branches land on it under IBT and must keep
// finding it), else 0.
size_t patch_offset(ByteView first_bytes);

// ---- direct calls and jumps ----------------------------------------------------

// `call rel32` (e8) and `jmp rel32` (e9): opcode + a displacement from the
// end of the 5-byte instruction.
inline constexpr u8 kCallRel32 = 0xe8;
inline constexpr u8 kJmpRel32 = 0xe9;
inline constexpr size_t kBranchRel32Size = 5;
static_assert(kBranchRel32Size == kJumpSize);

constexpr bool is_branch_rel32_opcode(u8 b) { return b == kCallRel32 || b == kJmpRel32; }

// Where the 5-byte call/jmp rel32 at `at` goes: `rel32` is the little-endian
// displacement (the bytes after the opcode).
u64 branch_rel32_target(u64 at, ByteView rel32);

// Where the bytes at `at` go if they start with a call/jmp rel32 (`insn`:
// at least kBranchRel32Size bytes); nullopt if they are no such instruction.
std::optional<u64> branch_rel32_destination(u64 at, ByteView insn);

// The displacement that makes a 5-byte call/jmp rel32 at `at` reach `to`, or
// nullopt if it is out of range (±2 GiB).
std::optional<i32> branch_rel32_displacement(u64 at, u64 to);

// ---- system calls ----------------------------------------------------------

// `mov $NR, %eax` (b8 imm32) followed by `syscall` (0f 05): how glibc enters
// the kernel for a system call with a constant number (clone, clone3).
inline constexpr size_t kSyscallSize = 2;
inline constexpr size_t kMovEaxSyscallSize = 5 + kSyscallSize;
// True if `code` is exactly that sequence for system call `nr`.
bool is_mov_eax_syscall(ByteView code, u64 nr);

// ---- DWARF register numbers (psABI, "DWARF Register Number Mapping") -------

// 0-15: rax rdx rcx rbx rsi rdi rbp rsp r8-r15; 16: the return address (rip).
inline constexpr unsigned kDwarfRsp = 7;
inline constexpr unsigned kDwarfReturnAddress = 16;
inline constexpr int kDwarfGeneralRegs = 17;  // 0..16

// ---- recovery trampoline (process layer: RemoteSyscalls) ------------------

// The register state a recovery tail puts back, as hotsplice writes it into
// the target (little-endian u64s, in this order).
struct RecoveryContext {
  u64 rax, rbx, rcx, rdx, rsi, rdi, rbp;
  u64 r8, r9, r10, r11, r12, r13, r14, r15;
  u64 rsp, rip, rflags;
  // Not read by the code: for a later invocation of the tool. The thread
  // these registers belong to, and how many bytes of its vector state
  // (XSAVE or FXSAVE image) the data area holds (0: none, not a call).
  u64 tid, vector_bytes;
};
static_assert(sizeof(RecoveryContext) == 20 * 8);

// Code placed at `at` that restores every general register, rflags and rsp
// from the RecoveryContext at `ctx` (rip-relative, so both must be within
// ±2 GiB; they are in one page) and jumps to its rip. rflags goes back with
// pushq/popfq on the thread's own stack 512 bytes below the saved rsp (well
// below the 128-byte red zone); after the popfq only mov and jmp run, which
// leave the flags alone. The context is only read: it may live in the same
// read-only executable page.
Bytes make_recovery_tail(RemoteAddr at, RemoteAddr ctx);

// Where a function called inside the target (RemoteCall) returns to, at
// `at`: the return address just popped is zeroed on the stack (so a later
// invocation can tell a call still running from one that returned), the
// function's result goes to rdi, then `syscall` with rax = getpid.
// A live hotsplice (running the thread with PTRACE_SYSCALL) stops it there,
// takes rdi and puts the thread's registers back itself. If hotsplice died
// meanwhile the getpid is harmless, and the code goes on: it restores the
// vector state from the image at `vector` (`xrstor64` with every component
// requested if `xsave`, else `fxrstor64`; 64-byte aligned) and jumps to the
// recovery tail at `tail`. Both are rip-relative.
Bytes make_call_return(RemoteAddr at, RemoteAddr vector, bool xsave, RemoteAddr tail);
// The offset, in that code, just past its `syscall` (rip at the stop), and
// of the first byte after the vector state is back (before it, a thread
// found there still has the callee's vector registers).
constexpr u64 kCallReturnSyscallEnd = 19;
constexpr u64 kCallReturnVectorDone = 37;

// An 8-byte veneer at `at` that jumps to the address stored in the 8-byte
// slot at `slot`: `jmp *disp32(%rip)` (ff 25) followed by two int3.
// BadPayload error if the slot is out of ±2 GiB of the veneer.
Result<Bytes> make_veneer(RemoteAddr at, RemoteAddr slot);

// ---- relocations -------------------------------------------------------------

// The psABI name of a relocation type ("R_X86_64_PC32"), or "" if unknown.
std::string_view reloc_name(u32 type);
// The psABI name, or "unknown type 0x.." (for messages).
std::string reloc_display_name(u32 type);
// Bytes a relocation of this type writes (0 for R_X86_64_NONE, 1 for unknown
// types, so a bounds check of r_offset still means something).
size_t reloc_field_size(u32 type);

// "R_X86_64_PC32 at offset 0x1f against 'snprintf'" (unknown types print as
// "relocation type 0xff ..."), the prefix of every relocation message.
std::string describe_relocation(u32 type, u64 offset, std::string_view symbol);

// How a TLS relocation reaches its thread-local variable (x86_64.cc, "TLS").
enum class TlsAccess : u8 {
  None,            // not a TLS relocation
  GeneralDynamic,  // R_X86_64_TLSGD: G is a 16-byte GOT pair {module ID, offset in the block}
  InitialExec,     // R_X86_64_GOTTPOFF: G is a GOT slot holding the TP offset
  LocalExec,       // R_X86_64_TPOFF32: the TP offset itself (RelocInput::T)
  Descriptor,      // R_X86_64_GOTPC32_TLSDESC, relaxed to initial exec: G is the TP offset slot
  DescriptorCall,  // R_X86_64_TLSDESC_CALL, relaxed away (a 2-byte NOP)
};

// What the loader must prepare before a relocation of that type is applied.
struct RelocNeeds {
  bool got_slot = false;    // G: an 8-byte slot in the payload's GOT holding S
  bool got_base = false;    // GOT: the address of the payload's GOT
  bool may_branch = false;  // a branch (PC32 call/jmp, PLT32) that may need a
                            // veneer when its target is undefined (outside the payload)
  TlsAccess tls = TlsAccess::None;  // a TLS relocation: its slots instead of got_slot's
};

// Classifies a relocation type. BadPayload for every type the loader does not
// apply: "unsupported relocation R_X86_64_COPY (type 0x5) at offset 0x3
// against 'x'" (dynamic-only and unknown types); local-dynamic TLS and TLS
// descriptors say why after the same words.
Result<RelocNeeds> scan_relocation(u32 type, u64 offset, std::string_view symbol);

// One relocation, in the psABI's letters. The loader fills in the values.
struct RelocInput {
  u32 type = 0;
  u64 offset = 0;              // r_offset in the target section (for messages and bounds)
  std::string_view symbol;     // its name for messages ("snprintf", ".rodata.str1.1")
  u64 S = 0;                   // symbol value
  i64 A = 0;                   // addend
  u64 P = 0;                   // address of the place (the section's address + offset)
  u64 Z = 0;                   // symbol size (R_X86_64_SIZE*)
  u64 GOT = 0;                 // address of the payload's GOT
  u64 G = 0;                   // offset of the symbol's GOT slot from GOT (has_got_slot)
  bool has_got_slot = false;
  u64 L = 0;                   // address of the symbol's veneer (has_veneer)
  bool has_veneer = false;
  // TLS relocations: G is the offset of the symbol's TLS slot(s) (the GD
  // pair or the IE slot, has_got_slot), T its TP offset (R_X86_64_TPOFF32).
  u64 T = 0;
};

// Applies `r` to `section`, the bytes of the relocated section as they will
// sit in the target (section[r.offset] is at address r.P).
//
// - PC32 / PLT32 whose S + A - P does not fit go through the veneer L when
//   there is one and the relocated field is a branch displacement (PLT32, or
//   PC32 after e8 call / e9 jmp / 0f 8x jcc); otherwise a range error.
// - GOTPCRELX / REX_GOTPCRELX on `mov foo@GOTPCREL(%rip), %reg` are relaxed
//   to `lea foo(%rip), %reg` when S + A - P fits (psABI B.2 "Optimize GOTPCRELX").
// - TLSGD / GOTTPOFF: G + GOT + A - P to the TLS slot(s); TPOFF32: T + A.
// - TLS descriptors are relaxed to initial exec, as ld does: `lea
//   x@tlsdesc(%rip), %rax` becomes `mov x@gottpoff(%rip), %rax` (G: the TP
//   offset slot) and `call *x@tlscall(%rax)` becomes `xchg %ax, %ax`; any
//   other instruction is an error.
//
// Errors (BadPayload), all starting with describe_relocation():
//   "... : value 0x100000000 is out of range [-0x80000000, 0x7fffffff]"
//   "... is past the end of the section (size 0x20)"
//   "unsupported relocation ..." (as scan_relocation)
Status apply_relocation(std::span<u8> section, const RelocInput& r);

}  // namespace x86_64
}  // namespace hs
