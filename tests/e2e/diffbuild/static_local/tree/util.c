/* A static local (a call counter) that keeps its value across the patch. */
#include "util.h"

int compute(int x) {
  static int calls;
  return ++calls * 1000 + x;
}
