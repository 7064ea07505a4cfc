#include "util.h"

int __attribute__((noinline)) compute(int x) { return x - 3000; }
