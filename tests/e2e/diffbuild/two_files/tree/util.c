/* compute() in this file, offset() in more.c: the patch changes both. */
#include "util.h"
#include "more.h"

int compute(int x) { return offset(x) * 3; }
