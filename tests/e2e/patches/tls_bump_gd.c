/* tls_bump_gd.c: bump() adds 10 to the calling thread's tls_counter instead
 * of 1. The payload reaches the program's __thread variable the way -fPIC
 * code does by default, general dynamic: R_X86_64_TLSGD (a {module ID,
 * offset} pair in the payload's GOT) and a real call to __tls_get_addr.
 * Run with tls_threads; each worker's first number grows by 10 a round.
 *
 * target: tls_threads
 */
#include <hotsplice/livepatch.h>

extern __thread int tls_counter;

static int bump_gd(void) { return tls_counter += 10; }

HOTSPLICE_REPLACE("bump", bump_gd);
