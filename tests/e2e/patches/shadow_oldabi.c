/* shadow_oldabi.c: refers to a layout of the shadow-variable table this
 * hotsplice does not provide (hotsplice_shadow_root_v2, as a payload built
 * by another version would): upload refuses it, naming the symbol.
 *
 * target: shadow_server
 */
#include <hotsplice/livepatch.h>
#include <stdio.h>

struct conn;
extern struct hotsplice_shadow_root hotsplice_shadow_root_v2;

static int handle_request_other(struct conn *c, char *out, size_t n) {
  (void)c;
  return snprintf(out, n, "live=%lu", (unsigned long)hotsplice_shadow_root_v2.live);
}

HOTSPLICE_REPLACE("handle_request", handle_request_other);
