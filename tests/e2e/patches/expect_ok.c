/* expect_ok.c: hello() returns 5, guarded by an expectation of hello's first
 * bytes. Checks: a matching expectation lets the apply through.
 *
 * HELLO_EXPECT defaults to the first two bytes of hello() as gcc -O2 emits it
 * here (8b 05: mov rel32(%rip), %eax); a test can pass the exact bytes it
 * read from the binary with -DHELLO_EXPECT=0x8b,0x05,0x..,0x.. .
 *
 * target: hello
 */
#include <hotsplice/livepatch.h>

#ifndef HELLO_EXPECT
#define HELLO_EXPECT 0x8b, 0x05
#endif

static int hello_expected(void) { return 5; }

HOTSPLICE_REPLACE_EXPECT("hello", hello_expected, HELLO_EXPECT);
