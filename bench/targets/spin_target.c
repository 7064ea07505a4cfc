/* spin_target: the program the stop-window, wall-time and upload benchmarks
 * patch. Linked with the generated funcs.c, which defines the patchable
 * functions f0 .. f<N-1> and bench_table[] / bench_nfuncs.
 *
 *   spin_target [K]     K threads (default 8) block in read() on a pipe that
 *                       is never written; one spinner thread; the main thread
 *                       reads commands from stdin (so it is blocked too).
 *
 * The spinner sleeps until armed. While armed it reads CLOCK_MONOTONIC in a
 * tight loop and keeps the longest gap between two consecutive reads; a
 * gap is time the thread did not run: stopped by ptrace, or preempted.
 * Gaps longer than 10 us are also kept (up to 4096, with their start and end
 * time) so that the gap covering a given interval can be asked for.
 *
 * Protocol (one answer line per input line, "ready <pid> <K>" first):
 *   arm           -> "armed"        spinner is spinning, gaps reset
 *   gap T0 T1     -> "max=<ns> iters=<n> span=<ns> cover=<ns> long=<n>"
 *                    stops the spinner; max = longest gap since arm, span =
 *                    time spun, cover = longest gap overlapping [T0, T1]
 *                    (CLOCK_MONOTONIC ns; 0 0 = none), long = gaps > 10 us
 *   call          -> "sum=<s>"      sum of f_i(1) over every function
 *   ping          -> "pong"
 *   quit / EOF    -> exit 0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern int (*const bench_table[])(int);
extern const int bench_nfuncs;

#define MAX_LONG_GAPS 4096
#define LONG_GAP_NS 10000ull

static int block_pipe[2];
static atomic_int blocked_started;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int want_spin;       /* under mu: main asks the spinner to spin */
static int spinning;        /* under mu: spinner's acknowledgement */
static atomic_int keep_spinning;

/* Results of the last spin, written by the spinner before it acknowledges
 * the stop (under mu). */
static uint64_t res_max, res_iters, res_span;
static uint64_t gap_from[MAX_LONG_GAPS], gap_to[MAX_LONG_GAPS];
static unsigned n_long;

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *blocked_thread(void *arg) {
  (void)arg;
  char c;
  atomic_fetch_add(&blocked_started, 1);
  /* Nobody writes this pipe: the thread stays in read() until exit. */
  while (read(block_pipe[0], &c, 1) < 0) {
  }
  return NULL;
}

static void *spinner(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (!want_spin) pthread_cond_wait(&cv, &mu);
    n_long = 0;
    atomic_store(&keep_spinning, 1);
    spinning = 1;
    /* Timed from before the acknowledgement: if waking the main thread
     * costs the spinner its CPU, that gap counts too. */
    uint64_t start = now_ns(), prev = start, max = 0, iters = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);

    unsigned nl = 0;
    /* At least one iteration after the last stop request: a spinner kept
     * off the CPU from here until "gap" still reports that gap. */
    do {
      uint64_t t = now_ns();
      uint64_t d = t - prev;
      if (d > max) max = d;
      if (d > LONG_GAP_NS && nl < MAX_LONG_GAPS) {
        gap_from[nl] = prev;
        gap_to[nl] = t;
        nl++;
      }
      prev = t;
      iters++;
    } while (atomic_load_explicit(&keep_spinning, memory_order_relaxed));

    pthread_mutex_lock(&mu);
    res_max = max;
    res_iters = iters;
    res_span = prev - start;
    n_long = nl;
    spinning = 0;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

static pthread_t start_thread(void *(*fn)(void *)) {
  pthread_attr_t a;
  pthread_t t;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  if (pthread_create(&t, &a, fn, NULL) != 0) {
    printf("error pthread_create\n");
    exit(2);
  }
  pthread_attr_destroy(&a);
  return t;
}

int main(int argc, char **argv) {
  int k = argc > 1 ? atoi(argv[1]) : 8;
  char line[256];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (k < 0 || k > 4096 || pipe(block_pipe) != 0) {
    printf("error bad thread count or pipe\n");
    return 2;
  }
  for (int i = 0; i < k; i++) start_thread(blocked_thread);
  start_thread(spinner);
  while (atomic_load(&blocked_started) < k) usleep(1000);
  usleep(10000); /* let the last ones reach read() */
  printf("ready %d %d\n", (int)getpid(), k);

  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    unsigned long long t0 = 0, t1 = 0;
    if (strcmp(line, "arm") == 0) {
      pthread_mutex_lock(&mu);
      want_spin = 1;
      pthread_cond_broadcast(&cv);
      while (!spinning) pthread_cond_wait(&cv, &mu);
      pthread_mutex_unlock(&mu);
      printf("armed\n");
    } else if (sscanf(line, "gap %llu %llu", &t0, &t1) == 2) {
      pthread_mutex_lock(&mu);
      want_spin = 0;
      atomic_store(&keep_spinning, 0);
      while (spinning) pthread_cond_wait(&cv, &mu);
      uint64_t cover = 0;
      for (unsigned i = 0; i < n_long; i++)
        if (gap_from[i] < t1 && t0 < gap_to[i] && gap_to[i] - gap_from[i] > cover) cover = gap_to[i] - gap_from[i];
      printf("max=%llu iters=%llu span=%llu cover=%llu long=%u\n", (unsigned long long)res_max,
             (unsigned long long)res_iters, (unsigned long long)res_span, (unsigned long long)cover, n_long);
      pthread_mutex_unlock(&mu);
    } else if (strcmp(line, "call") == 0) {
      long long sum = 0;
      for (int i = 0; i < bench_nfuncs; i++) sum += bench_table[i](1);
      printf("sum=%lld\n", sum);
    } else if (strcmp(line, "ping") == 0) {
      printf("pong\n");
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("error unknown command %s\n", line);
    }
    fflush(stdout);
  }
  /* Blocked threads never return; exit takes them down. */
  exit(0);
}
