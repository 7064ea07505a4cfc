/* awkward: a target that makes patching hard, for faults_test.cc. Each
 * awkwardness is switched on by a command, so one binary serves every case.
 *
 * Patched function: value(block) returns 1 (patches/awkward_v2.c: 2). With
 * block != 0 it first waits in read(2) on a private pipe until "release", so
 * a thread can be parked with value()'s frame on its stack.
 *
 * Protocol (one answer line per input line, stdout flushed after each):
 *   start        -> "ready <pid>"
 *   call         -> "value=<value(0)>"
 *   park         -> a thread calls value(1); once it sits in read(2):
 *                   "parked tid=<tid>"
 *   release      -> lets it return; "released value=<what value(1) returned>"
 *   churn        -> a thread starts creating short-lived threads, 4 at a
 *                   time, each calling value(0) 64 times, then joining them,
 *                   without pause; "churning" once 64 have come and gone
 *   churn-stop   -> stops and joins it: "churned threads=<n> bad=<m>
 *                   create-errors=<e>" (m counts results not in {1, 2})
 *   block        -> one thread blocks in accept(2) on a listening loopback
 *                   socket, another in read(2) on a pipe; once both sit in
 *                   their system calls: "blocked port=<tcp port> pipe=<fd>"
 *                   (fd: the pipe's write end in this process, which a test
 *                   opens through /proc/PID/fd)
 *   results      -> joins both threads (so it waits until a connection has
 *                   sent data and the pipe has been written to):
 *                   "accept=<ok|strerror> got=<data> read=<ok|strerror> got=<data>"
 *                   Each thread makes exactly one call: an EINTR would show.
 *   signals      -> installs a SIGUSR1 handler (SA_RESTART) that counts, and
 *                   starts 2 threads calling value(0) in a loop; "counting"
 *   sigs         -> "sigs=<n> bad=<m>"
 *   seccomp      -> installs (in every thread) a seccomp filter that fails
 *                   mmap/mprotect/pkey_mprotect asking for PROT_EXEC with
 *                   EPERM: "seccomp on" (or "error <why>")
 *   no-mprotect  -> installs a seccomp filter that fails every mprotect and
 *                   pkey_mprotect with EPERM: "no-mprotect on"
 *   mdwe         -> prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN): "mdwe on"
 *   probe        -> what this process may do with executable memory:
 *                   "mmap-rx=<ok|strerror> mprotect-x=<ok|strerror>"
 *   ping         -> "pong"
 *   quit / EOF   -> exit 0
 *   other        -> "error unknown command <line>"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serve.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN (1UL << 0)
#endif

volatile int value_sink;
static int park_pipe[2];

__attribute__((noipa)) int value(int block) {
  value_sink++;
  if (block) {
    char c;
    while (read(park_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
  }
  return 1;
}

static atomic_ullong bad;

static void check(int v) {
  if (v != 1 && v != 2) atomic_fetch_add(&bad, 1);
}

/* Waits until thread `tid` of this process sits in system call `nr`
 * (/proc/self/task/TID/syscall starts with the number while it blocks). */
static void wait_in_syscall(pid_t tid, int nr) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  for (;;) {
    FILE *f = fopen(path, "re");
    if (f) {
      int n = -1;
      if (fgets(buf, sizeof buf, f)) n = atoi(buf);
      fclose(f);
      if (n == nr) return;
    }
    usleep(1000);
  }
}

/* ---- park ---------------------------------------------------------------- */

static pthread_t park_thread;
static atomic_int park_tid, park_result;

static void *park_main(void *arg) {
  (void)arg;
  atomic_store(&park_tid, (int)gettid());
  atomic_store(&park_result, value(1));
  return NULL;
}

/* ---- churn --------------------------------------------------------------- */

static pthread_t churner;
static atomic_int churn_stop;
static atomic_ullong churned, create_errors;

static void *short_lived(void *arg) {
  (void)arg;
  for (int i = 0; i < 64; i++) check(value(0));
  atomic_fetch_add(&churned, 1);
  return NULL;
}

static void *churn_main(void *arg) {
  (void)arg;
  while (!atomic_load(&churn_stop)) {
    pthread_t t[4];
    int made[4];
    for (int i = 0; i < 4; i++) {
      made[i] = pthread_create(&t[i], NULL, short_lived, NULL) == 0;
      if (!made[i]) atomic_fetch_add(&create_errors, 1);
    }
    for (int i = 0; i < 4; i++)
      if (made[i]) pthread_join(t[i], NULL);
  }
  return NULL;
}

/* ---- block --------------------------------------------------------------- */

static pthread_t accept_thread, read_thread;
static int listen_fd = -1, data_pipe[2];
static atomic_int accept_tid, read_tid;
static char accept_out[128], read_out[128];

static void *accept_main(void *arg) {
  (void)arg;
  atomic_store(&accept_tid, (int)gettid());
  int c = accept(listen_fd, NULL, NULL); /* exactly one call: EINTR would show */
  if (c < 0) {
    snprintf(accept_out, sizeof accept_out, "accept=%s got=", strerror(errno));
    return NULL;
  }
  char buf[64] = {0};
  ssize_t n = recv(c, buf, sizeof buf - 1, MSG_WAITALL);
  close(c);
  if (n < 0)
    snprintf(accept_out, sizeof accept_out, "accept=ok got=<recv: %s>", strerror(errno));
  else
    snprintf(accept_out, sizeof accept_out, "accept=ok got=%s", buf);
  return NULL;
}

