/* scale_r.c: scale(x) returns x * 5; built against the object, so it can
 * replace a whole stack of scale payloads in one step.
 * Checks: replace points the call sites at this payload's function.
 *
 * target: callers
 */
#include <hotsplice/livepatch.h>

static int scale_r(int x) { return x * 5; }

HOTSPLICE_REPLACE("scale", scale_r);
