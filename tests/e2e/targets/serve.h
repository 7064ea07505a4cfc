/* The line protocol the simple targets speak (README.md): "ready <pid>"
 * first, then one answer line per input line; "ping" answers "pong"; "quit"
 * or end of input ends it. serve() runs that loop; `handle` answers the
 * target's own commands and returns 0 for one it does not know. */
#ifndef HOTSPLICE_TARGET_SERVE_H
#define HOTSPLICE_TARGET_SERVE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The loop alone, after the ready line (a target that must do something
 * between the two, like entering seccomp strict mode, calls this). It makes
 * no system call but read and write. */
static int serve_lines(int (*handle)(const char *line)) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "ping") == 0)
      printf("pong\n");
    else if (strcmp(line, "quit") == 0)
      break;
    else if (!handle(line))
      printf("error unknown command %s\n", line);
    fflush(stdout);
  }
  return 0;
}

static int serve(int (*handle)(const char *line)) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  return serve_lines(handle);
}

#endif
