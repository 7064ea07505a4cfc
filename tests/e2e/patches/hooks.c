/* hooks.c: a payload with hooks and no functions; each hook changes the calc
 * target's global_counter so the test can see when it ran:
 *   load hook       +1000 (on upload)      unload hook     -1000 (on unload)
 *   postapply hook  +100  (after apply)    postrevert hook -100  (after revert)
 * Checks: hooks-only payloads, hook order and arguments. With global=0 at
 * start, "get" says 1000 after upload, 1100 after apply, 1000 after revert and
 * 0 after unload.
 *
 * target: calc
 */
#include <hotsplice/livepatch.h>

extern int global_counter;

static void on_load(void) { global_counter += 1000; }
static void on_unload(void) { global_counter -= 1000; }
static void on_postapply(void *payload) {
  (void)payload;
  global_counter += 100;
}
static void on_postrevert(void *payload) {
  (void)payload;
  global_counter -= 100;
}

HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_UNLOAD_HOOK(on_unload);
HOTSPLICE_POSTAPPLY_HOOK(on_postapply);
HOTSPLICE_POSTREVERT_HOOK(on_postrevert);
