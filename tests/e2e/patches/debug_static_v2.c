/* debug_static_v2.c: the static secret_value() returns x * 100 instead of
 * x * 7. Checks: a static function of a stripped binary, resolved through
 * its separate debug file (tests/e2e/debug_test.cc gives it with
 * --debug-dir, or serves it with debuginfod); after apply "call" says
 * value=600.
 *
 * target: debug_static
 */
#include <hotsplice/livepatch.h>

extern volatile int debug_sink;  /* the target's global */

static int secret_value_v2(int x) {
  debug_sink++;
  return x * 100;
}

HOTSPLICE_REPLACE("secret_value", secret_value_v2);
