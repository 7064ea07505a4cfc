/* ifunc_call: the new render() calls memcpy and strlen, which glibc provides
 * as indirect functions (STT_GNU_IFUNC): the loader must link them to the
 * implementation chosen for this CPU, not to the resolver.
 * target: calc
 */
#include <hotsplice/livepatch.h>
#include <stddef.h>
#include <string.h>

static int render_copy(char *buf, size_t n, int v) {
  static const char text[] = "copied";
  size_t len = strlen(text);
  if (n < len + 1) return 0;
  memcpy(buf, text, len + 1);
  return (int)strlen(buf) + v * 0;
}

HOTSPLICE_REPLACE("render", render_copy);
