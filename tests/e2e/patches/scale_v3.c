/* scale_v3.c: stacked on scale_v2; scale(x) returns x * 4.
 * Checks: call sites follow the top of the stack (v2's, then v3's, then
 * v2's again on revert); replace points them at the replacing payload.
 *
 * target: callers
 * depends: scale_v2.c
 */
#include <hotsplice/livepatch.h>

static int scale_v3(int x) { return x * 4; }

HOTSPLICE_REPLACE("scale", scale_v3);
