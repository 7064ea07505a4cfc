/* answer_v2.c: answer() returns 2 instead of 1.
 * Checks: fork (fork_test.cc): patched in a pre-forking master, inherited by
 * its workers, then reverted, unloaded or stacked on in one process alone.
 *
 * target: prefork
 */
#include <hotsplice/livepatch.h>

extern volatile int answer_sink; /* the target's global */

static int answer_v2(void) {
  answer_sink++;
  return 2;
}

HOTSPLICE_REPLACE("answer", answer_v2);
HOTSPLICE_INFO("description", "answer returns 2");
