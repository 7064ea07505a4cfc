/*
 * hotsplice shadow variables: new data attached to an existing object of the
 * target without changing its layout, for payload code. Included by
 * <hotsplice/livepatch.h>; the functions are static inline, so a payload
 * carries only the ones it uses.
 *
 *     struct extra { long requests; };
 *     #define EXTRA_ID 1
 *
 *     static int handle_fixed(struct conn *c) {
 *       struct extra *x = hotsplice_shadow_get_or_alloc(c, EXTRA_ID, sizeof *x, NULL, NULL);
 *       if (x) __atomic_add_fetch(&x->requests, 1, __ATOMIC_RELAXED);
 *       ...
 *     }
 *     HOTSPLICE_SHADOW_FREE_ON_REVERT(EXTRA_ID, NULL);
 *
 * A shadow is found by (object address, numeric id). Where the table lives:
 * not in any payload. The payload's code refers to the undefined symbol
 * `hotsplice_shadow_root_v1`, which hotsplice resolves (at upload) to a small
 * mapping of its own in the process ("hotsplice-shadow", created once, the
 * first time a payload needs it, and never unmapped: it goes with the process
 * or its exec, and a fork copies it). That mapping holds the lock and the
 * hash buckets; each shadow is one block from the target's own malloc. So
 * every payload of the process, whatever object it patches, sees the same
 * table, and a payload's unload (even that of the payload that made a
 * shadow) takes nothing from it: a later cumulative payload finds the
 * shadows an earlier one made. A payload built against another layout refers
 * to another symbol name, and hotsplice refuses it at upload.
 *
 * Rules, as for Linux's klp_shadow_*:
 *  - get / get_or_alloc return the shadow's data (zeroed, then given to the
 *    constructor), or NULL (no such shadow; out of memory; constructor said
 *    no; a table this code does not know).
 *  - alloc returns NULL if the shadow already exists.
 *  - The constructor runs with the table's lock held: it must not call any
 *    hotsplice_shadow_* function. A non-zero return drops the new shadow.
 *  - The destructor runs after the shadow is unlinked, without the lock.
 *  - A pointer from get is valid until someone frees that shadow; freeing
 *    one that another thread still uses is the caller's bug.
 *  - Thread-safe (a futex lock, made through libc's syscall()); not
 *    async-signal-safe (it calls malloc). A fork while another thread holds
 *    the lock leaves the child's copy locked, as with any mutex.
 */
#ifndef HOTSPLICE_SHADOW_H
#define HOTSPLICE_SHADOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <hotsplice/livepatch.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOTSPLICE_SHADOW_MAGIC 0x3157444148535348ull /* "HSSHADW1" */
#define HOTSPLICE_SHADOW_VERSION 1u
#define HOTSPLICE_SHADOW_BUCKETS 1024u

/* One shadow: a malloc'd block, data right after this header. */
struct hotsplice_shadow_node {
  struct hotsplice_shadow_node *next;
  const void *obj;
  unsigned long id;
  size_t size;
};

HOTSPLICE_STATIC_ASSERT(sizeof(struct hotsplice_shadow_node) % 16 == 0, "shadow data alignment");

/* The table, at the start of the "hotsplice-shadow" mapping. hotsplice
 * writes magic, version and nbuckets when it creates the mapping; the rest
 * starts at zero. Layout version 1 (the symbol's _v1). */
struct hotsplice_shadow_root {
  uint64_t magic;
  uint32_t version;
  uint32_t lock;      /* futex word: 0 free, 1 held, 2 held with waiters */
  uint64_t live;      /* shadows attached now */
  uint64_t allocated; /* attached since the mapping was made */
  uint64_t freed;     /* freed since then */
  uint64_t nbuckets;  /* HOTSPLICE_SHADOW_BUCKETS */
  uint64_t reserved[2];
  struct hotsplice_shadow_node *buckets[HOTSPLICE_SHADOW_BUCKETS];
};

/* Resolved by hotsplice to its mapping in the process. */
extern struct hotsplice_shadow_root hotsplice_shadow_root_v1;

typedef int hotsplice_shadow_ctor_t(void *obj, void *shadow_data, void *ctor_data);
typedef void hotsplice_shadow_dtor_t(void *obj, void *shadow_data);

#define HOTSPLICE_SHADOW_FN_ static inline __attribute__((unused))

HOTSPLICE_SHADOW_FN_ struct hotsplice_shadow_root *hotsplice_shadow_root_(void) {
  struct hotsplice_shadow_root *r = &hotsplice_shadow_root_v1;
  if (r->magic != HOTSPLICE_SHADOW_MAGIC || r->version != HOTSPLICE_SHADOW_VERSION ||
      r->nbuckets != HOTSPLICE_SHADOW_BUCKETS)
    return NULL;
  return r;
}

HOTSPLICE_SHADOW_FN_ void *hotsplice_shadow_data_(struct hotsplice_shadow_node *n) {
  return (void *)(n + 1);
}

