/* ambiguous.c: replaces plain "twin", which the dup target defines twice.
 * Checks: the builder refuses it, saying the name is ambiguous (the payload
 * is never built; patch authors must write "twin,N" or "dup_a.c#twin").
 *
 * target: dup
 * build-error: ambiguous
 */
#include <hotsplice/livepatch.h>

static int twin_fixed(void) { return 0; }

HOTSPLICE_REPLACE("twin", twin_fixed);
