/* descend_v2.c: descend(n) returns 2n instead of n (still recursive).
 * Checks: apply waits while a thread is parked at the bottom of a recursion
 * of the function it replaces (activeness_test.cc).
 *
 * target: park
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;
extern void blocker(void);

static int descend_v2(int n, int block) {
  if (n == 0) {
    if (block) blocker();
    return 0;
  }
  int r = descend_v2(n - 1, block);
  sink = r;
  return r + 2;
}

HOTSPLICE_REPLACE("descend", descend_v2);
