/* tcp_server: a small loopback request/response server for the throughput
 * benchmark (bench/README.md, figure 5).
 *
 * Listens on 127.0.0.1 at an ephemeral port; one thread per connection (at
 * most 64), blocked in read() between requests. A request is one line of at
 * most 200 bytes; the answer is handle_request()'s: the request's 32-bit
 * FNV-1a hash as 8 hex digits and a newline. The benchmark's payload
 * (patches/server_fix.c) replaces handle_request() with a function giving
 * the same answers that also counts the requests it served.
 *
 * Protocol on stdin/stdout: "ready <pid> <port>" first, then
 *   stats       -> "requests=<n> patched=<m>"  (m: counted by the payload)
 *   ping        -> "pong"
 *   quit / EOF  -> exit 0
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 64

volatile unsigned long patched_requests; /* written by the payload only */
static atomic_ulong requests;

__attribute__((noipa)) int handle_request(const char *req, size_t len, char *out, size_t cap) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)req[i];
    h *= 16777619u;
  }
  return snprintf(out, cap, "%08x\n", h);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void *serve_conn(void *arg) {
  int fd = (int)(long)arg;
  char in[512], out[64];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, in + have, sizeof in - have);
    if (r <= 0) break;
    have += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < have; i++) {
      if (in[i] != '\n') continue;
      int n = handle_request(in + start, i - start, out, sizeof out);
      if (n <= 0 || write_all(fd, out, (size_t)n) != 0) goto done;
      atomic_fetch_add_explicit(&requests, 1, memory_order_relaxed);
      start = i + 1;
    }
    memmove(in, in + start, have - start);
    have -= start;
    if (have == sizeof in) break; /* a line longer than the buffer: drop the client */
  }
done:
  close(fd);
  return NULL;
}

static void *acceptor(void *arg) {
  int ls = (int)(long)arg;
  for (int n = 0; n < MAX_CONNS; n++) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) break;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 128 * 1024);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, serve_conn, (void *)(long)fd) != 0) close(fd);
    pthread_attr_destroy(&a);
  }
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 64) != 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
    printf("error cannot listen on 127.0.0.1\n");
    return 2;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, acceptor, (void *)(long)ls) != 0) {
    printf("error pthread_create\n");
    return 2;
  }
  printf("ready %d %d\n", (int)getpid(), (int)ntohs(sa.sin_port));
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strcmp(line, "stats") == 0) {
      printf("requests=%lu patched=%lu\n", (unsigned long)atomic_load(&requests), (unsigned long)patched_requests);
    } else if (strcmp(line, "ping") == 0) {
      printf("pong\n");
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("error unknown command %s\n", line);
    }
    fflush(stdout);
  }
  exit(0);
}
