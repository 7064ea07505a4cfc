/* libtlsdyn.so: a library tls_threads loads with dlopen ("dlopen PATH"), so
 * its thread-local variable is in dynamic TLS: each thread's block is
 * allocated by __tls_get_addr on first use, at no fixed distance from the
 * thread pointer. dyn_bump(k) adds k to the calling thread's dyn_var;
 * tls_dyn_gd.c makes it add 10k. */
__thread int dyn_var;

__attribute__((noipa)) int dyn_bump(int k) { return dyn_var += k; }
