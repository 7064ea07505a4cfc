/* filtered: a target that installs a seccomp filter before it serves, in
 * the shapes services run under (systemd's SystemCallFilter=,
 * SystemCallErrorNumber=, MemoryDenyWriteExecute=). Patched function:
 * value() (returns 1).
 *
 * Usage: filtered MODE, MODE one of
 *   kill      an allowlist (what serving needs: read, write, exit, ...) whose
 *             default is SECCOMP_RET_KILL_PROCESS; memfd_create, mmap,
 *             mprotect, munmap, ftruncate are not on it
 *   errno     memfd_create fails with EPERM; everything else allowed
 *   noexec    mmap or mprotect asking for PROT_EXEC kills the process
 *   mdwe      systemd's MemoryDenyWriteExecute= shape: mmap with
 *             PROT_WRITE|PROT_EXEC, mprotect / pkey_mprotect with PROT_EXEC
 *             fail with EPERM
 *   lenient   kills the process only on ptrace and execve
 *   pinned    kills the process on any system call made from outside libc's
 *             code and the vDSO (the filter tests the instruction pointer)
 *   strict    SECCOMP_MODE_STRICT: only read, write, exit, rt_sigreturn
 *   none      no filter (to compare timings with)
 *
 * Protocol (serve.h): "ready <pid>", then
 *   call   -> "value=<value()>"
 *   hooks  -> "hooks=<hook_count>" (patches/filtered_v2.c's hooks add to it)
 *   mode   -> "mode=<MODE>"
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serve.h"

volatile int value_sink;
volatile int hook_count;

__attribute__((noipa)) int value(void) {
  value_sink++;
  return 1;
}

static const char *mode;

static int handle(const char *line) {
  if (strcmp(line, "call") == 0)
    printf("value=%d\n", value());
  else if (strcmp(line, "hooks") == 0)
    printf("hooks=%d\n", hook_count);
  else if (strcmp(line, "mode") == 0)
    printf("mode=%s\n", mode);
  else
    return 0;
  return 1;
}

#define ARCH_CHECK                                                          \
  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)), \
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),         \
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG(n) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[n]))
#define ALLOW_IF(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define RET(what) BPF_STMT(BPF_RET | BPF_K, (what))
#define EPERM_RET RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))

static int install(struct sock_filter *f, size_t n) {
  struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
#define INSTALL(f) install(f, sizeof f / sizeof f[0])

/* The start and end of libc's code and the vDSO, from /proc/self/maps. */
static int code_range(const char *what, uint64_t *lo, uint64_t *hi) {
  FILE *m = fopen("/proc/self/maps", "r");
  char line[512];
  int found = 0;
  if (!m) return 0;
  while (fgets(line, sizeof line, m)) {
    unsigned long a, b;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || perms[2] != 'x') continue;
    if (!strstr(line, what)) continue;
    if (strcmp(what, "libc") == 0 && !strstr(line, "/libc.so") && !strstr(line, "/libc-")) continue;
    *lo = a, *hi = b;
    found = 1;
    break;
  }
  fclose(m);
  return found;
}

