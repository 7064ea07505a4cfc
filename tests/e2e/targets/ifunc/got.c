/* ifunc_strings, compiled with -fno-plt: strlen and memcpy called through
 * their GOT slots (call *strlen@GOTPCREL(%rip)), no PLT stub. */
#include <string.h>

size_t got_strlen(const char *s) { return strlen(s); }
void *got_memcpy(void *d, const void *s, size_t n) { return memcpy(d, s, n); }
