/* globals.c: replaces bump() with one that adds 10 to the target's global
 * `global_counter` and 1 to its file-static `static_counter`.
 * Checks: data references into the target: global_counter through the GOT
 * (default visibility -> R_X86_64_REX_GOTPCRELX), static_counter PC-relative
 * (hidden -> R_X86_64_PC32, so the payload must be mapped within rel32 reach).
 * After apply, "bump" from global=0 static=5 says bump=10 and "get" says
 * "global=10 static=6".
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

extern int global_counter;                                      /* global in calc.c */
extern int static_counter __attribute__((visibility("hidden")));  /* static in calc.c */

static int bump_fixed(void) {
  global_counter += 10;
  static_counter += 1;
  return global_counter;
}

HOTSPLICE_REPLACE("bump", bump_fixed);
