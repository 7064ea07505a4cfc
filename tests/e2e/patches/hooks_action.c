/* hooks_action.c: apply and revert hooks, run in the stop window right after
 * the patch is written (or removed). Replaces bump() (+2 instead of +1).
 *   apply hook  +10      revert hook  -10
 * From global=0: apply -> get says 10, bump says 12; revert -> get says 2,
 * bump says 3.
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static int bump_by_two(void) {
  global_counter += 2;
  return global_counter;
}
static int on_apply(void *payload) {
  (void)payload;
  global_counter += 10;
  return 0;
}
static int on_revert(void *payload) {
  (void)payload;
  global_counter -= 10;
  return 0;
}

HOTSPLICE_REPLACE("bump", bump_by_two);
HOTSPLICE_APPLY_HOOK(on_apply);
HOTSPLICE_REVERT_HOOK(on_revert);
