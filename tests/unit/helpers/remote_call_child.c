/* The remote-call test helper (tests/unit/remote_call_test.cc): prints the
   addresses of the functions the tests call in it, then answers commands. */
#include "child_common.h"

/* ---- functions the tests call ---- */

static volatile long calls, last_sum;

__attribute__((noipa)) long add6(long a, long b, long c, long d, long e, long f) {
  calls++;
  last_sum = a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
  return last_sum;
}

__attribute__((noipa)) void crash(void) { *(volatile int *)16 = 1; }

__attribute__((noipa)) void die(void) { _exit(7); }

__attribute__((noipa)) void do_abort(void) { abort(); }

__attribute__((noipa)) long sleep_forever(void) {
  for (;;) pause();
  return 0;
}

/* Sleeps `ms`, then overwrites every vector register and the MXCSR
   rounding mode (callee-saved: a well-behaved function would put it back)
   and returns calls + 1000. For the tests that kill the caller meanwhile. */
__attribute__((noipa)) long slow_clobber(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  unsigned int mxcsr = 0x7f80;  /* all exceptions masked, round toward zero */
  __asm__ volatile(
      "pcmpeqd %%xmm0, %%xmm0\n movdqa %%xmm0, %%xmm1\n movdqa %%xmm0, %%xmm2\n movdqa %%xmm0, %%xmm3\n"
      "movdqa %%xmm0, %%xmm4\n movdqa %%xmm0, %%xmm5\n movdqa %%xmm0, %%xmm6\n movdqa %%xmm0, %%xmm7\n"
      "movdqa %%xmm0, %%xmm8\n movdqa %%xmm0, %%xmm9\n movdqa %%xmm0, %%xmm10\n movdqa %%xmm0, %%xmm11\n"
      "movdqa %%xmm0, %%xmm12\n movdqa %%xmm0, %%xmm13\n movdqa %%xmm0, %%xmm14\n movdqa %%xmm0, %%xmm15\n"
      "ldmxcsr %0\n"
      :
      : "m"(mxcsr)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15");
  calls++;
  return calls + 1000;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static volatile int holding;
__attribute__((noipa)) long take_lock(void) {
  pthread_mutex_lock(&mu);
  pthread_mutex_unlock(&mu);
  return 1;
}

static void *answer(void *arg) { (void)arg; return (void *)42; }
__attribute__((noipa)) long spawn_and_join(void) {
  pthread_t t;
  void *r = 0;
  if (pthread_create(&t, 0, answer, 0) != 0) return -1;
  pthread_join(t, &r);
  return (long)r;
}

static volatile int spawned_ran;
static void *count_spawned(void *arg) {
  (void)arg;
  __atomic_add_fetch(&spawned_ran, 1, __ATOMIC_SEQ_CST);
  return 0;
}
__attribute__((noipa)) long spawn_detached(void) {
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  return pthread_create(&t, &at, count_spawned, 0);
}

/* (rsp + 8) % 16 at entry: 0 when the psABI alignment holds. */
long align_probe(void);
/* Writes every general register the psABI lets a callee change, and every
   vector register. */
long clobber(void);
__asm__(
    ".text\n"
    ".globl align_probe\n"
    ".type align_probe,@function\n"
    "align_probe:\n"
    "  lea 8(%rsp), %rax\n"
    "  and $15, %rax\n"
    "  ret\n"
    ".size align_probe, .-align_probe\n"
    ".globl clobber\n"
    ".type clobber,@function\n"
    "clobber:\n"
    "  movabs $0x1111111111111111, %rax\n"
    "  mov %rax, %rcx\n"
    "  mov %rax, %rdx\n"
    "  mov %rax, %rsi\n"
    "  mov %rax, %rdi\n"
    "  mov %rax, %r8\n"
    "  mov %rax, %r9\n"
    "  mov %rax, %r10\n"
    "  mov %rax, %r11\n"
    "  movq %rax, %xmm0\n"
    "  pshufd $0, %xmm0, %xmm0\n"
    "  movdqa %xmm0, %xmm1\n"
    "  movdqa %xmm0, %xmm2\n"
    "  movdqa %xmm0, %xmm3\n"
    "  movdqa %xmm0, %xmm4\n"
    "  movdqa %xmm0, %xmm5\n"
    "  movdqa %xmm0, %xmm6\n"
    "  movdqa %xmm0, %xmm7\n"
    "  movdqa %xmm0, %xmm8\n"
    "  movdqa %xmm0, %xmm15\n"
    "  subq $64, %rsp\n"
    "  movq $0x2222, (%rsp)\n"
    "  addq $64, %rsp\n"
    "  std\n"
    "  cld\n"
    "  mov $0x77, %eax\n"
    "  ret\n"
    ".size clobber, .-clobber\n");

/* The red-zone thread (redzone_loop: child_common.h). */
static volatile int rz_stop, rz_started;
static volatile pid_t rz_tid;
static int rz_result = -1;
static void *redzone_thread(void *arg) {
  (void)arg;
  rz_tid = (pid_t)syscall(SYS_gettid);
  rz_result = redzone_loop(&rz_stop, &rz_started);
  return 0;
}

static volatile pid_t holder_tid;
static void *holder(void *arg) {
  (void)arg;
  holder_tid = (pid_t)syscall(SYS_gettid);
  pthread_mutex_lock(&mu);
  holding = 1;
  for (;;) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  install_usr1_counter();
  const char *mode = argc > 1 ? argv[1] : "";
  pthread_t t;
  if (!strcmp(mode, "redzone")) {
    pthread_create(&t, 0, redzone_thread, 0);
    while (!rz_started) sched_yield();
  } else if (!strcmp(mode, "holder")) {
    pthread_create(&t, 0, holder, 0);
    while (!holding) sched_yield();
  }
  say("ready add6=%p crash=%p die=%p abort=%p sleep=%p lock=%p spawn=%p detached=%p align=%p clobber=%p "
      "slow=%p rz_tid=%d holder_tid=%d\n",
      (void *)add6, (void *)crash, (void *)die, (void *)do_abort, (void *)sleep_forever, (void *)take_lock,
      (void *)spawn_and_join, (void *)spawn_detached, (void *)align_probe, (void *)clobber,
      (void *)slow_clobber, (int)rz_tid, (int)holder_tid);
  char line[128];
  for (;;) {
    if (read_line(line, sizeof line) < 0) return 0;
    if (!strcmp(line, "get")) say("calls=%ld sum=%ld usr1=%d\n", calls, last_sum, (int)usr1_count);
    else if (!strcmp(line, "stop")) {
      rz_stop = 1;
      pthread_join(t, 0);
      say("redzone %d\n", rz_result);
    } else if (!strcmp(line, "spawned")) say("spawned=%d\n", (int)spawned_ran);
    else if (!strcmp(line, "q")) return 0;
    else say("error %s\n", line);
  }
}
