/* tls_lib_v2.c: libtlsvars.so's lib_bump_ie() adds 7 to the calling
 * thread's lib_ie, lib_bump_gd() 9 to its lib_gd. lib_ie is reached with
 * the initial-exec model (R_X86_64_GOTTPOFF: a GOT slot holding the TP
 * offset), lib_gd with general dynamic (R_X86_64_TLSGD + __tls_get_addr).
 * Run with tls_threads; each worker's second number grows by 7 a round, its
 * third by 9.
 *
 * target: libtlsvars.so
 */
#include <hotsplice/livepatch.h>

extern __thread int lib_ie __attribute__((tls_model("initial-exec")));
extern __thread int lib_gd;

static int lib_bump_ie_v2(void) { return lib_ie += 7; }
static int lib_bump_gd_v2(void) { return lib_gd += 9; }

HOTSPLICE_REPLACE("lib_bump_ie", lib_bump_ie_v2);
HOTSPLICE_REPLACE("lib_bump_gd", lib_bump_gd_v2);
