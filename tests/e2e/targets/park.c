/* park: a worker thread that stops inside a function on command and stays
 * there until told to go on, for the activeness tests (activeness_test.cc).
 *
 * Patched functions (each returns a fixed value when not blocking):
 *   parked(block)     1   blocks with a system call made by parked() itself,
 *                         so the worker's PC is inside parked()
 *   outer(block)      10  blocks in blocker(), which it calls: only a return
 *                         address is inside outer()
 *   descend(n, block) n   recursive, n + 1 frames deep; the innermost one
 *                         calls blocker()
 *   hold(n, block)    100 calls deep(n, block) (not patched), which recurses
 *                         n + 1 frames and blocks in blocker(): hold()'s
 *                         return address sits n + 2 frames down the stack
 *   other()           7   never blocks (for a payload unrelated to the
 *                         blocked thread)
 * plus two functions in assembler that block with the PC in them:
 * nocfi_block() has no unwind information (CFI); corrupt_block() has, but
 * moves the stack pointer to unmapped memory first (a corrupt stack).
 *
 * Protocol (one answer line per input line, stdout flushed after each):
 *   start             -> "ready <pid>"
 *   call F            -> "F=<F(0)>" for F in parked, outer, other;
 *                        "F=<F(4, 0)>" for descend, hold
 *   park F [N]        -> the worker calls F with block=1 (N: the depth for
 *                        descend and hold, default 4; F may also be nocfi
 *                        or corrupt); once
 *                        it sits in its read(2) system call:
 *                        "parked tid=<worker tid> pc=<its pc> ret=<addr>"
 *                        where addr is the return address into F (for
 *                        outer, descend: blocker()'s return address; for
 *                        hold: deep()'s outermost return address; 0x0 for
 *                        parked, nocfi and corrupt, which block in themselves)
 *   release           -> lets the worker go on; once its call has returned:
 *                        "released F=<value it returned>"
 *   ping              -> "pong"
 *   quit / EOF        -> exit 0
 *   other             -> "error unknown command <line>"
 * The worker blocks reading a pipe that only "release" writes to, so it
 * stays where it is for as long as a test needs, without timing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serve.h"

volatile int sink;

static int release_pipe[2];   /* "release" -> worker */
static int order_pipe[2];     /* main -> worker: what to call */
static int done_pipe[2];      /* worker -> main: "now blocking", "returned" */
static void* volatile park_ret;  /* return address into the parked function */
static volatile int deep_top;

/* read(2) as an inline system call, so the PC of a blocked thread is in
 * the function that inlines this. */
static inline __attribute__((always_inline)) long raw_read(int fd, void* buf, long n) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_read), "D"((long)fd), "S"(buf), "d"(n)
                   : "rcx", "r11", "memory");
  return ret;
}

static void tell_main(char c) {
  while (write(done_pipe[1], &c, 1) != 1) {
  }
}

/* Tells the main thread it is about to block, then waits for "release". */
#define BLOCK_HERE()                                    \
  do {                                                  \
    char c_;                                            \
    tell_main('b');                                     \
    while (raw_read(release_pipe[0], &c_, 1) != 1) {    \
    }                                                   \
  } while (0)

__attribute__((noipa)) void blocker(void) {
  if (!park_ret) park_ret = __builtin_return_address(0);
  BLOCK_HERE();
  sink++;
}

__attribute__((noipa)) int parked(int block) {
  sink++;
  if (block) BLOCK_HERE();
  sink++;
  return 1;
}

__attribute__((noipa)) int outer(int block) {
  sink++;
  if (block) blocker();
  sink++;
  return 10;
}

/* What descend() and deep() do: recurse n levels through `self` and block
 * at the bottom if asked; return n. The volatile store after each recursive
 * call keeps it from becoming a tail call (or a loop): every level keeps its
 * frame. */
#define RECURSE_THEN_BLOCK(self, n, block) \
  do {                                     \
    if ((n) == 0) {                        \
      if (block) blocker();                \
      return 0;                            \
    }                                      \
    int r = self((n) - 1, (block));        \
    sink = r;                              \
    return r + 1;                          \
  } while (0)

__attribute__((noipa)) int descend(int n, int block) { RECURSE_THEN_BLOCK(descend, n, block); }

__attribute__((noipa)) int deep(int n, int block) {
  if (n == deep_top && !park_ret) park_ret = __builtin_return_address(0);
  RECURSE_THEN_BLOCK(deep, n, block);
}

__attribute__((noipa)) int hold(int n, int block) {
  sink++;
  deep_top = n;
  int r = deep(n, block);
  sink = r;
  return 100;
}

__attribute__((noipa)) int other(void) {
  sink += 3;
  return 7;
}

/* Assembler functions that block with the PC in them, as nothing compiled
 * from C would: nocfi_block() has no unwind information (no .cfi_*
 * directives), so no unwinder can step from it to its caller honestly;
 * corrupt_block() has correct CFI but then points the stack pointer at
 * unmapped memory (as a corrupt stack would), so its CFI leads nowhere.
 * Both leave %rbp alone: following frame pointers would still "work". */
int release_fd;
char park_byte;
__attribute__((noipa, used)) void park_tell(void) { tell_main('b'); }

void nocfi_block(void);
void corrupt_block(void);
/* The loop both block in: read(release_fd, &park_byte, 1) until it reads
 * the byte; `label` is the loop's local label. */
