/* hooks_action_fail.c: an apply hook that fails (returns 3) after the patch
 * is written. Apply must fail with "payload 'afail': apply hook
 * 'fail_apply' returned 3; apply rolled back" and bump() must stay the
 * original (+1).
 *
 * target: calc
 * apply-error: apply hook 'fail_apply' returned 3
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static int bump_by_three(void) {
  global_counter += 3;
  return global_counter;
}
static int fail_apply(void *payload) {
  (void)payload;
  return 3;
}

HOTSPLICE_REPLACE("bump", bump_by_three);
HOTSPLICE_APPLY_HOOK(fail_apply);
