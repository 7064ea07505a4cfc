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

int call_a(void);
int call_b(void);

int main(void) {
  char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "a") == 0) {
      printf("a=%d\n", call_a());
    } else if (strcmp(line, "b") == 0) {
      printf("b=%d\n", call_b());
    } else if (strcmp(line, "ping") == 0) {
      printf("pong\n");
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("error unknown command %s\n", line);
    }
    fflush(stdout);
  }
  return 0;
}
