/* Reads numbers, one a line, and prints compute() of each. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

int main(void) {
  char line[64];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready %d\n", (int)getpid());
  while (fgets(line, sizeof line, stdin)) printf("%d\n", compute(atoi(line)));
  return 0;
}
