/* ifunc_strings: a target whose hot functions are glibc's strlen and memcpy,
 * indirect functions (STT_GNU_IFUNC), reached every way a program reaches
 * them. Built with -fno-builtin (no inlined strlen/memcpy) and linked with
 * -z lazy; got.c is built with -fno-plt.
 *
 * Protocol (one answer line per input line):
 *   start        -> "ready <pid>"
 *   len S        -> "len=<strlen(S)>"         through the PLT
 *   glen S       -> "glen=<strlen(S)>"        through the GOT (-fno-plt: call *strlen@GOTPCREL)
 *   plen S       -> "plen=<lenp(S)>"          through a pointer taken at startup
 *   late S       -> "late=<n>"                strlen called by libifunc_late.so, dlopen'd
 *                                             (RTLD_LAZY) at its first use, bound lazily then
 *   copy S       -> "copy=<bytes memcpy copied from S>" through the PLT
 *   gcopy S      -> "gcopy=<...>"             through the GOT
 *   pcopy S      -> "pcopy=<...>"             through a pointer taken at startup
 *   lcopy S      -> "lcopy=<...>"             by libifunc_late.so (lazily bound)
 *   move S       -> "move=<...>"              S copied by a loop, then memmove'd one byte to
 *                                             the right over itself ("abc" -> "aabc")
 *   where        -> "strlen=<lenp as hex> memcpy=<copyp as hex>"
 *   ping / quit as serve.h says.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../serve.h"

size_t got_strlen(const char *s);
void *got_memcpy(void *d, const void *s, size_t n);

/* Taken before any patch (in main), kept in volatile storage so the calls
 * stay calls through the pointer. */
static size_t (*volatile lenp)(const char *);
static void *(*volatile copyp)(void *, const void *, size_t);

static size_t (*late_len)(const char *);
static void (*late_copy)(char *, const char *, size_t);

static int load_late(void) {
  if (late_len) return 1;
  void *h = dlopen(LATE_LIB, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    printf("error dlopen %s\n", dlerror());
    return 0;
  }
  late_len = (size_t(*)(const char *))dlsym(h, "late_len");
  late_copy = (void (*)(char *, const char *, size_t))dlsym(h, "late_copy");
  return late_len && late_copy;
}

static int handle(const char *line) {
  char buf[256];
  const char *arg = strchr(line, ' ');
  arg = arg ? arg + 1 : "";
  size_t n = strlen(arg);  /* not the call a test looks at: the commands below are */
  if (n >= sizeof buf) n = sizeof buf - 1;
  memset(buf, 0, sizeof buf);
  if (strncmp(line, "len ", 4) == 0) {
    printf("len=%zu\n", strlen(arg));
  } else if (strncmp(line, "glen ", 5) == 0) {
    printf("glen=%zu\n", got_strlen(arg));
  } else if (strncmp(line, "plen ", 5) == 0) {
    printf("plen=%zu\n", lenp(arg));
  } else if (strncmp(line, "late ", 5) == 0) {
    if (load_late()) printf("late=%zu\n", late_len(arg));
  } else if (strncmp(line, "copy ", 5) == 0) {
    memcpy(buf, arg, n);
    printf("copy=%s\n", buf);
  } else if (strncmp(line, "gcopy ", 6) == 0) {
    got_memcpy(buf, arg, n);
    printf("gcopy=%s\n", buf);
  } else if (strncmp(line, "pcopy ", 6) == 0) {
    copyp(buf, arg, n);
    printf("pcopy=%s\n", buf);
  } else if (strncmp(line, "lcopy ", 6) == 0) {
    if (load_late()) {
      late_copy(buf, arg, n);
      printf("lcopy=%s\n", buf);
    }
  } else if (strncmp(line, "move ", 5) == 0) {
    /* "abcdef" moved one to the right over itself: "aabcdef". */
    for (size_t i = 0; i < n && i < 100; i++) buf[100 + i] = arg[i];
    memmove(buf + 101, buf + 100, n < 100 ? n : 100);
    printf("move=%s\n", buf + 100);
  } else if (strcmp(line, "where") == 0) {
    printf("strlen=%#lx memcpy=%#lx\n", (unsigned long)lenp, (unsigned long)copyp);
  } else {
    return 0;
  }
  return 1;
}

int main(void) {
  lenp = strlen;
  copyp = memcpy;
  return serve(handle);
}
