/* klp_app: the target of the Linux livepatch ELF form tests (klp_test.cc).
 * Its statics are what the patches reach through ".klp.sym." symbols:
 *   static int helper(int)      a local function (main.c)
 *   static int scale            a local variable (main.c), starts at 3
 *   static int tally, twin()    defined in both klp_a.c (100) and klp_b.c (200):
 *                               ",1" is klp_a.c's, ",2" klp_b.c's (link order)
 *   libklp_lib.so               static lib_secret (42) and lib_mix()
 *
 * Protocol (one answer line per input line):
 *   compute N  -> "compute=<compute(N)>"   original: N * scale + 1
 *   scale N    -> "scale=<N>"              sets scale
 *   pick       -> "pick=<pick()>"          original: twin() of a + twin() of b = 300
 *   lib N      -> "lib=<via_lib(N)>"       original: N + lib_secret
 *   secret N   -> "secret=<N>"             sets the library's lib_secret
 *   ping / quit as every target
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../serve.h"

int a_value(void);
int b_value(void);
int lib_value(int v);
void lib_set_secret(int s);

static int scale = 3;

__attribute__((noipa)) static int helper(int v) { return v * scale; }

__attribute__((noipa)) int compute(int v) { return helper(v) + 1; }

__attribute__((noipa)) int pick(void) { return a_value() + b_value(); }

__attribute__((noipa)) int via_lib(int v) { return lib_value(v); }

static int handle(const char *line) {
  if (strncmp(line, "compute ", 8) == 0) {
    printf("compute=%d\n", compute(atoi(line + 8)));
  } else if (strncmp(line, "scale ", 6) == 0) {
    scale = atoi(line + 6);
    printf("scale=%d\n", scale);
  } else if (strcmp(line, "pick") == 0) {
    printf("pick=%d\n", pick());
  } else if (strncmp(line, "lib ", 4) == 0) {
    printf("lib=%d\n", via_lib(atoi(line + 4)));
  } else if (strncmp(line, "secret ", 7) == 0) {
    lib_set_secret(atoi(line + 7));
    printf("secret=%d\n", atoi(line + 7));
  } else {
    return 0;
  }
  return 1;
}

int main(void) { return serve(handle); }
