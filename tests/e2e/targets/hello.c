/* hello: the basic target. Patched functions: hello(), world(), side_effect().
 *
 * Protocol (one answer line per input line, stdout flushed after each):
 *   start      -> "ready <pid>"
 *   call       -> "hello=<hello()> count=<n>"  n counts "call" commands (kept in
 *                 main, so a patched hello() does not change it)
 *   world      -> "world=<world()>"
 *   side       -> "side=<side_effect()>"  side_effect() bumps side_counter and
 *                 returns it; NOPing its first 5 bytes (a call) stops the bump
 *   ping       -> "pong"
 *   quit / EOF -> exit 0
 *   other      -> "error unknown command <line>"
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

/* Every patchable function is noipa (no inlining, cloning or IPA constant
 * propagation into callers) and touches a volatile so it has a real body well
 * over 5 bytes. */
volatile int hello_sink;

__attribute__((noipa)) int hello(void) {
  hello_sink++;
  return 1;
}

__attribute__((noipa)) int world(void) {
  hello_sink += 2;
  return 10;
}

/* side_effect is written in assembler so its layout is known exactly:
 *   side_effect:
 *     e8 <rel32>        call bump_side        <- the 5 bytes nop.c NOPs out
 *     8b 05 <rel32>     mov side_counter(%rip), %eax
 *     c3                ret
 * bump_side increments side_counter; it needs no stack alignment. */
int side_counter;
int side_effect(void);
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl bump_side\n"
    "  .type bump_side, @function\n"
    "bump_side:\n"
    "  addl $1, side_counter(%rip)\n"
    "  ret\n"
    "  .size bump_side, .-bump_side\n"
    "  .p2align 4\n"
    "  .globl side_effect\n"
    "  .type side_effect, @function\n"
    "side_effect:\n"
    "  call bump_side\n"
    "  movl side_counter(%rip), %eax\n"
    "  ret\n"
    "  .size side_effect, .-side_effect\n");

static int handle(const char *line) {
  static int count;  /* "call" commands, kept here so a patched hello() cannot change it */
  if (strcmp(line, "call") == 0) {
    int v = hello();
    printf("hello=%d count=%d\n", v, ++count);
  } else if (strcmp(line, "world") == 0) {
    printf("world=%d\n", world());
  } else if (strcmp(line, "side") == 0) {
    printf("side=%d\n", side_effect());
  } else {
    return 0;
  }
  return 1;
}

int main(void) { return serve(handle); }
