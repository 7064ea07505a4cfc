/* world_v2.c: stacked on hello_v2; world() returns 20 instead of 10.
 * Checks: a stacked payload that patches a different function (after applying
 * it, "call" says hello=2 and "world" says world=20).
 *
 * target: hello
 * depends: hello_v2.c
 */
#include <hotsplice/livepatch.h>

static int world_v2(void) { return 20; }

HOTSPLICE_REPLACE("world", world_v2);
HOTSPLICE_INFO("description", "world returns 20, on top of hello_v2");
