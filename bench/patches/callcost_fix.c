/* callcost_fix.c: replaces hs_callcost's old_tiny and old_small with copies
 * of their own bodies (the same code as new_tiny / new_small), so a patched
 * call differs from a direct one only by the jump and by where the code
 * lives (the payload's mapping instead of the executable's text).
 *
 * target: hs_callcost
 */
#include <hotsplice/livepatch.h>
#include <stdint.h>

static int tiny_fixed(int x) { return x * 3 + 1; }

static int small_fixed(int x) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++) {
    h ^= (uint8_t)(x >> ((i & 3) * 8)) + (uint32_t)i;
    h *= 16777619u;
  }
  return (int)h;
}

HOTSPLICE_REPLACE("old_tiny", tiny_fixed);
HOTSPLICE_REPLACE("old_small", small_fixed);
HOTSPLICE_INFO("description", "bench: call overhead");
