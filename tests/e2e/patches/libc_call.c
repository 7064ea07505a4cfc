/* libc_call.c: replaces render() with a version that calls the target's
 * `static int helper_static(int)` (v * 7, and it bumps static_counter) and
 * libc's snprintf.
 * Checks: undefined symbols resolved against the target's locals (PLT32 to
 * helper_static) and against libc (PLT32 to snprintf, out of rel32 reach of
 * the payload in general, so through a veneer); string literals in the
 * payload's rodata. After apply "render 3" says "render=patched:21" and
 * "get" shows static one higher.
 *
 * target: calc
 */
#include <stdio.h>

#include <hotsplice/livepatch.h>

extern int helper_static(int v);  /* static in calc.c */

static int render_fixed(char *buf, size_t n, int v) {
  return snprintf(buf, n, "patched:%d", helper_static(v));
}

HOTSPLICE_REPLACE("render", render_fixed);
HOTSPLICE_INFO("description", "render calls a target static and snprintf");
