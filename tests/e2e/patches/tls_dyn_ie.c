/* tls_dyn_ie.c: as tls_dyn_gd.c, but reaching dyn_var with the
 * initial-exec model. Builds; refused at upload: dyn_var is in dynamic TLS
 * (libtlsdyn.so was dlopen'd), at no fixed offset from the thread pointer.
 *
 * target: libtlsdyn.so
 */
#include <hotsplice/livepatch.h>

extern __thread int dyn_var __attribute__((tls_model("initial-exec")));

static int dyn_bump_ie(int k) { return dyn_var += 10 * k; }

HOTSPLICE_REPLACE("dyn_bump", dyn_bump_ie);
