#pragma once
/* Included by util.c and more.c, not by main.c. */
#define LIMIT 100
static inline int clip(int x) { return x > LIMIT ? LIMIT : x; }
