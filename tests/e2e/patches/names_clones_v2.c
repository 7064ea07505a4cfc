/* names_clones_v2.c: replaces names_clones' functions by their source names,
 * which the target only has as GCC's copies: "parse" is parse.isra.0,
 * "scale" scale.constprop.0, "classify" classify.part.0; and "checked", which
 * GCC split into checked and checked.cold.
 * Checks: names resolve to the copies (list shows each real symbol), and the
 * replacements run. A copy's arguments are GCC's, not the source's: each
 * replacement here takes what its copy takes (parse.isra.0 gets r->len,
 * scale.constprop.0 only x; classify.part.0 runs only for x >= 16, its
 * head x < 16 stays inlined in the callers).
 *
 * target: names_clones
 */
#include <hotsplice/livepatch.h>

static int parse_v2(int len) { return len * 3 + 1000; }
static int scale_v2(int x) { return x * 10 + 2; }
static int classify_v2(int x) { return 7000 + x; }
static int checked_v2(int x) { return x < 0 ? -2 : x + 50; }

HOTSPLICE_REPLACE("parse", parse_v2);
HOTSPLICE_REPLACE("scale", scale_v2);
HOTSPLICE_REPLACE("classify", classify_v2);
HOTSPLICE_REPLACE("checked", checked_v2);
