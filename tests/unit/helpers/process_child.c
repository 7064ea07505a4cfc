/* The process-layer test helper (tests/unit/process_test.cc): runs in one of
   several modes chosen by argv, prints "ready ..." and answers commands. */
#include "child_common.h"
#include <math.h>
#include <sched.h>

static pid_t tid_self(void) { return (pid_t)syscall(SYS_gettid); }

static void command_loop(void) {
  char line[128];
  for (;;) {
    if (read_line(line, sizeof line) < 0) exit(0);
    if (!strcmp(line, "count")) say("count %d\n", (int)usr1_count);
    else if (!strcmp(line, "q")) exit(0);
    else if (!strcmp(line, "libm")) say("libm %f\n", cos((double)usr1_count));
  }
}

static volatile int started;
static volatile unsigned long work;

/* Workers of three kinds: computing (with short sleeps), sleeping in a
   loop, and blocked in a futex wait forever. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void *worker(void *arg) {
  long kind = (long)arg % 3;
  __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
  if (kind == 0) {
    for (;;) {
      for (int i = 0; i < 200000; i++) work++;
      struct timespec ts = {0, 200000};
      nanosleep(&ts, 0);
    }
  } else if (kind == 1) {
    for (;;) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, 0);
    }
  } else {
    pthread_mutex_lock(&mu);
    for (;;) pthread_cond_wait(&cv, &mu);
  }
  return 0;
}

/* A thread that never blocks: it counts, for the two-wave stop. */
static volatile unsigned long spin_count;
static volatile pid_t spin_tid;
static void *spinner(void *arg) {
  (void)arg;
  spin_tid = tid_self();
  for (;;) spin_count++;
  return 0;
}

static void *noop(void *arg) { return arg; }
static void *churner(void *arg) {
  (void)arg;
  __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
  for (;;) {
    pthread_t t;
    if (pthread_create(&t, 0, noop, 0) == 0) pthread_join(t, 0);
  }
  return 0;
}

/* The red-zone thread (redzone_loop: child_common.h). */
static volatile int rz_stop, rz_started;
static volatile pid_t rz_tid;
static int rz_result;
static void *redzone_thread(void *arg) {
  (void)arg;
  rz_tid = tid_self();
  rz_result = redzone_loop(&rz_stop, &rz_started);
  return 0;
}

static void *command_thread(void *arg) {
  (void)arg;
  command_loop();
  return 0;
}

int main(int argc, char **argv) {
  install_usr1_counter();
  if (argc < 2) return 2;
  const char *mode = argv[1];

  if (!strcmp(mode, "threads")) {            /* threads N: N workers + command loop */
    int n = argc > 2 ? atoi(argv[2]) : 0;
    for (long i = 0; i < n; i++) {
      pthread_t t;
      pthread_create(&t, 0, worker, (void *)i);
    }
    while (started < n) sched_yield();
    say("ready %p\n", (void *)main);
    command_loop();
  } else if (!strcmp(mode, "spinner")) {     /* spinner N: one spinner, N blocked workers */
    int n = atoi(argv[2]);
    for (long i = 0; i < n; i++) {
      pthread_t t;
      pthread_create(&t, 0, worker, (void *)(3 * i + 2)); /* kind 2: futex wait */
    }
    pthread_t t;
    pthread_create(&t, 0, spinner, 0);
    while (started < n || !spin_tid || spin_count == 0) sched_yield();
    say("ready %d %p\n", (int)spin_tid, (void *)&spin_count);
    command_loop();
  } else if (!strcmp(mode, "churn")) {       /* threads creating threads */
    for (int i = 0; i < 3; i++) {
      pthread_t t;
      pthread_create(&t, 0, churner, 0);
    }
    while (started < 3) sched_yield();
    say("ready\n");
    command_loop();
  } else if (!strcmp(mode, "pipe")) {        /* one blocking read on stdin */
    say("ready\n");
    char buf[64];
    ssize_t r = read(0, buf, sizeof buf - 1);
    int e = errno;
    if (r > 0) {
      buf[r] = 0;
      if (buf[r - 1] == '\n') buf[r - 1] = 0;
    }
    say("read %d [%s] %d\n", (int)r, r > 0 ? buf : "", r < 0 ? e : 0);
    return 0;
  } else if (!strcmp(mode, "sleep")) {       /* one nanosleep of N ms */
    int ms = atoi(argv[2]);
    struct timespec a, b, ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    say("ready\n");
    clock_gettime(CLOCK_MONOTONIC, &a);
    int r = nanosleep(&ts, 0);
    int e = errno;
    clock_gettime(CLOCK_MONOTONIC, &b);
    long elapsed = (b.tv_sec - a.tv_sec) * 1000L + (b.tv_nsec - a.tv_nsec) / 1000000L;
    say("slept %d %d %ld\n", r, r ? e : 0, elapsed);
    return 0;
  } else if (!strcmp(mode, "redzone")) {
    pthread_t t;
    pthread_create(&t, 0, redzone_thread, 0);
    while (!rz_started) sched_yield();
    say("ready %d %p %p\n", (int)rz_tid, (void *)redzone_loop, (void *)redzone_loop_end);
    char line[64];
    read_line(line, sizeof line);
    rz_stop = 1;
    pthread_join(t, 0);
    say("redzone %d\n", rz_result);
    return 0;
  } else if (!strcmp(mode, "leaderexit")) {  /* main thread exits, the process lives on */
    pthread_t t;
    pthread_create(&t, 0, command_thread, 0);
    say("ready\n");
    pthread_exit(0);
  } else if (!strcmp(mode, "leaderexit-later")) {  /* main thread exits on SIGUSR2 */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, 0);
    pthread_t t;
    pthread_create(&t, 0, command_thread, 0);
    say("ready\n");
    int sig;
    sigwait(&s, &sig);
    pthread_exit(0);
  } else if (!strcmp(mode, "vfork")) {       /* leader stuck in vfork(), workers around */
    for (long i = 0; i < 4; i++) {
      pthread_t t;
      pthread_create(&t, 0, worker, (void *)i);
    }
    while (started < 4) sched_yield();
    pid_t c = vfork();
    if (c == 0) {
      say("child %d\n", (int)getpid());
      char b;
      ssize_t r = read(0, &b, 1);
      (void)r;
      _exit(0);
    }
    command_loop();
  }
  return 2;
}
