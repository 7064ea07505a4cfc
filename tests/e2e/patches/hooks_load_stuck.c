/* hooks_load_stuck.c: a preapply hook that refuses (returns 7) and an
 * unload hook that crashes (a store to address 0x20). `load` uploads it, its
 * apply is refused, and the unload that should take it out again fails too:
 * the error must say that the payload stays loaded, in which state, and the
 * command that finishes the job (issue 9, defect 6).
 *
 * target: calc
 * apply-error: preapply hook 'refuse' returned 7
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static int stuck_bump(void) {
  global_counter += 50;
  return global_counter;
}
static int refuse(void *payload) {
  (void)payload;
  return 7;
}

void crash_on_unload_stuck(void);
__asm__(".text\n"
        ".globl crash_on_unload_stuck\n"
        ".type crash_on_unload_stuck,@function\n"
        "crash_on_unload_stuck:\n"
        "  movl $1, 0x20\n"
        "  ret\n"
        ".size crash_on_unload_stuck, .-crash_on_unload_stuck\n");

HOTSPLICE_REPLACE("bump", stuck_bump);
HOTSPLICE_PREAPPLY_HOOK(refuse);
HOTSPLICE_UNLOAD_HOOK(crash_on_unload_stuck);
