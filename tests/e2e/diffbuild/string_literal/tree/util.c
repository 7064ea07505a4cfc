/* compute() answers with a character of a string literal. */
#include "util.h"

static const char *volatile picked;

int compute(int x) {
  picked = x > 0 ? "abcdef" : "xyz";
  return picked[x % 3];
}