#define READ_RELEASE_BYTE(label)      \
  label ":\n"                         \
  "  movl release_fd(%rip), %edi\n"   \
  "  lea park_byte(%rip), %rsi\n"     \
  "  mov $1, %edx\n"                  \
  "  xor %eax, %eax\n"                \
  "  syscall\n"                       \
  "  cmp $1, %rax\n"                  \
  "  jne " label "b\n"
__asm__(
    "  .text\n"
    "  .p2align 4\n"
    "  .globl nocfi_block\n"
    "  .type nocfi_block, @function\n"
    "nocfi_block:\n"
    "  push %rbx\n"
    "  call park_tell\n"
    READ_RELEASE_BYTE("1")
    "  pop %rbx\n"
    "  ret\n"
    "  .size nocfi_block, .-nocfi_block\n"
    "\n"
    "  .p2align 4\n"
    "  .globl corrupt_block\n"
    "  .type corrupt_block, @function\n"
    "corrupt_block:\n"
    "  .cfi_startproc\n"
    "  push %rbx\n"
    "  .cfi_adjust_cfa_offset 8\n"
    "  .cfi_rel_offset %rbx, 0\n"
    "  call park_tell\n"
    "  mov %rsp, %rbx\n"
    "  mov $16, %rsp\n"
    READ_RELEASE_BYTE("2")
    "  mov %rbx, %rsp\n"
    "  pop %rbx\n"
    "  .cfi_adjust_cfa_offset -8\n"
    "  .cfi_restore %rbx\n"
    "  ret\n"
    "  .cfi_endproc\n"
    "  .size corrupt_block, .-corrupt_block\n");

struct order {
  char fn[16];
  int n;
};

static volatile pid_t worker_tid;

static void* worker(void* arg) {
  (void)arg;
  worker_tid = (pid_t)syscall(SYS_gettid);
  struct order o;
  while (read(order_pipe[0], &o, sizeof o) == (ssize_t)sizeof o) {
    int v = 0;
    park_ret = 0;
    if (strcmp(o.fn, "parked") == 0) v = parked(1);
    else if (strcmp(o.fn, "outer") == 0) v = outer(1);
    else if (strcmp(o.fn, "descend") == 0) v = descend(o.n, 1);
    else if (strcmp(o.fn, "hold") == 0) v = hold(o.n, 1);
    else if (strcmp(o.fn, "nocfi") == 0) nocfi_block();
    else if (strcmp(o.fn, "corrupt") == 0) corrupt_block();
    sink = v;
    /* The value goes back through a second pipe write: 'r' then 4 bytes. */
    tell_main('r');
    while (write(done_pipe[1], &v, sizeof v) != (ssize_t)sizeof v) {
    }
  }
  return NULL;
}

static char read_done(void) {
  char c = 0;
  while (read(done_pipe[0], &c, 1) != 1) {
  }
  return c;
}

/* Waits until thread `tid` sits in read(2) on the release pipe, and returns
 * its PC as the kernel reports it (/proc/.../syscall: nr, 6 args, sp, pc). */
static unsigned long wait_blocked(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  for (;;) {
    FILE* f = fopen(path, "r");
    if (!f) exit(2);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    long nr;
    unsigned long a[6], sp, pc;
    if (sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &sp,
               &pc) == 9 &&
        nr == SYS_read && a[0] == (unsigned long)release_pipe[0])
      return pc;
    sched_yield();
  }
}

/* `last` is what the worker was last told to call, for "release". */
static int handle(const char *line) {
  static char last[16] = "";
  char fn[16] = "";
  int n = 4;
  if (sscanf(line, "call %15s", fn) == 1) {
    if (strcmp(fn, "parked") == 0) printf("parked=%d\n", parked(0));
    else if (strcmp(fn, "outer") == 0) printf("outer=%d\n", outer(0));
    else if (strcmp(fn, "descend") == 0) printf("descend=%d\n", descend(4, 0));
    else if (strcmp(fn, "hold") == 0) printf("hold=%d\n", hold(4, 0));
    else if (strcmp(fn, "other") == 0) printf("other=%d\n", other());
    else printf("error unknown function %s\n", fn);
  } else if (sscanf(line, "park %15s %d", fn, &n) >= 1) {
    struct order o;
    memset(&o, 0, sizeof o);
    strcpy(o.fn, fn);
    o.n = n;
    strcpy(last, fn);
    if (write(order_pipe[1], &o, sizeof o) != (ssize_t)sizeof o) exit(2);
    if (read_done() != 'b') exit(2);
    unsigned long pc = wait_blocked(worker_tid);
    printf("parked tid=%d pc=0x%lx ret=0x%lx\n", (int)worker_tid, pc, (unsigned long)park_ret);
  } else if (strcmp(line, "release") == 0) {
    char c = 'x';
    if (write(release_pipe[1], &c, 1) != 1) exit(2);
    if (read_done() != 'r') exit(2);
    int v;
    if (read(done_pipe[0], &v, sizeof v) != (ssize_t)sizeof v) exit(2);
    printf("released %s=%d\n", last, v);
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  if (pipe(release_pipe) || pipe(order_pipe) || pipe(done_pipe)) return 2;
  release_fd = release_pipe[0];
  pthread_t th;
  if (pthread_create(&th, NULL, worker, NULL)) return 2;
  return serve(handle);
}
