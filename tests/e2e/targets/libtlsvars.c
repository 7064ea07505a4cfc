/* libtlsvars.so: thread-local variables in a shared library, for the TLS
 * tests (tls_threads.c says the protocol). lib_ie is accessed with the
 * initial-exec model (so the library is in static TLS, DF_STATIC_TLS),
 * lib_gd with the general-dynamic one (the default for -fPIC).
 * lib_bump_ie() and lib_bump_gd() add 1 to the calling thread's copy;
 * tls_lib_v2.c makes them add 7 and 9. */
__thread int lib_ie __attribute__((tls_model("initial-exec")));
__thread int lib_gd;

__attribute__((noipa)) int lib_bump_ie(void) { return lib_ie += 1; }

__attribute__((noipa)) int lib_bump_gd(void) { return lib_gd += 1; }

void lib_seed(int ie, int gd) {
  lib_ie = ie;
  lib_gd = gd;
}
