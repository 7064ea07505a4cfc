/* hooks_veto.c: a preapply hook that refuses (returns 7). Apply must fail
 * with "payload 'veto': preapply hook 'refuse' returned 7; apply refused"
 * and change nothing: bump() stays the original (+1) and the postapply hook
 * (+100) does not run.
 *
 * target: calc
 * apply-error: preapply hook 'refuse' returned 7
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static int vetoed_bump(void) {
  global_counter += 50;
  return global_counter;
}
static int refuse(void *payload) {
  (void)payload;
  return 7;
}
static void after(void *payload) {
  (void)payload;
  global_counter += 100;
}

HOTSPLICE_REPLACE("bump", vetoed_bump);
HOTSPLICE_PREAPPLY_HOOK(refuse);
HOTSPLICE_POSTAPPLY_HOOK(after);
