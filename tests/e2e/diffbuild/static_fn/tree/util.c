/* A static function that calls a static helper and reads a static variable. */
#include "util.h"

static int factor = 3;

static int __attribute__((noinline)) helper(int x) { return x + factor; }

static int __attribute__((noinline)) scale(int x) { return helper(x) * 2 + factor; }

int compute(int x) { return scale(x) + 1; }