static void *read_main(void *arg) {
  (void)arg;
  atomic_store(&read_tid, (int)gettid());
  char buf[64] = {0};
  ssize_t n = read(data_pipe[0], buf, sizeof buf - 1); /* exactly one call */
  if (n < 0)
    snprintf(read_out, sizeof read_out, "read=%s got=", strerror(errno));
  else
    snprintf(read_out, sizeof read_out, "read=ok got=%s", buf);
  return NULL;
}

static int start_blocked(int *port) {
  listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(listen_fd, 4) != 0 ||
      getsockname(listen_fd, (struct sockaddr *)&a, &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  if (pipe(data_pipe) != 0) return -1;
  if (pthread_create(&accept_thread, NULL, accept_main, NULL) != 0) return -1;
  if (pthread_create(&read_thread, NULL, read_main, NULL) != 0) return -1;
  while (!atomic_load(&accept_tid) || !atomic_load(&read_tid)) usleep(1000);
  wait_in_syscall(atomic_load(&accept_tid), SYS_accept);
  wait_in_syscall(atomic_load(&read_tid), SYS_read);
  return 0;
}

/* ---- signals ------------------------------------------------------------- */

static atomic_ullong sigs;
static pthread_t sig_workers[2];

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add(&sigs, 1);
}

static void *sig_worker(void *arg) {
  (void)arg;
  for (;;) {
    for (int i = 0; i < 256; i++) check(value(0));
    usleep(200);
  }
  return NULL;
}

/* ---- executable memory ---------------------------------------------------- */

static int load_filter(struct sock_filter *f, unsigned short n) {
  struct sock_fprog prog = {n, f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

/* How both filters start: a call that is not x86-64 is allowed; for the
 * others the accumulator gets the system call number. */
#define LOAD_X86_64_NR                                                      \
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), \
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),         \
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                         \
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))

/* Fails mmap, mprotect and pkey_mprotect with EPERM when arg 2 (prot) asks
 * for PROT_EXEC; everything else is allowed. */
static int install_seccomp(void) {
  struct sock_filter f[] = {
      LOAD_X86_64_NR,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      /* the low 32 bits of args[2] */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return load_filter(f, (unsigned short)(sizeof f / sizeof f[0]));
}

/* Fails every mprotect and pkey_mprotect with EPERM. */
static int install_no_mprotect(void) {
  struct sock_filter f[] = {
      LOAD_X86_64_NR,
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  return load_filter(f, (unsigned short)(sizeof f / sizeof f[0]));
}

static void probe(void) {
  const char *rx = "ok", *x = "ok";
  void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    rx = strerror(errno);
  else
    munmap(p, 4096);
  static char rx_buf[64];
  snprintf(rx_buf, sizeof rx_buf, "%s", rx);
  p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ | PROT_EXEC) != 0) x = strerror(errno);
  if (p != MAP_FAILED) munmap(p, 4096);
  printf("mmap-rx=%s mprotect-x=%s\n", rx_buf, x);
}

static int handle(const char *line) {
  if (strcmp(line, "call") == 0) {
    printf("value=%d\n", value(0));
  } else if (strcmp(line, "park") == 0) {
    atomic_store(&park_tid, 0);
    pthread_create(&park_thread, NULL, park_main, NULL);
    while (!atomic_load(&park_tid)) usleep(1000);
    wait_in_syscall(atomic_load(&park_tid), SYS_read);
    printf("parked tid=%d\n", atomic_load(&park_tid));
  } else if (strcmp(line, "release") == 0) {
    if (write(park_pipe[1], "x", 1) != 1) exit(2);
    pthread_join(park_thread, NULL);
    printf("released value=%d\n", atomic_load(&park_result));
  } else if (strcmp(line, "churn") == 0) {
    atomic_store(&churn_stop, 0);
    pthread_create(&churner, NULL, churn_main, NULL);
    while (atomic_load(&churned) < 64) usleep(1000);
    printf("churning\n");
  } else if (strcmp(line, "churn-stop") == 0) {
    atomic_store(&churn_stop, 1);
    pthread_join(churner, NULL);
    printf("churned threads=%llu bad=%llu create-errors=%llu\n", (unsigned long long)atomic_load(&churned),
           (unsigned long long)atomic_load(&bad), (unsigned long long)atomic_load(&create_errors));
  } else if (strcmp(line, "block") == 0) {
    int port = 0;
    if (start_blocked(&port) != 0)
      printf("error block: %s\n", strerror(errno));
    else
      printf("blocked port=%d pipe=%d\n", port, data_pipe[1]);
  } else if (strcmp(line, "results") == 0) {
    pthread_join(accept_thread, NULL);
    pthread_join(read_thread, NULL);
    printf("%s %s\n", accept_out, read_out);
  } else if (strcmp(line, "signals") == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < 2; i++) pthread_create(&sig_workers[i], NULL, sig_worker, NULL);
    printf("counting\n");
  } else if (strcmp(line, "sigs") == 0) {
    printf("sigs=%llu bad=%llu\n", (unsigned long long)atomic_load(&sigs), (unsigned long long)atomic_load(&bad));
  } else if (strcmp(line, "seccomp") == 0) {
    if (install_seccomp() != 0)
      printf("error seccomp: %s\n", strerror(errno));
    else
      printf("seccomp on\n");
  } else if (strcmp(line, "no-mprotect") == 0) {
    if (install_no_mprotect() != 0)
      printf("error seccomp: %s\n", strerror(errno));
    else
      printf("no-mprotect on\n");
  } else if (strcmp(line, "mdwe") == 0) {
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0)
      printf("error mdwe: %s\n", strerror(errno));
    else
      printf("mdwe on\n");
  } else if (strcmp(line, "probe") == 0) {
    probe();
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  if (pipe(park_pipe) != 0) return 2;
  return serve(handle);
}
