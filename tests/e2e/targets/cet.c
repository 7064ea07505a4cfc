/* cet: built with -fcf-protection=full (targets.cmake), so every function
 * starts with endbr64 (f3 0f 1e fa) and the patch jump must go after it.
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   call       -> "value=<cet_value()>"   original 1
 *   addr       -> "cet_value=<address of cet_value, hex>"
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

volatile int cet_sink;

__attribute__((noipa)) int cet_value(void) {
  cet_sink++;
  return 1;
}

static int handle(const char *line) {
  if (strcmp(line, "call") == 0)
    printf("value=%d\n", cet_value());
  else if (strcmp(line, "addr") == 0)
    printf("cet_value=%p\n", (void *)cet_value);
  else
    return 0;
  return 1;
}

int main(void) { return serve(handle); }
