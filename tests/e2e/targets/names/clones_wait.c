/* names_clones' cold path (clones.c): blocks in read(2) until "release",
 * remembering where it returns to (inside checked.cold). Its own file, so
 * checked.cold really calls it. */
#include <unistd.h>

extern int release_pipe[2];
extern void *volatile parked_ret;

__attribute__((cold, noinline)) void cold_wait(void) {
  parked_ret = __builtin_return_address(0);
  char c;
  while (read(release_pipe[0], &c, 1) != 1) {
  }
}
