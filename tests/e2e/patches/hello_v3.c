/* hello_v3.c: stacked on hello_v2 (built with depends = hello_v2's payload);
 * hello() returns 3.
 * Checks: stacking (applies only on top of hello_v2; hello_v2 cannot be
 * reverted while this is applied; reverting this brings back 2), replacing a
 * function that an earlier payload already replaced.
 *
 * target: hello
 * depends: hello_v2.c
 */
#include <hotsplice/livepatch.h>

static int hello_v3(void) { return 3; }

HOTSPLICE_REPLACE("hello", hello_v3);
HOTSPLICE_INFO("description", "hello returns 3, on top of hello_v2");
