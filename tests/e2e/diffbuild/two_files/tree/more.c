#include "more.h"

int __attribute__((noinline)) offset(int x) { return x + 1000; }

int untouched(int x) { return x - 1; }
