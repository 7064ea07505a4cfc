/* Functions that use __LINE__ (assert, a logging line). */
#include <assert.h>
#include <stdio.h>

#include "util.h"

static void __attribute__((noinline)) warn_negative(int x) {
  if (x < 0) fprintf(stderr, "negative value %d at line %d\n", x, __LINE__);
}

int compute(int x) {
  assert(x != 12345);
  warn_negative(x);
  return x + 1;
}
