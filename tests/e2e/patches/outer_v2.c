/* outer_v2.c: outer() returns 20 instead of 10.
 * Checks: apply waits while a thread blocked in blocker() has a return
 * address inside outer() (activeness_test.cc).
 *
 * target: park
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;

static int outer_v2(int block) {
  (void)block;
  sink++;
  return 20;
}

HOTSPLICE_REPLACE("outer", outer_v2);
