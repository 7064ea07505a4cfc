/* hold_v2.c: hold() returns 200 instead of 100.
 * Checks: apply waits while hold()'s return address lies deep in a blocked
 * thread's stack, below a long recursion (activeness_test.cc).
 *
 * target: park
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;

static int hold_v2(int n, int block) {
  (void)n;
  (void)block;
  sink++;
  return 200;
}

HOTSPLICE_REPLACE("hold", hold_v2);
