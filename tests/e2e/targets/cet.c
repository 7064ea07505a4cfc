/* cet: built with -fcf-protection=full (targets.cmake), so every function
 * starts with endbr64 (f3 0f 1e fa) and the patch jump must go after it.
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   call       -> "value=<cet_value()>"   original 1
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

volatile int cet_sink;

__attribute__((noipa)) int cet_value(void) {
  cet_sink++;
  return 1;
}

int main(void) {
  char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "call") == 0) {
      printf("value=%d\n", cet_value());
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
