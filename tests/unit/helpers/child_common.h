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

#endif
