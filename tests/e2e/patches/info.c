/* info.c: what `hotsplice info` shows (info_test.cc): a replacement guarded
 * by an expectation, a NOP-out, metadata, a load hook and a preapply hook;
 * stacked on hello_v2. Applied: world=60, and side stops counting.
 *
 * target: hello
 * depends: hello_v2.c
 */
#include <hotsplice/livepatch.h>

/* Global, so the payload's relocations name them (info shows those names). */
int info_world(void);
void info_on_load(void);
int info_pre(void *arg);

int info_world(void) { return 60; }
void info_on_load(void) {}
int info_pre(void *arg) {
  (void)arg;
  return 0;
}

HOTSPLICE_REPLACE_EXPECT("world", info_world, 0x8b, 0x05);
HOTSPLICE_NOP("side_effect", 5);
HOTSPLICE_INFO("cve", "CVE-2026-4242");
HOTSPLICE_INFO("description", "shown by hotsplice info");
HOTSPLICE_LOAD_HOOK(info_on_load);
HOTSPLICE_PREAPPLY_HOOK(info_pre);
