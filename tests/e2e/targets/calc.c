/* calc: statics, globals and libc for patches to use.
 *   static int helper_static(int)   a local function patches call (libc_call.c)
 *   static int static_counter       a local variable patches read/write (globals.c)
 *   int global_counter              a global variable patches read/write (globals.c, hooks.c)
 *   render(buf, n, v)               patched by libc_call.c
 *   bump()                          patched by globals.c
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"
 *   render N   -> "render=<text>"   original text: "v<N>"
 *   bump       -> "bump=<bump()>"   original: global_counter += 1, returns it
 *   get        -> "global=<global_counter> static=<static_counter>"
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

int global_counter;
static int static_counter = 5;

/* noipa keeps the symbol under its own name (no .isra/.constprop clone). */
__attribute__((noipa)) static int helper_static(int v) {
  static_counter++;
  return v * 7;
}

__attribute__((noipa)) int render(char *buf, size_t n, int v) {
  if (v < 0) return snprintf(buf, n, "neg%d", helper_static(-v));
  return snprintf(buf, n, "v%d", v);
}

__attribute__((noipa)) int bump(void) {
  global_counter += 1;
  return global_counter;
}

static int handle(const char *line) {
  char buf[128];
  if (strncmp(line, "render ", 7) == 0) {
    render(buf, sizeof buf, atoi(line + 7));
    printf("render=%s\n", buf);
  } else if (strcmp(line, "bump") == 0) {
    printf("bump=%d\n", bump());
  } else if (strcmp(line, "get") == 0) {
    printf("global=%d static=%d\n", global_counter, static_counter);
  } else {
    return 0;
  }
  return 1;
}

int main(void) { return serve(handle); }
