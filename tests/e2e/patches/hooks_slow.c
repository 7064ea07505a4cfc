/* hooks_slow.c: a load hook that takes a second: +1000 to calc's
 * global_counter, a one-second sleep, then +1. For the test that kills
 * hotsplice while the hook runs: the hook must finish on its own (global
 * 1001), the target must carry on, and no invocation may touch the payload
 * while its code still runs.
 *
 * target: calc
 */
#include <errno.h>
#include <time.h>

#include <hotsplice/livepatch.h>

extern int global_counter;

static void on_load(void) {
  global_counter += 1000;
  struct timespec ts = {1, 0};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  global_counter += 1;
}

HOTSPLICE_LOAD_HOOK(on_load);
