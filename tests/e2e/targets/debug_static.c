/* debug_static: the target tests/e2e/debug_test.cc strips. The test moves
 * its symbols into a separate debug file (objcopy --only-keep-debug, strip)
 * and runs the stripped copy, so the static function below can only be
 * found through that file. Patched: static secret_value().
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   call       -> "value=<secret_value(6)>"   original: 42
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>

#include "serve.h"

volatile int debug_sink;

/* static: not in the .dynsym, so a stripped copy has no name for it. */
__attribute__((noipa)) static int secret_value(int x) {
  debug_sink++;
  return x * 7;
}

static int handle(const char *line) {
  if (strcmp(line, "call") == 0) {
    printf("value=%d\n", secret_value(6));
    return 1;
  }
  return 0;
}

int main(void) { return serve(handle); }
