/* tweak() is inlined into both of its callers: changing it changes them. */
#include "util.h"

static int tweak(int x) { return x * 3; }

int __attribute__((noinline)) left(int x) { return tweak(x) + 1000; }

int __attribute__((noinline)) right(int x) { return tweak(x) - 1000; }

int compute(int x) { return left(x) + right(x) * 10000; }
