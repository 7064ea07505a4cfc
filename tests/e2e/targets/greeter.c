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

const char *greet(void);

int main(void) {
  char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "greet") == 0) {
      printf("greet=%s\n", greet());
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
