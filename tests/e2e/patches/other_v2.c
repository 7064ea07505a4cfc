/* other_v2.c: stacked on park_v2; other() returns 70 instead of 7.
 * Checks: applying it while a thread is blocked inside park_v2's new code
 * succeeds at once (the unwinder steps through payload code with the
 * payload's .eh_frame) (activeness_test.cc).
 *
 * target: park
 * depends: park_v2.c
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;

static int other_v2(void) {
  sink += 3;
  return 70;
}

HOTSPLICE_REPLACE("other", other_v2);
