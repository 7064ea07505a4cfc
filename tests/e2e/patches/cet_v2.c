/* cet_v2.c: cet's cet_value() returns 2 instead of 1. The target is built
 * with -fcf-protection=full, so cet_value starts with endbr64.
 * Checks: the jmp is written after the endbr64 (bytes 0..3 stay f3 0f 1e fa)
 * and revert restores bytes 4..8.
 *
 * target: cet
 */
#include <hotsplice/livepatch.h>

static int cet_value_v2(void) { return 2; }

HOTSPLICE_REPLACE("cet_value", cet_value_v2);
