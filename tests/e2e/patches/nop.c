/* nop.c: NOPs out the first 5 bytes of side_effect(), its `call bump_side`.
 * Checks: NOP-out entries (new_addr 0, new_size 5 as written, old_size filled
 * in by the builder). Before: "side" answers 1, 2, 3...; after apply it keeps
 * answering the last value; after revert it counts again.
 *
 * target: hello
 */
#include <hotsplice/livepatch.h>

HOTSPLICE_NOP("side_effect", 5);
HOTSPLICE_INFO("description", "side_effect no longer bumps its counter");
