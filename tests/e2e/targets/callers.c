/* callers: one patched function, scale(), reached in every way a call can
 * take, for the tests of call-site redirection (engine/call_sites.h).
 *
 * Protocol (one answer line per input line):
 *   addrs   -> "scale=<hex> decoy=<hex> text=<hex>-<hex>": runtime addresses
 *              of scale and decoy, and the executable's text segment
 *   direct  -> "direct=<via_call(5)>"    a `call scale` (+1 after it)
 *   tail    -> "tail=<via_jmp(5)>"       a tail call, `jmp rel32` to scale (of 6)
 *   short   -> "short=<via_tail(5)>"     gcc's tail call, a 2-byte `jmp rel8`
 *              to scale (too short to redirect; it takes the entry jump)
 *   pointer -> "pointer=<scale_ptr(5)>"  through a function pointer
 *   odd     -> "odd=<odd(5)>"            a `call scale` in a function that does
 *              not decode cleanly (not redirected)
 *   decoy   -> "decoy=<hex>": what decoy() returns, the 64-bit immediate of
 *              a movabs whose bytes contain E8 and a rel32 that lands on
 *              scale; a call-site finder that takes it for a call changes
 *              this value
 *   quit / EOF -> exit 0
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"

volatile int callers_sink;

__attribute__((noipa)) int scale(int x) {
  callers_sink++;
  return x * 2;
}

__attribute__((noipa)) int via_call(int x) { return scale(x) + 1; }
__attribute__((noipa)) int via_tail(int x) { return scale(x + 1); }
int (*volatile scale_ptr)(int) = scale;

/* via_jmp: x + 1, then a tail call written as `jmp rel32` (gcc would use a
 * rel8 this close to scale). */
int via_jmp(int x);
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl via_jmp\n"
    "  .type via_jmp, @function\n"
    "via_jmp:\n"
    "  addl $1, %edi\n"
    "  .byte 0xe9\n"
    "  .long scale - . - 4\n"
    "  .size via_jmp, .-via_jmp\n");

/* odd: a real `call scale`, but after its ret a byte that is no x86-64
 * instruction (0x06), inside the symbol: a function that does not decode
 * cleanly is not trusted, so this call keeps going through the entry jump. */
int odd(int x);
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl odd\n"
    "  .type odd, @function\n"
    "odd:\n"
    "  subq $8, %rsp\n"
    "  call scale\n"
    "  addq $8, %rsp\n"
    "  ret\n"
    "  .byte 0x06\n"
    "  .size odd, .-odd\n");

/* decoy: movabs $imm64, %rax whose immediate starts with E8 followed by the
 * rel32 a `call scale` at that byte would have; then ret. */
uint64_t decoy(void);
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl decoy\n"
    "  .type decoy, @function\n"
    "decoy:\n"
    "  .byte 0x48, 0xb8, 0xe8\n"
    "  .long scale - . - 4\n"
    "  .byte 0x00, 0x00, 0x00\n"
    "  ret\n"
    "  .size decoy, .-decoy\n");

extern char __executable_start[], etext[];

static int handle(const char *line) {
  if (strcmp(line, "addrs") == 0)
    printf("scale=%" PRIxPTR " decoy=%" PRIxPTR " text=%" PRIxPTR "-%" PRIxPTR "\n", (uintptr_t)scale,
           (uintptr_t)decoy, (uintptr_t)__executable_start, (uintptr_t)etext);
  else if (strcmp(line, "direct") == 0)
    printf("direct=%d\n", via_call(5));
  else if (strcmp(line, "tail") == 0)
    printf("tail=%d\n", via_jmp(5));
  else if (strcmp(line, "short") == 0)
    printf("short=%d\n", via_tail(5));
  else if (strcmp(line, "pointer") == 0)
    printf("pointer=%d\n", scale_ptr(5));
  else if (strcmp(line, "odd") == 0)
    printf("odd=%d\n", odd(5));
  else if (strcmp(line, "decoy") == 0)
    printf("decoy=%" PRIx64 "\n", decoy());
  else
    return 0;
  return 1;
}

int main(void) { return serve(handle); }
