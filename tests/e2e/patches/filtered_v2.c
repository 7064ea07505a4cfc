/* filtered_v2.c: the filtered target's value() returns 2 instead of 1; a
 * load hook adds 1 to hook_count and an unload hook 10.
 * Checks: under a seccomp filter that allows what hotsplice needs, upload
 * (with its hook, a call made in the target), apply, revert and unload all
 * work (seccomp_test.cc).
 *
 * target: filtered
 */
#include <hotsplice/livepatch.h>

extern volatile int hook_count; /* the target's global */

static int value_v2(void) { return 2; }
static void on_load(void) { hook_count += 1; }
static void on_unload(void) { hook_count += 10; }

HOTSPLICE_REPLACE("value", value_v2);
HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_UNLOAD_HOOK(on_unload);
