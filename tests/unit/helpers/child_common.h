/* What the unit-test helper programs share: the SIGUSR1 counter, a write(2)
   based printf for the pipe to the test, and a line reader that restarts
   on EINTR (the tests interrupt it on purpose). */
#ifndef HS_TEST_CHILD_COMMON_H
#define HS_TEST_CHILD_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig) { (void)sig; usr1_count++; }

/* Counts SIGUSR1 in usr1_count; interrupted system calls restart. */
static void install_usr1_counter(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, 0);
}

static void say(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) { ssize_t w = write(1, buf, (size_t)n); (void)w; }
}

/* One line from stdin, restarting on EINTR; -1 at EOF. */
static int read_line(char *buf, int cap) {
  int n = 0;
  while (n < cap - 1) {
    char c;
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return n ? n : -1;
    if (c == '\n') break;
    buf[n++] = c;
  }
  buf[n] = 0;
  return n;
}

/* Fills the 128-byte red zone below its stack pointer with a pattern, sets
   *started, then checks the pattern over and over until *stop; returns 1 if
   it ever changed. It never moves rsp and calls nothing, so nothing
   legitimate writes there: only a tracer that borrowed the thread could. */
int redzone_loop(volatile int *stop, volatile int *started);
extern char redzone_loop_end[];
__asm__(
    ".text\n"
    ".globl redzone_loop\n"
    ".type redzone_loop,@function\n"
    "redzone_loop:\n"
    "  movabs $0x5a5a000000000000, %rax\n"
    "  mov $16, %ecx\n"
    "  lea -128(%rsp), %rdx\n"
    "1: mov %rax, (%rdx)\n"
    "  inc %rax\n"
    "  add $8, %rdx\n"
    "  dec %ecx\n"
    "  jnz 1b\n"
    "  movl $1, (%rsi)\n"
    "2: movabs $0x5a5a000000000000, %rax\n"
    "  mov $16, %ecx\n"
    "  lea -128(%rsp), %rdx\n"
    "3: cmp %rax, (%rdx)\n"
    "  jne 4f\n"
    "  inc %rax\n"
    "  add $8, %rdx\n"
    "  dec %ecx\n"
    "  jnz 3b\n"
    "  cmpl $0, (%rdi)\n"
    "  je 2b\n"
    "  xor %eax, %eax\n"
    "  ret\n"
    "4: mov $1, %eax\n"
    "  ret\n"
    ".globl redzone_loop_end\n"
    "redzone_loop_end:\n"
    ".size redzone_loop, .-redzone_loop\n");

#endif
