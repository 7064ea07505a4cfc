/* static_file.c: replaces dup_a.c's `static int twin(void)` by file name,
 * "dup_a.c#twin" (Xen's form); it returns 101 instead of 100.
 * Checks: a static picked by source file; after apply "a" says 101 and "b"
 * still says 200.
 *
 * target: dup
 */
#include <hotsplice/livepatch.h>

static int twin_a_fixed(void) { return 101; }

HOTSPLICE_REPLACE("dup_a.c#twin", twin_a_fixed);
