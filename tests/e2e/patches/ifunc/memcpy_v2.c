/* Replaces glibc's memcpy (an indirect function): built with --target the
 * libc the process maps (tests/e2e/ifunc_test.cc). glibc 2.36's memcpy
 * implementation is memmove's, and its mempcpy jumps 3 bytes into it, so
 * hotsplice refuses it there (engine/ifunc.h); where it is accepted, this is
 * a correct memmove (memmove lands here too) with one visible difference: a
 * copy of at least 6 bytes starting "hsmark" writes "HSMARK" instead. No
 * library calls, no loop GCC could turn into a memcpy call. */
#include <hotsplice/livepatch.h>
#include <stddef.h>

static void *hs_memcpy(void *dst, const void *src, size_t n) {
  volatile unsigned char *d = dst;
  const volatile unsigned char *s = src;
  const int mark = n >= 6 && s[0] == 'h' && s[1] == 's' && s[2] == 'm' && s[3] == 'a' && s[4] == 'r' && s[5] == 'k';
  if (d > s && d < s + n) {
    for (size_t i = n; i > 0; i--) d[i - 1] = s[i - 1];
  } else {
    for (size_t i = 0; i < n; i++) d[i] = s[i];
  }
  if (mark) {
    d[0] = 'H', d[1] = 'S', d[2] = 'M', d[3] = 'A', d[4] = 'R', d[5] = 'K';
  }
  return dst;
}

HOTSPLICE_REPLACE("memcpy", hs_memcpy);