static int install_mode(void) {
  if (strcmp(mode, "none") == 0) return 0;
  if (strcmp(mode, "kill") == 0) {
    struct sock_filter f[] = {
        ARCH_CHECK, LOAD_NR,
        ALLOW_IF(SYS_read), ALLOW_IF(SYS_write), ALLOW_IF(SYS_close), ALLOW_IF(SYS_fstat),
        ALLOW_IF(SYS_newfstatat), ALLOW_IF(SYS_lseek), ALLOW_IF(SYS_ioctl), ALLOW_IF(SYS_brk),
        ALLOW_IF(SYS_futex), ALLOW_IF(SYS_getpid), ALLOW_IF(SYS_gettid), ALLOW_IF(SYS_rt_sigreturn),
        ALLOW_IF(SYS_rt_sigprocmask), ALLOW_IF(SYS_restart_syscall), ALLOW_IF(SYS_exit),
        ALLOW_IF(SYS_exit_group),
        RET(SECCOMP_RET_KILL_PROCESS),
    };
    return INSTALL(f);
  }
  if (strcmp(mode, "errno") == 0) {
    struct sock_filter f[] = {
        ARCH_CHECK, LOAD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 0, 1), EPERM_RET,
        RET(SECCOMP_RET_ALLOW),
    };
    return INSTALL(f);
  }
  if (strcmp(mode, "noexec") == 0) {
    struct sock_filter f[] = {
        ARCH_CHECK, LOAD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 1, 0),
        RET(SECCOMP_RET_ALLOW),
        LOAD_ARG(2),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
        RET(SECCOMP_RET_KILL_PROCESS),
        RET(SECCOMP_RET_ALLOW),
    };
    return INSTALL(f);
  }
  if (strcmp(mode, "mdwe") == 0) {
    struct sock_filter f[] = {
        ARCH_CHECK, LOAD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pkey_mprotect, 4, 0),
        RET(SECCOMP_RET_ALLOW),
        /* mmap: both PROT_WRITE and PROT_EXEC */
        LOAD_ARG(2),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 3, 4),
        /* mprotect, pkey_mprotect: PROT_EXEC */
        LOAD_ARG(2),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 2),
        EPERM_RET,
        EPERM_RET,
        RET(SECCOMP_RET_ALLOW),
    };
    return INSTALL(f);
  }
  if (strcmp(mode, "lenient") == 0) {
    struct sock_filter f[] = {
        ARCH_CHECK, LOAD_NR,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ptrace, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 1, 0),
        RET(SECCOMP_RET_ALLOW),
        RET(SECCOMP_RET_KILL_PROCESS),
    };
    return INSTALL(f);
  }
  if (strcmp(mode, "pinned") == 0) {
    uint64_t lo, hi, vlo, vhi;
    if (!code_range("libc", &lo, &hi) || !code_range("[vdso]", &vlo, &vhi)) return -1;
    /* Each range within one 4 GiB block: compare the high halves, then the low. */
    if ((lo >> 32) != (hi >> 32) || (vlo >> 32) != (vhi >> 32)) return -1;
    const uint32_t ip_lo = offsetof(struct seccomp_data, instruction_pointer);
    struct sock_filter f[] = {
        ARCH_CHECK,                                                   /* 0-2 */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo + 4),                /* 3 */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(lo >> 32), 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo),                    /* 5 */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)lo, 0, 1),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)hi, 0, 5),      /* 7: in libc: allow */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo + 4),                /* 8: the vDSO */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(vlo >> 32), 0, 4),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ip_lo),                    /* 10 */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)vlo, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)vhi, 1, 0),     /* 12 */
        RET(SECCOMP_RET_ALLOW),                                       /* 13 */
        RET(SECCOMP_RET_KILL_PROCESS),                                /* 14 */
    };
    return INSTALL(f);
  }
  errno = EINVAL;
  return -1;
}

int main(int argc, char **argv) {
  /* stdio's buffers are static and in place before the filter, so serving
   * needs no memory of its own. */
  static char in_buf[4096], out_buf[4096];
  setvbuf(stdin, in_buf, _IOFBF, sizeof in_buf);
  setvbuf(stdout, out_buf, _IOLBF, sizeof out_buf);
  if (argc != 2) {
    fprintf(stderr, "usage: filtered MODE\n");
    return 2;
  }
  mode = argv[1];
  if (strcmp(mode, "strict") == 0) {
    /* Strict mode allows no getpid: the ready line goes first, then the
     * loop of serve.h, which needs only read and write. */
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0) return 1;
    serve_lines(handle);
    syscall(SYS_exit, 0); /* exit_group is not allowed either */
  }
  if (install_mode() != 0) {
    printf("error cannot install the %s filter: %s\n", mode, strerror(errno));
    return 1;
  }
  return serve(handle);
}
