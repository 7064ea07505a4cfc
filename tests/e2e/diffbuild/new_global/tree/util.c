/* The patch adds a global variable that compute() counts its calls in. */
#include "util.h"

int compute(int x) { return x * 7 + 100; }
