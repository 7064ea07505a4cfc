/* scale_v2.c: scale(x) returns x * 3 instead of x * 2.
 * Checks: direct calls and tail calls to scale are pointed at the
 * replacement, calls through a pointer go through the entry jump, the
 * decoy's look-alike bytes are left alone, revert restores every byte.
 *
 * target: callers
 */
#include <hotsplice/livepatch.h>

extern volatile int callers_sink;

static int scale_v2(int x) {
  callers_sink++;
  return x * 3;
}

HOTSPLICE_REPLACE("scale", scale_v2);
