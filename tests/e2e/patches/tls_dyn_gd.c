/* tls_dyn_gd.c: libtlsdyn.so's dyn_bump(k) adds 10k instead of k. dyn_var
 * is in dynamic TLS (the library was dlopen'd), which general-dynamic code
 * reaches through __tls_get_addr like the library's own code does.
 * Run with tls_threads after "dlopen"; "dynround" shows worker k's dyn_var
 * growing by 10k.
 *
 * target: libtlsdyn.so
 */
#include <hotsplice/livepatch.h>

extern __thread int dyn_var;

static int dyn_bump_v2(int k) { return dyn_var += 10 * k; }

HOTSPLICE_REPLACE("dyn_bump", dyn_bump_v2);
