/* value_v2.c: spin8's value() returns 2 instead of 1 while 8 threads call it
 * in a tight loop.
 * Checks: activeness safety and atomic switching under load: apply and revert
 * (repeatedly) must succeed within the timeout and "stats" must keep saying
 * bad=0.
 *
 * target: spin8
 */
#include <hotsplice/livepatch.h>

static int value_v2(void) { return 2; }

HOTSPLICE_REPLACE("value", value_v2);
