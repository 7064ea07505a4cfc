/* dup: two files each with `static int twin(void)` (built from targets/dup/,
 * see targets.cmake). Link order main.c, dup_a.c, dup_b.c, so in the symbol
 * table "twin,1" is dup_a.c's and "twin,2" is dup_b.c's; plain "twin" is
 * ambiguous. dup_a.c's returns 100, dup_b.c's 200.
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   a          -> "a=<call_a()>"   call_a() returns dup_a.c's twin()
 *   b          -> "b=<call_b()>"   call_b() returns dup_b.c's twin()
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../serve.h"

int call_a(void);
int call_b(void);

static int handle(const char *line) {
  if (strcmp(line, "a") == 0)
    printf("a=%d\n", call_a());
  else if (strcmp(line, "b") == 0)
    printf("b=%d\n", call_b());
  else
    return 0;
  return 1;
}

int main(void) { return serve(handle); }
