/* tls_bump_le.c: bump() adds 100 to the calling thread's tls_counter. The
 * payload reaches the program's __thread variable with the local-exec model
 * (R_X86_64_TPOFF32: %fs-relative, the offset the executable's TLS block
 * has from the thread pointer, read from the process).
 * Run with tls_threads; each worker's first number grows by 100 a round.
 *
 * target: tls_threads
 */
#include <hotsplice/livepatch.h>

extern __thread int tls_counter __attribute__((tls_model("local-exec")));

static int bump_le(void) { return tls_counter += 100; }

HOTSPLICE_REPLACE("bump", bump_le);
