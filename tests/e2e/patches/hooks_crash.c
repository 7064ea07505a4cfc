/* hooks_crash.c: a load hook that crashes at its first instruction (a store
 * to address 0x10; written in assembly so the offset is exact). Upload must
 * fail with "payload 'crash': load hook 'crash_on_load' crashed with SIGSEGV
 * at crash_on_load+0x0 (fault address 0x10); upload rolled back", the
 * target must live on and no mapping of the payload may stay.
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

void crash_on_load(void);
__asm__(".text\n"
        ".globl crash_on_load\n"
        ".type crash_on_load,@function\n"
        "crash_on_load:\n"
        "  movl $1, 0x10\n"
        "  ret\n"
        ".size crash_on_load, .-crash_on_load\n");

HOTSPLICE_LOAD_HOOK(crash_on_load);
