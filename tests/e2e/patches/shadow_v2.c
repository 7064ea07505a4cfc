/* shadow_v2.c: the cumulative successor of shadow_v1.c (for `replace`):
 * the same shadow id and layout, so it goes on counting where v1 left off.
 *   req I -> "conn I n=<count> v2"
 * No data change: after the replace, request_limit is back to 16 (v1's
 * revert hook ran). HOTSPLICE_SHADOW_FREE_ON_REVERT frees the shadows on
 * revert (not on a replace), the destructor adding each count to
 * shadows_retired.
 *
 * target: shadow_server
 */
#include <hotsplice/livepatch.h>
#include <stdio.h>

struct conn {
  int id;
  int fd;
  char peer[16];
};
extern long shadows_made, shadows_retired;

#define REQUESTS_ID 1
struct requests {
  long n;
  int owner;
};

static int made(void *obj, void *data, void *arg) {
  (void)arg;
  ((struct requests *)data)->owner = ((struct conn *)obj)->id;
  __atomic_add_fetch(&shadows_made, 1, __ATOMIC_RELAXED);
  return 0;
}

static void retire(void *obj, void *data) {
  (void)obj;
  __atomic_add_fetch(&shadows_retired, ((struct requests *)data)->n, __ATOMIC_RELAXED);
}

static int handle_request_v2(struct conn *c, char *out, size_t n) {
  struct requests *r = hotsplice_shadow_get_or_alloc(c, REQUESTS_ID, sizeof *r, made, NULL);
  long k = r && r->owner == c->id ? __atomic_add_fetch(&r->n, 1, __ATOMIC_RELAXED) : -1;
  return snprintf(out, n, "conn %d n=%ld v2", c->id, k);
}

HOTSPLICE_REPLACE("handle_request", handle_request_v2);
HOTSPLICE_SHADOW_FREE_ON_REVERT(REQUESTS_ID, retire);
