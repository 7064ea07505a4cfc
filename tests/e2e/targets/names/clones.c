/* names_clones: a C target (-O2) shaped so that GCC renames and splits the
 * functions the Names.* tests patch by their source names (the tests check
 * the binary's symbol table for each):
 *   parse     IPA-SRA       -> parse.isra.0(int len)     (only r->len is used)
 *   scale     IPA-CP        -> scale.constprop.0(int x)  (factor is always 10)
 *   classify  partial inlining: its head (x < 16) is inlined into callers,
 *             the rest is classify.part.0(int x)
 *   checked   a cold path   -> checked + checked.cold (which calls cold_wait)
 *   tally     global, so it stays, but split too: the callers here inline
 *             its head and call tally.part.0
 * No noipa: noinline only keeps parse, scale and checked out of line.
 *
 * Protocol (serve.h): "ready <pid>", then one answer per line:
 *   parse N    -> "parse=<3N>"
 *   scale N    -> "scale=<10N+1>"
 *   classify N -> "classify=<N if N < 16, else from its table>"
 *   checked N  -> "checked=<N+5>" (N >= 0)
 *   tally N    -> "tally=<N if N < 16, else from its table>"
 *   park       -> a thread calls checked(-1), whose cold path blocks in
 *                 cold_wait's read(2); answered once it does:
 *                 "parked tid=<tid> ret=<return address into checked.cold> checked=<&checked>"
 *   release    -> "released checked=<what checked(-1) returned>"
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../serve.h"

struct req {
  int len;
  int kind;
  char pad[64];
};
volatile int sink;
__attribute__((cold)) void cold_wait(void); /* clones_wait.c */

static __attribute__((noinline)) int parse(const struct req *r) {
  sink = r->len;
  return r->len * 3;
}

static __attribute__((noinline)) int scale(int x, int factor) {
  sink = x;
  return x * factor + 1;
}

static int table[64];
static int classify(int x) {
  if (x < 16) return x;
  int acc = 0;
  for (int i = 0; i < 64; i++) {
    acc += table[i] * x + (acc >> 3);
    if (acc > 100000) acc -= x * i;
    sink = acc;
  }
  for (int i = 0; i < 64; i++) table[i] += acc ^ i;
  return acc % 1000 + 100;
}

/* Global, so it keeps its own symbol; its callers here inline its head and
 * call tally.part.0 (the same shape as classify). */
static int table2[64];
int tally(int x) {
  if (x < 16) return x;
  int acc = 0;
  for (int i = 0; i < 64; i++) {
    acc += table2[i] * x + (acc >> 3);
    if (acc > 100000) acc -= x * i;
    sink = acc;
  }
  for (int i = 0; i < 64; i++) table2[i] += acc ^ i;
  return acc % 1000 + 200;
}

__attribute__((noinline)) int checked(int x) {
  if (__builtin_expect(x < 0, 0)) {
    cold_wait();
    fprintf(stderr, "checked: negative %d\n", x);
    return -1;
  }
  sink = x;
  return x + 5;
}

/* Shared with clones_wait.c. */
int release_pipe[2];
volatile pid_t parked_tid;
void *volatile parked_ret;
static pthread_t parker;
static int parked_result;

static void *park_thread(void *arg) {
  (void)arg;
  parked_tid = (pid_t)syscall(SYS_gettid);
  parked_result = checked(-1);
  return NULL;
}

/* Waits until thread `tid` sits in read(2) on the release pipe. */
static void wait_blocked(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  for (;;) {
    FILE *f = fopen(path, "r");
    if (f) {
      size_t n = fread(buf, 1, sizeof buf - 1, f);
      fclose(f);
      buf[n] = 0;
      long nr;
      unsigned long fd;
      if (sscanf(buf, "%ld %lx", &nr, &fd) == 2 && nr == SYS_read && fd == (unsigned long)release_pipe[0]) return;
    }
    sched_yield();
  }
}

static int handle(const char *line) {
  int n = 0;
  struct req r;
  memset(&r, 0, sizeof r);
  if (sscanf(line, "parse %d", &n) == 1) {
    r.len = n;
    printf("parse=%d\n", parse(&r));
  } else if (sscanf(line, "scale %d", &n) == 1) {
    printf("scale=%d\n", scale(n, 10));
  } else if (sscanf(line, "classify %d", &n) == 1) {
    printf("classify=%d\n", classify(n));
  } else if (sscanf(line, "tally %d", &n) == 1) {
    printf("tally=%d\n", tally(n));
  } else if (sscanf(line, "checked %d", &n) == 1) {
    printf("checked=%d\n", checked(n));
  } else if (strcmp(line, "park") == 0) {
    parked_tid = 0;
    if (pthread_create(&parker, NULL, park_thread, NULL)) exit(2);
    while (!parked_tid) sched_yield();
    wait_blocked(parked_tid);
    printf("parked tid=%d ret=%p checked=%p\n", (int)parked_tid, parked_ret, (void *)checked);
  } else if (strcmp(line, "release") == 0) {
    char c = 'x';
    if (write(release_pipe[1], &c, 1) != 1) exit(2);
    pthread_join(parker, NULL);
    printf("released checked=%d\n", parked_result);
  } else {
    return 0;
  }
  return 1;
}

/* More callers, so the copies are worth making (and not only one call site). */
int use_more(int v) {
  struct req r = {v, 0, {0}};
  return parse(&r) + scale(v + 1, 10) + classify(v + 3);
}

int main(void) {
  if (pipe(release_pipe)) return 2;
  return serve(handle);
}
