/* cumulative.c: one payload built against the target itself that carries
 * every fix: hello() returns 4 and world() returns 40.
 * Checks: `replace` (reverts hello_v2 + hello_v3 / world_v2 in one stop and
 * applies this; its depends is the target's build-id, not a payload's).
 *
 * target: hello
 */
#include <hotsplice/livepatch.h>

static int hello_cumulative(void) { return 4; }
static int world_cumulative(void) { return 40; }

HOTSPLICE_REPLACE("hello", hello_cumulative);
HOTSPLICE_REPLACE("world", world_cumulative);
HOTSPLICE_INFO("description", "cumulative: hello returns 4, world returns 40");
