#include "util.h"

int compute(int x) { return x + 7; }
