/* prefork: a pre-forking server, the way nginx, PostgreSQL, php-fpm or
 * Apache prefork run: a master process forks workers, and each worker keeps
 * serving with the code (and memory) it inherited at fork. Patched function:
 * answer() (returns 1).
 *
 * The master speaks the line protocol on stdin/stdout (README.md); each
 * worker is driven by the master over a socketpair, so one test can talk to
 * every process while each answer is computed by the process named:
 *   call     -> "answer=<answer()>", computed by the master
 *   fork     -> "worker <i> pid=<pid>": worker i (0, 1, ...) forked now
 *   ask I    -> "worker <i> pid=<pid> answer=<answer()>", computed by worker I
 *   exec I   -> "worker <i> pid=<pid> exec": worker I has exec'd this program
 *               again (same PID, a fresh image) and serves on
 *   quit/EOF -> the workers are killed; exit 0
 * A worker that lost its master dies with it (PR_SET_PDEATHSIG). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve.h"

enum { kMaxWorkers = 16, kWorkerFd = 3 };

volatile int answer_sink;

__attribute__((noipa)) int answer(void) {
  answer_sink++;
  return 1;
}

/* One line from fd (without its newline), at most n-1 bytes; 0 at EOF. */
static int read_line(int fd, char *buf, size_t n) {
  size_t len = 0;
  for (;;) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r <= 0) return 0;
    if (c == '\n') break;
    if (len + 1 < n) buf[len++] = c;
  }
  buf[len] = 0;
  return 1;
}

static void say(int fd, const char *text) {
  size_t len = strlen(text);
  while (len > 0) {
    ssize_t w = write(fd, text, len);
    if (w <= 0) _exit(1);
    text += w;
    len -= (size_t)w;
  }
}

/* A worker: answers "ask" on its socket, execs itself on "exec". */
static void worker_loop(int fd, const char *self) {
  char line[64], out[96];
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  while (read_line(fd, line, sizeof line)) {
    if (strcmp(line, "ask") == 0) {
      snprintf(out, sizeof out, "pid=%d answer=%d\n", (int)getpid(), answer());
      say(fd, out);
    } else if (strcmp(line, "exec") == 0) {
      if (fd != kWorkerFd) {
        dup2(fd, kWorkerFd);
        close(fd);
        fd = kWorkerFd;
      }
      execl(self, self, "--worker", (char *)NULL);
      say(fd, "exec failed\n");
    } else {
      say(fd, "error\n");
    }
  }
  _exit(0);
}

static int socks[kMaxWorkers];
static pid_t pids[kMaxWorkers];
static int nworkers;
static char self_path[4096];

/* Sends cmd to worker i and prints "worker <i> pid=<pid> <what it said>". */
static void relay(int i, const char *cmd) {
  char line[96];
  say(socks[i], cmd);
  if (!read_line(socks[i], line, sizeof line)) snprintf(line, sizeof line, "gone");
  printf("worker %d pid=%d %s\n", i, (int)pids[i], line);
}

static int handle(const char *line) {
  int i;
  if (strcmp(line, "call") == 0) {
    printf("answer=%d\n", answer());
  } else if (strcmp(line, "fork") == 0) {
    int sv[2];
    if (nworkers == kMaxWorkers || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
      printf("error fork\n");
      return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(sv[0]);
      for (int k = 0; k < nworkers; k++) close(socks[k]);
      close(STDIN_FILENO);
      worker_loop(sv[1], self_path);
    }
    close(sv[1]);
    socks[nworkers] = sv[0];
    pids[nworkers] = pid;
    printf("worker %d pid=%d\n", nworkers, (int)pid);
    nworkers++;
  } else if (sscanf(line, "ask %d", &i) == 1 && i >= 0 && i < nworkers) {
    char out[96];
    say(socks[i], "ask\n");
    if (!read_line(socks[i], out, sizeof out)) snprintf(out, sizeof out, "gone");
    /* the worker says "pid=<pid> answer=<v>" itself */
    printf("worker %d %s\n", i, out);
  } else if (sscanf(line, "exec %d", &i) == 1 && i >= 0 && i < nworkers) {
    relay(i, "exec\n");
  } else {
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0) return 1;
  self_path[n] = 0;
  if (argc > 1 && strcmp(argv[1], "--worker") == 0) {
    /* exec'd by "exec I": say so on the inherited socket, then serve */
    char out[32];
    snprintf(out, sizeof out, "exec\n");
    say(kWorkerFd, out);
    worker_loop(kWorkerFd, self_path);
  }
  signal(SIGPIPE, SIG_IGN);
  int rc = serve(handle);
  for (int k = 0; k < nworkers; k++) {
    kill(pids[k], SIGKILL);
    waitpid(pids[k], NULL, 0);
  }
  return rc;
}
