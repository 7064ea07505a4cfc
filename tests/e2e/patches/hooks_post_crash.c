/* hooks_post_crash.c: a postapply hook that crashes (a store to address 0x18,
 * in assembly so the offset is exact) and a load hook (+1000). The apply is
 * committed before post hooks run, so it succeeds with the warning
 * "payload 'pc': postapply hook 'crash_after_apply' crashed with SIGSEGV at
 * crash_after_apply+0x0 (fault address 0x18); the payload stays APPLIED".
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static void on_load(void) { global_counter += 1000; }

void crash_after_apply(void *payload);
__asm__(".text\n"
        ".globl crash_after_apply\n"
        ".type crash_after_apply,@function\n"
        "crash_after_apply:\n"
        "  movl $1, 0x18\n"
        "  ret\n"
        ".size crash_after_apply, .-crash_after_apply\n");

HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_POSTAPPLY_HOOK(crash_after_apply);
