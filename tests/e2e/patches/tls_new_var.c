/* tls_new_var.c: a payload that defines a thread-local variable of its own.
 * Refused: a payload cannot add TLS to a running process (the threads'
 * blocks are already laid out); use the target's variables.
 *
 * target: tls_threads
 * build-error: thread-local sections (SHF_TLS) are not supported in a payload
 */
#include <hotsplice/livepatch.h>

__thread int calls_per_thread;

static int bump_counting(void) { return ++calls_per_thread; }

HOTSPLICE_REPLACE("bump", bump_counting);
