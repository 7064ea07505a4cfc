/* shadow_data.c: hooks only. HOTSPLICE_DATA_CHANGE / HOTSPLICE_DATA_HOOKS:
 * while applied, request_limit is 64 and greeting "welcome"; revert puts
 * back 16 and "hello" (the values saved at apply).
 *
 * target: shadow_server
 */
#include <hotsplice/livepatch.h>

extern int request_limit;
extern char greeting[16];

HOTSPLICE_DATA_CHANGE(limit, request_limit, 64);
HOTSPLICE_DATA_CHANGE(hello_text, greeting, "welcome");
HOTSPLICE_DATA_HOOKS(&limit, &hello_text);
