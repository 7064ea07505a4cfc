/* compute() gains a call to a new function. */
#include "util.h"

int compute(int x) { return x * 2 + 1000; }
