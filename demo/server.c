/* The demo's "server": prints a greeting every 0.4 s, numbered, so the
 * output shows the same process carrying on while its code changes. */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) const char *greeting(int n) {
  static char buf[64];
  /* The "bug" the demo fixes: the greeting is rude. */
  snprintf(buf, sizeof buf, "go away (request %d)", n);
  return buf;
}

int main(void) {
  for (int n = 1;; n++) {
    printf("[server %d] %s\n", (int)getpid(), greeting(n));
    fflush(stdout);
    usleep(400000);
  }
}
