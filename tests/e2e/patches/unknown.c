/* unknown.c: replaces a function the target does not have.
 * Checks: the builder refuses it, naming the function.
 *
 * target: hello
 * build-error: no_such_function
 */
#include <hotsplice/livepatch.h>

static int nothing(void) { return 0; }

HOTSPLICE_REPLACE("no_such_function", nothing);
