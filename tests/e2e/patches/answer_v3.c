/* answer_v3.c: stacked on answer_v2 (built with depends = answer_v2's
 * payload); answer() returns 3.
 * Checks: fork (fork_test.cc): a second payload applied in one worker only.
 *
 * target: prefork
 * depends: answer_v2.c
 */
#include <hotsplice/livepatch.h>

static int answer_v3(void) { return 3; }

HOTSPLICE_REPLACE("answer", answer_v3);
HOTSPLICE_INFO("description", "answer returns 3, on top of answer_v2");
