/* sympos.c: replaces the second `twin` in the symbol table, "twin,2" (Linux
 * sympos), which is dup_b.c's; it returns 201 instead of 200.
 * Checks: a duplicated local picked by position; after apply "b" says 201 and
 * "a" still says 100.
 *
 * target: dup
 */
#include <hotsplice/livepatch.h>

static int twin_b_fixed(void) { return 201; }

HOTSPLICE_REPLACE("twin,2", twin_b_fixed);
