/* spin8: 8 threads call value() in a tight loop while a test patches it.
 * value() returns 1 (old); value_v2.c makes it 2 (new). Any other result,
 * e.g. from executing a half-written jump, counts as bad.
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"   printed once all 8 threads are running
 *   stats      -> "calls=<N> bad=<M> last=<v>"  N total calls so far, M results
 *                 not in {1, 2}, v the most recent result of thread 0
 *   ping       -> "pong"
 *   quit / EOF -> stop and join the threads, exit 0 (exit 3 if any bad result)
 *   other      -> "error unknown command <line>"
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve.h"

#define NTHREADS 8

volatile int value_sink;

__attribute__((noipa)) int value(void) {
  value_sink++;
  return 1;
}

static atomic_int stop;
static atomic_int started;
static atomic_ullong calls;
static atomic_ullong bad;
static atomic_int last;

static void *spin(void *arg) {
  int id = (int)(long)arg;
  unsigned long long local = 0;
  atomic_fetch_add(&started, 1);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    int v = value();
    if (v != 1 && v != 2) atomic_fetch_add(&bad, 1);
    if (id == 0) atomic_store_explicit(&last, v, memory_order_relaxed);
    if (++local == 4096) {
      atomic_fetch_add_explicit(&calls, local, memory_order_relaxed);
      local = 0;
      sched_yield(); /* the machine is shared; stay tight but polite */
    }
  }
  atomic_fetch_add_explicit(&calls, local, memory_order_relaxed);
  return NULL;
}

static int handle(const char *line) {
  if (strcmp(line, "stats") != 0) return 0;
  printf("calls=%llu bad=%llu last=%d\n", (unsigned long long)atomic_load(&calls),
         (unsigned long long)atomic_load(&bad), atomic_load(&last));
  return 1;
}

int main(void) {
  pthread_t threads[NTHREADS];
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long i = 0; i < NTHREADS; i++) {
    if (pthread_create(&threads[i], NULL, spin, (void *)i) != 0) {
      printf("error pthread_create\n");
      return 2;
    }
  }
  while (atomic_load(&started) < NTHREADS) usleep(1000);
  serve(handle);
  atomic_store(&stop, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(threads[i], NULL);
  return atomic_load(&bad) ? 3 : 0;
}
