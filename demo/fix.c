/* The demo's live patch: greeting() becomes polite. */
#include <hotsplice/livepatch.h>
#include <stdio.h>

static const char *polite_greeting(int n) {
  static char buf[64];
  snprintf(buf, sizeof buf, "hello, nice to see you (request %d)", n);
  return buf;
}

HOTSPLICE_REPLACE("greeting", polite_greeting);
HOTSPLICE_INFO("description", "make the greeting polite");
HOTSPLICE_INFO("cve", "CVE-2026-0001");
