/* expect_bad.c: like expect_ok.c, but expects bytes hello() never starts
 * with (0f 0b: ud2). Checks: apply refuses with an expectation mismatch
 * naming hello, and the process is left untouched (hello=1).
 *
 * target: hello
 * apply-error: expectation
 */
#include <hotsplice/livepatch.h>

static int hello_unexpected(void) { return 6; }

HOTSPLICE_REPLACE_EXPECT("hello", hello_unexpected, 0x0f, 0x0b);
