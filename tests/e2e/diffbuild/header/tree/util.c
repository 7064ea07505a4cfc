#include "util.h"
#include "more.h"
#include "bounds.h"

int compute(int x) { return clip(x) + bounded(x); }