HOTSPLICE_SHADOW_FN_ struct hotsplice_shadow_node **hotsplice_shadow_bucket_(struct hotsplice_shadow_root *r,
                                                                             const void *obj, unsigned long id) {
  uint64_t h = ((uint64_t)(uintptr_t)obj ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
  return &r->buckets[(h >> 32) % HOTSPLICE_SHADOW_BUCKETS];
}

/* The lock (Drepper's three-state futex mutex). FUTEX_WAIT/WAKE_PRIVATE. */
HOTSPLICE_SHADOW_FN_ int hotsplice_shadow_trylock_(struct hotsplice_shadow_root *r) {
  uint32_t c = 0;
  return __atomic_compare_exchange_n(&r->lock, &c, 1u, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
HOTSPLICE_SHADOW_FN_ void hotsplice_shadow_lock_(struct hotsplice_shadow_root *r) {
  uint32_t c = 0;
  if (__atomic_compare_exchange_n(&r->lock, &c, 1u, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
  if (c != 2) c = __atomic_exchange_n(&r->lock, 2u, __ATOMIC_ACQUIRE);
  while (c != 0) {
    syscall(SYS_futex, &r->lock, 128 /* FUTEX_WAIT_PRIVATE */, 2, NULL, NULL, 0);
    c = __atomic_exchange_n(&r->lock, 2u, __ATOMIC_ACQUIRE);
  }
}
HOTSPLICE_SHADOW_FN_ void hotsplice_shadow_unlock_(struct hotsplice_shadow_root *r) {
  if (__atomic_exchange_n(&r->lock, 0u, __ATOMIC_RELEASE) == 2)
    syscall(SYS_futex, &r->lock, 129 /* FUTEX_WAKE_PRIVATE */, 1, NULL, NULL, 0);
}

/* With the lock held. */
HOTSPLICE_SHADOW_FN_ struct hotsplice_shadow_node *hotsplice_shadow_find_(struct hotsplice_shadow_root *r,
                                                                         const void *obj, unsigned long id) {
  struct hotsplice_shadow_node *n = *hotsplice_shadow_bucket_(r, obj, id);
  for (; n; n = n->next)
    if (n->obj == obj && n->id == id) return n;
  return NULL;
}

/* The data of obj's shadow `id`, or NULL. */
HOTSPLICE_SHADOW_FN_ void *hotsplice_shadow_get(const void *obj, unsigned long id) {
  struct hotsplice_shadow_root *r = hotsplice_shadow_root_();
  struct hotsplice_shadow_node *n;
  if (!r) return NULL;
  hotsplice_shadow_lock_(r);
  n = hotsplice_shadow_find_(r, obj, id);
  hotsplice_shadow_unlock_(r);
  return n ? hotsplice_shadow_data_(n) : NULL;
}

HOTSPLICE_SHADOW_FN_ void *hotsplice_shadow_attach_(const void *obj, unsigned long id, size_t size,
                                                    hotsplice_shadow_ctor_t *ctor, void *ctor_data, int must_be_new) {
  struct hotsplice_shadow_root *r = hotsplice_shadow_root_();
  struct hotsplice_shadow_node *n, *have;
  struct hotsplice_shadow_node **b;
  if (!r || size > (size_t)-1 - sizeof *n) return NULL;
  /* Allocated outside the lock: malloc may take locks of its own. */
  n = (struct hotsplice_shadow_node *)calloc(1, sizeof *n + size);
  if (!n) return NULL;
  n->obj = obj;
  n->id = id;
  n->size = size;
  hotsplice_shadow_lock_(r);
  have = hotsplice_shadow_find_(r, obj, id);
  if (have || (ctor && ctor((void *)(uintptr_t)obj, hotsplice_shadow_data_(n), ctor_data) != 0)) {
    hotsplice_shadow_unlock_(r);
    free(n);
    return have && !must_be_new ? hotsplice_shadow_data_(have) : NULL;
  }
  b = hotsplice_shadow_bucket_(r, obj, id);
  n->next = *b;
  *b = n;
  r->live++;
  r->allocated++;
  hotsplice_shadow_unlock_(r);
  return hotsplice_shadow_data_(n);
}

/* A new shadow of `size` bytes (zeroed, then ctor(obj, data, ctor_data) if
 * ctor is not NULL); NULL if obj already has shadow `id`. */
HOTSPLICE_SHADOW_FN_ void *hotsplice_shadow_alloc(const void *obj, unsigned long id, size_t size,
                                                  hotsplice_shadow_ctor_t *ctor, void *ctor_data) {
  return hotsplice_shadow_attach_(obj, id, size, ctor, ctor_data, 1);
}

/* obj's shadow `id`, made as by hotsplice_shadow_alloc if there is none.
 * Threads racing on the same (obj, id) all get the one shadow; the
 * constructor runs once. */
HOTSPLICE_SHADOW_FN_ void *hotsplice_shadow_get_or_alloc(const void *obj, unsigned long id, size_t size,
                                                         hotsplice_shadow_ctor_t *ctor, void *ctor_data) {
  void *d = hotsplice_shadow_get(obj, id);
  return d ? d : hotsplice_shadow_attach_(obj, id, size, ctor, ctor_data, 0);
}

/* Detaches obj's shadow `id` (if any), then dtor(obj, data) if dtor is not
 * NULL, then frees it. */
HOTSPLICE_SHADOW_FN_ void hotsplice_shadow_free(const void *obj, unsigned long id, hotsplice_shadow_dtor_t *dtor) {
  struct hotsplice_shadow_root *r = hotsplice_shadow_root_();
  struct hotsplice_shadow_node **p, *n = NULL;
  if (!r) return;
  hotsplice_shadow_lock_(r);
  for (p = hotsplice_shadow_bucket_(r, obj, id); *p; p = &(*p)->next)
    if ((*p)->obj == obj && (*p)->id == id) {
      n = *p;
      *p = n->next;
      r->live--;
      r->freed++;
      break;
    }
  hotsplice_shadow_unlock_(r);
  if (!n) return;
  if (dtor) dtor((void *)(uintptr_t)n->obj, hotsplice_shadow_data_(n));
  free(n);
}

/* Unlinks every shadow `id` (with the lock already held), returns them. */
HOTSPLICE_SHADOW_FN_ struct hotsplice_shadow_node *hotsplice_shadow_unlink_all_(struct hotsplice_shadow_root *r,
                                                                               unsigned long id) {
  struct hotsplice_shadow_node *out = NULL, **p, *n;
  unsigned i;
  for (i = 0; i < HOTSPLICE_SHADOW_BUCKETS; i++)
    for (p = &r->buckets[i]; *p;) {
      n = *p;
      if (n->id != id) {
        p = &n->next;
        continue;
      }
      *p = n->next;
      n->next = out;
      out = n;
      r->live--;
      r->freed++;
    }
  return out;
}

HOTSPLICE_SHADOW_FN_ void hotsplice_shadow_release_(struct hotsplice_shadow_node *n, hotsplice_shadow_dtor_t *dtor) {
  while (n) {
    struct hotsplice_shadow_node *next = n->next;
    if (dtor) dtor((void *)(uintptr_t)n->obj, hotsplice_shadow_data_(n));
    free(n);
    n = next;
  }
}

/* Frees every shadow `id`, of any object, as hotsplice_shadow_free does. */
HOTSPLICE_SHADOW_FN_ void hotsplice_shadow_free_all(unsigned long id, hotsplice_shadow_dtor_t *dtor) {
  struct hotsplice_shadow_root *r = hotsplice_shadow_root_();
  struct hotsplice_shadow_node *gone;
  if (!r) return;
  hotsplice_shadow_lock_(r);
  gone = hotsplice_shadow_unlink_all_(r, id);
  hotsplice_shadow_unlock_(r);
  hotsplice_shadow_release_(gone, dtor);
}

/* As hotsplice_shadow_free_all, but never waits for the lock: returns 16
 * (EBUSY) and frees nothing if another thread holds it, else 0. For apply and
 * revert hooks, which run with every thread stopped: a stopped holder would
 * never let go. */
HOTSPLICE_SHADOW_FN_ int hotsplice_shadow_try_free_all(unsigned long id, hotsplice_shadow_dtor_t *dtor) {
  struct hotsplice_shadow_root *r = hotsplice_shadow_root_();
  struct hotsplice_shadow_node *gone;
  if (!r) return 0;
  if (!hotsplice_shadow_trylock_(r)) return 16;
  gone = hotsplice_shadow_unlink_all_(r, id);
  hotsplice_shadow_unlock_(r);
  hotsplice_shadow_release_(gone, dtor);
  return 0;
}

/* A revert hook that frees every shadow `id` (dtor as for free_all) when the
 * payload is reverted, and keeps them when a `replace` reverts it: the
 * replacing (cumulative) payload takes them over. Holds the payload's one
 * revert hook; a payload with a revert hook of its own calls
 * hotsplice_shadow_try_free_all from it instead. Runs with every thread
 * stopped: if another thread holds the table's lock, it returns EBUSY and
 * the revert is rolled back (try again). The destructor, and free(), run
 * there too, so like a signal handler the destructor must not take locks.
 * glibc frees small blocks (up to about 100 bytes of data) without a lock
 * (tcache, fastbins); bigger shadows take the malloc arena's lock, which a
 * stopped thread inside malloc may hold: the hook then times out and the
 * revert is refused. Free big shadows from code the program runs instead. */
#define HOTSPLICE_SHADOW_FREE_ON_REVERT(id, dtor)                               \
  static int hotsplice_shadow_on_revert_(void *action) {                        \
    if (hotsplice_hook_action(action) == HOTSPLICE_ACTION_REPLACE) return 0;    \
    return hotsplice_shadow_try_free_all((id), (dtor));                         \
  }                                                                             \
  HOTSPLICE_REVERT_HOOK(hotsplice_shadow_on_revert_)

#ifdef __cplusplus
}
#endif

#endif /* HOTSPLICE_SHADOW_H */
