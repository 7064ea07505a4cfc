/* greeter: calls greet() from libgreet.so (targets.cmake links it, with an
 * rpath to the targets directory).
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   greet      -> "greet=<greet()>"   original "hello v1"
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

const char *greet(void);

static int handle(const char *line) {
  if (strcmp(line, "greet") != 0) return 0;
  printf("greet=%s\n", greet());
  return 1;
}

int main(void) { return serve(handle); }
