/* shadow_server: a multi-threaded server whose per-connection struct a patch
 * extends through shadow variables (include/hotsplice/shadow.h), and whose
 * data a patch changes at apply and puts back at revert.
 *
 * 16 connections (struct conn, layout fixed) and 8 worker threads, each
 * waiting for work on its own mailbox. Every request is handled by a
 * worker calling handle_request(conn), which patches replace.
 *
 *   req I      -> worker I % 8 handles connection I: the answer of
 *                 handle_request ("conn I v0" unpatched)
 *   storm R    -> every worker, started together, handles every connection
 *                 R times (8 * R requests per connection, racing):
 *                 "storm done"
 *   stats      -> "made=<shadows_made> retired=<shadows_retired>
 *                 limit=<request_limit> greeting=<greeting>"
 *   squat N    -> maps N pages (private, read-write, zero) of a memfd named
 *                 "hotsplice-shadow", as hotsplice makes the shadow table
 *                 (3 pages) before it writes its header: "squat <address>"
 *
 * shadows_made / shadows_retired are for the patches' shadow constructors
 * and destructors to count into; request_limit (16) and greeting ("hello")
 * are what patches/shadow_data.c changes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "serve.h"

#define NCONN 16
#define NWORKERS 8

struct conn {
  int id;
  int fd;
  char peer[16];
};

struct conn conns[NCONN];
long shadows_made, shadows_retired;
int request_limit = 16;
char greeting[16] = "hello";

__attribute__((noipa)) int handle_request(struct conn *c, char *out, size_t n) {
  static volatile int calls;
  calls++;
  return snprintf(out, n, "conn %d v0", c->id);
}

struct mailbox {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int kind; /* 0 none, 1 one request, 2 storm */
  int conn, rounds;
  int done;
  char answer[128];
};

static struct mailbox boxes[NWORKERS];
static pthread_barrier_t storm_start;

static void *worker(void *arg) {
  struct mailbox *b = arg;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    while (b->kind == 0) pthread_cond_wait(&b->cv, &b->mu);
    int kind = b->kind, conn = b->conn, rounds = b->rounds;
    pthread_mutex_unlock(&b->mu);
    char answer[128];
    if (kind == 1) {
      handle_request(&conns[conn], answer, sizeof answer);
    } else {
      char scratch[128];
      pthread_barrier_wait(&storm_start);
      for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NCONN; i++) handle_request(&conns[i], scratch, sizeof scratch);
      snprintf(answer, sizeof answer, "storm done");
    }
    pthread_mutex_lock(&b->mu);
    memcpy(b->answer, answer, sizeof answer);
    b->kind = 0;
    b->done = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
  return NULL;
}

static void post(int w, int kind, int conn, int rounds) {
  struct mailbox *b = &boxes[w];
  pthread_mutex_lock(&b->mu);
  b->kind = kind;
  b->conn = conn;
  b->rounds = rounds;
  b->done = 0;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

static void wait_done(int w, char *answer, size_t n) {
  struct mailbox *b = &boxes[w];
  pthread_mutex_lock(&b->mu);
  while (!b->done) pthread_cond_wait(&b->cv, &b->mu);
  snprintf(answer, n, "%s", b->answer);
  pthread_mutex_unlock(&b->mu);
}

static int handle(const char *line) {
  int i;
  char answer[128];
  if (sscanf(line, "req %d", &i) == 1 && i >= 0 && i < NCONN) {
    post(i % NWORKERS, 1, i, 0);
    wait_done(i % NWORKERS, answer, sizeof answer);
    printf("%s\n", answer);
  } else if (sscanf(line, "storm %d", &i) == 1 && i > 0) {
    for (int w = 0; w < NWORKERS; w++) post(w, 2, 0, i);
    for (int w = 0; w < NWORKERS; w++) wait_done(w, answer, sizeof answer);
    printf("%s\n", answer);
  } else if (strcmp(line, "stats") == 0) {
    printf("made=%ld retired=%ld limit=%d greeting=%s\n", __atomic_load_n(&shadows_made, __ATOMIC_RELAXED),
           __atomic_load_n(&shadows_retired, __ATOMIC_RELAXED), request_limit, greeting);
  } else if (sscanf(line, "squat %d", &i) == 1 && i > 0) {
    size_t len = (size_t)i * 4096;
    int fd = memfd_create("hotsplice-shadow", MFD_CLOEXEC);
    void *p = fd < 0 || ftruncate(fd, (off_t)len) ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (fd >= 0) close(fd);
    printf("squat %p\n", p);
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  pthread_barrier_init(&storm_start, NULL, NWORKERS);
  for (int i = 0; i < NCONN; i++) {
    conns[i].id = i;
    conns[i].fd = 100 + i;
    snprintf(conns[i].peer, sizeof conns[i].peer, "peer%d", i);
  }
  for (int w = 0; w < NWORKERS; w++) {
    pthread_t t;
    pthread_mutex_init(&boxes[w].mu, NULL);
    pthread_cond_init(&boxes[w].cv, NULL);
    pthread_create(&t, NULL, worker, &boxes[w]);
  }
  return serve(handle);
}
