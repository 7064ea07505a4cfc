/* hello_v2.c: hello() returns 2 instead of 1.
 * Checks: the basic path (a function resolved by name, jmp written, revert
 * restores it); the first payload of the hello_v3 / world_v2 stacks.
 *
 * target: hello
 */
#include <hotsplice/livepatch.h>

extern volatile int hello_sink;  /* the target's global */

static int hello_v2(void) {
  hello_sink++;
  return 2;
}

HOTSPLICE_REPLACE("hello", hello_v2);
HOTSPLICE_INFO("description", "hello returns 2");
HOTSPLICE_INFO("cve", "CVE-0000-0002");
