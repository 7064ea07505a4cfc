/* park_v2.c: parked() returns 2 instead of 1. With block set, the new code
 * blocks in the target's blocker(), so a thread parked there has a return
 * address in this payload's code (and its stack can only be unwound through
 * the payload's own .eh_frame).
 * Checks: revert and unload wait while a thread is inside the new code;
 * unrelated operations unwind through it (activeness_test.cc).
 *
 * target: park
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;  /* the target's */
extern void blocker(void);

static int parked_v2(int block) {
  sink++;
  if (block) blocker();
  sink++;
  return 2;
}

HOTSPLICE_REPLACE("parked", parked_v2);
HOTSPLICE_INFO("description", "parked returns 2");
