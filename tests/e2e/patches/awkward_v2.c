/* awkward_v2.c: awkward's value() returns 2 instead of 1 (and never blocks).
 * Checks: patching keeps working, and the target keeps behaving, while
 * threads come and go, threads sit blocked in accept()/read(), signals
 * arrive, or the process forbids executable memory (faults_test.cc).
 *
 * target: awkward
 */
#include <hotsplice/livepatch.h>

static int value_v2(int block) {
  (void)block;
  return 2;
}

HOTSPLICE_REPLACE("value", value_v2);
