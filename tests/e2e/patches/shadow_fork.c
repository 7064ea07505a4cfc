/* shadow_fork.c: answer() returns how many times it was called since the
 * patch, counted in a shadow variable attached to the target's answer_sink.
 * Checks: a fork copies the shadow table and the shadows (fork of a
 * pre-forking master), each process counting on alone; a revert in one
 * process frees its copy only.
 *
 * target: prefork
 */
#include <hotsplice/livepatch.h>

extern volatile int answer_sink; /* the target's global */

#define CALLS_ID 7

static int answer_counted(void) {
  long *n = hotsplice_shadow_get_or_alloc((const void *)&answer_sink, CALLS_ID, sizeof *n, NULL, NULL);
  answer_sink++;
  return n ? (int)__atomic_add_fetch(n, 1, __ATOMIC_RELAXED) : -1;
}

HOTSPLICE_REPLACE("answer", answer_counted);
HOTSPLICE_SHADOW_FREE_ON_REVERT(CALLS_ID, NULL);
