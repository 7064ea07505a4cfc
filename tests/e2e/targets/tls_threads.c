/* tls_threads: 4 worker threads, each with its own copy of a __thread
 * counter of the program (tls_counter) and of two of libtlsvars.so
 * (lib_ie, initial-exec; lib_gd, general-dynamic), for the TLS tests.
 * Worker k (1..4) starts with tls_counter = 100k, lib_ie = 1000k,
 * lib_gd = 10000k; each round it calls bump() (tls_counter += 1),
 * lib_bump_ie() and lib_bump_gd() (+= 1 each) and reports what they
 * returned. The patches change the steps (tls_bump_gd.c, tls_bump_le.c,
 * tls_lib_v2.c); each thread must keep seeing its own values.
 *
 * Protocol (one answer line per input line):
 *   start      -> "ready <pid>"   printed once the 4 workers wait
 *   round      -> "c1,i1,g1 c2,i2,g2 c3,i3,g3 c4,i4,g4": one round of every
 *                 worker, its bump(), lib_bump_ie(), lib_bump_gd() results
 *   mine       -> "main=<tls_counter of the main thread>" (0: never bumped)
 *   dlopen PATH -> "dlopened" (libtlsdyn.so, whose TLS is then dynamic), or
 *                 "error <dlerror()>"
 *   dynround   -> "d1 d2 d3 d4": worker k calls libtlsdyn.so's dyn_bump(k)
 *                 (dyn_var += k) and reports it
 *   ping       -> "pong"
 *   quit / EOF -> stop and join the workers, exit 0
 *   other      -> "error unknown command <line>"
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"

#define NWORKERS 4

int lib_bump_ie(void);
int lib_bump_gd(void);
void lib_seed(int ie, int gd);

__thread int tls_counter;

__attribute__((noipa)) int bump(void) { return tls_counter += 1; }

static pthread_barrier_t go, done;
static int stop;
static int results[NWORKERS][3];
static int (*dyn_bump)(int); /* from libtlsdyn.so, once dlopen'd */
static int dyn_mode;         /* this round calls dyn_bump only */
static int dyn_results[NWORKERS];

static void *worker(void *arg) {
  int k = (int)(long)arg;
  tls_counter = 100 * (k + 1);
  lib_seed(1000 * (k + 1), 10000 * (k + 1));
  pthread_barrier_wait(&done); /* seeded */
  for (;;) {
    pthread_barrier_wait(&go);
    if (__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) break;
    if (dyn_mode) {
      dyn_results[k] = dyn_bump(k + 1);
      pthread_barrier_wait(&done);
      continue;
    }
    results[k][0] = bump();
    results[k][1] = lib_bump_ie();
    results[k][2] = lib_bump_gd();
    pthread_barrier_wait(&done);
  }
  return NULL;
}

static int handle(const char *line) {
  if (strcmp(line, "round") == 0) {
    pthread_barrier_wait(&go);
    pthread_barrier_wait(&done);
    for (int k = 0; k < NWORKERS; k++)
      printf("%s%d,%d,%d", k ? " " : "", results[k][0], results[k][1], results[k][2]);
    printf("\n");
    return 1;
  }
  if (strncmp(line, "dlopen ", 7) == 0) {
    void *h = dlopen(line + 7, RTLD_NOW);
    if (h) dyn_bump = (int (*)(int))dlsym(h, "dyn_bump");
    if (dyn_bump)
      printf("dlopened\n");
    else
      printf("error %s\n", dlerror());
    return 1;
  }
  if (strcmp(line, "dynround") == 0 && dyn_bump) {
    dyn_mode = 1;
    pthread_barrier_wait(&go);
    pthread_barrier_wait(&done);
    dyn_mode = 0;
    printf("%d %d %d %d\n", dyn_results[0], dyn_results[1], dyn_results[2], dyn_results[3]);
    return 1;
  }
  if (strcmp(line, "mine") == 0) {
    printf("main=%d\n", tls_counter);
    return 1;
  }
  return 0;
}

int main(void) {
  pthread_t th[NWORKERS];
  pthread_barrier_init(&go, NULL, NWORKERS + 1);
  pthread_barrier_init(&done, NULL, NWORKERS + 1);
  for (long k = 0; k < NWORKERS; k++) pthread_create(&th[k], NULL, worker, (void *)k);
  pthread_barrier_wait(&done);
  int rc = serve(handle);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  pthread_barrier_wait(&go);
  for (int k = 0; k < NWORKERS; k++) pthread_join(th[k], NULL);
  return rc;
}
