/* hooks_unload_crash.c: a load hook (+1000) and an unload hook that crashes
 * (a store to address 0x20, in assembly so the offset is exact). The first
 * unload fails and the payload stays loaded, its unload hooks marked as run:
 * it can no longer be applied, and the next unload just unmaps it (the hook
 * is not run twice).
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static void on_load(void) { global_counter += 1000; }

void crash_on_unload(void);
__asm__(".text\n"
        ".globl crash_on_unload\n"
        ".type crash_on_unload,@function\n"
        "crash_on_unload:\n"
        "  movl $1, 0x20\n"
        "  ret\n"
        ".size crash_on_unload, .-crash_on_unload\n");

HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_UNLOAD_HOOK(crash_on_unload);
