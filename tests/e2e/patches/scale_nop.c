/* scale_nop.c: stacked on scale_v2; NOPs out scale()'s first instruction
 * (a 6-byte load that only feeds the counter), so scale runs its own body
 * again and returns x * 2.
 * Checks: call sites that scale_v2 pointed at its replacement go back to
 * scale itself when a NOP patch covers the entry, and back to scale_v2's
 * replacement when that is reverted.
 *
 * target: callers
 * depends: scale_v2.c
 */
#include <hotsplice/livepatch.h>

HOTSPLICE_NOP("scale", 6);
