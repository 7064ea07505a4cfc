/* shadow_v1.c: handle_request() counts each connection's requests in a
 * shadow variable attached to its struct conn (whose layout stays as it
 * is), and the target's request_limit becomes 64 while applied.
 *   req I -> "conn I n=<requests since the shadow was made> v1"
 * The constructor adds 1 to shadows_made; the revert hook (hand-written, to
 * show the helpers combined) puts request_limit back, and frees the shadows
 * unless a replace reverts it (the cumulative payload keeps counting), the
 * destructor adding each count to shadows_retired.
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
extern int request_limit;

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

static int handle_request_v1(struct conn *c, char *out, size_t n) {
  struct requests *r = hotsplice_shadow_get_or_alloc(c, REQUESTS_ID, sizeof *r, made, NULL);
  long k = r && r->owner == c->id ? __atomic_add_fetch(&r->n, 1, __ATOMIC_RELAXED) : -1;
  return snprintf(out, n, "conn %d n=%ld v1", c->id, k);
}

HOTSPLICE_DATA_CHANGE(limit, request_limit, 64);
static struct hotsplice_data_change *const changes[] = {&limit};

static int on_apply(void *action) {
  (void)action;
  hotsplice_data_apply(changes, 1);
  return 0;
}

static int on_revert(void *action) {
  hotsplice_data_revert(changes, 1);
  if (hotsplice_hook_action(action) == HOTSPLICE_ACTION_REPLACE) return 0;
  return hotsplice_shadow_try_free_all(REQUESTS_ID, retire);
}

HOTSPLICE_REPLACE("handle_request", handle_request_v1);
HOTSPLICE_APPLY_HOOK(on_apply);
HOTSPLICE_REVERT_HOOK(on_revert);
