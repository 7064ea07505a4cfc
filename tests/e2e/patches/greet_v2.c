/* greet_v2.c: libgreet.so's greet() returns "hello v2" instead of "hello v1".
 * Checks: patching a shared library rather than the main executable (the
 * payload's object_depends is libgreet.so's build-id, and its memory is placed
 * near libgreet.so). Run with the greeter target; "greet" says greet=hello v2.
 *
 * target: libgreet.so
 */
#include <hotsplice/livepatch.h>

static const char *greet_v2(void) { return "hello v2"; }

HOTSPLICE_REPLACE("greet", greet_v2);
