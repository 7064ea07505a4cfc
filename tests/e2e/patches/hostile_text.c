/* hostile_text.c: metadata that no JSON encoder takes as it is (bytes that
 * are not UTF-8) and a character a terminal acts on (a right-to-left
 * override); escape sequences themselves are refused by the payload reader.
 * For output_test.cc. Replaces hello().
 *
 * target: hello
 */
#include <hotsplice/livepatch.h>

static int polite_hello(void) { return 2; }

HOTSPLICE_REPLACE("hello", polite_hello);
HOTSPLICE_INFO("note", "\xff\xfe bad \xe2\x80\xae rtl \\ end");
