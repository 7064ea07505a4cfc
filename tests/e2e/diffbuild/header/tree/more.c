#include "more.h"
#include "bounds.h"

int __attribute__((noinline)) bounded(int x) { return clip(x * 2); }

int unrelated(int x) { return x ^ 0x55; }
