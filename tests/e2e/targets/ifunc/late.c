/* libifunc_late.so: dlopen'd by ifunc_strings at its first "late"/"lcopy"
 * command, linked with -z lazy, so its strlen and memcpy PLT slots are bound
 * by the dynamic linker (which calls the IFUNC resolver) on first call. */
#include <string.h>

size_t late_len(const char *s) { return strlen(s); }
void late_copy(char *d, const char *s, size_t n) { memcpy(d, s, n); }
