/* libklp_lib.so: statics of a shared library that klp_app's patches reach
 * as ".klp.sym.libklp_lib.so.<name>,0". */
static int lib_secret = 42;

__attribute__((noipa)) static int lib_mix(int v) { return v + lib_secret; }

int lib_value(int v) { return lib_mix(v); }

void lib_set_secret(int s) { lib_secret = s; }
