/* compute() is 4 bytes at -O2 (lea 7(%rdi), %eax; ret): too short for a jump. */
#include "util.h"

int compute(int x) { return x + 7; }
