/* Replaces glibc's strlen (an indirect function) in a process: built with
 * --target the libc the process maps (tests/e2e/ifunc_test.cc). In
 * patches/ifunc/ because builder_test builds every patches/*.c against an
 * e2e target, and this one's target is the system's libc.
 *
 * Every strlen of the process lands here once applied, libc's own included
 * (printf, stdio), so it stays a correct strlen with one visible difference:
 * the length of a string starting "HSIFUNC" is 4242. No library calls, and
 * no loop GCC could turn back into a strlen call (volatile accesses). */
#include <hotsplice/livepatch.h>
#include <stddef.h>

static size_t hs_strlen(const char *s) {
  const volatile char *p = s;
  size_t n = 0;
  while (p[n]) n++;
  if (n >= 7 && p[0] == 'H' && p[1] == 'S' && p[2] == 'I' && p[3] == 'F' && p[4] == 'U' && p[5] == 'N' &&
      p[6] == 'C')
    return 4242;
  return n;
}

HOTSPLICE_REPLACE("strlen", hs_strlen);
HOTSPLICE_INFO("description", "glibc strlen, replaced where this process resolved it");
