/* park_v3.c: built against the target itself (for `replace`): parked()
 * returns 3 and other() returns 700.
 * Checks: replace waits while a thread is inside the code of a payload it
 * switches away from (activeness_test.cc).
 *
 * target: park
 */
#include <hotsplice/livepatch.h>

extern volatile int sink;

static int parked_v3(int block) {
  (void)block;
  sink++;
  return 3;
}

static int other_v3(void) {
  sink += 3;
  return 700;
}

HOTSPLICE_REPLACE("parked", parked_v3);
HOTSPLICE_REPLACE("other", other_v3);
