/* server_fix.c: replaces tcp_server's handle_request() with one that gives
 * the same answers and counts the requests it served in the server's global
 * patched_requests (so the benchmark can see the patch was live).
 *
 * target: tcp_server
 */
#include <hotsplice/livepatch.h>
#include <stdint.h>
#include <stdio.h>

extern volatile unsigned long patched_requests;

static int handle_request_fixed(const char *req, size_t len, char *out, size_t cap) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)req[i];
    h *= 16777619u;
  }
  patched_requests++;
  return snprintf(out, cap, "%08x\n", h);
}

HOTSPLICE_REPLACE("handle_request", handle_request_fixed);
HOTSPLICE_INFO("description", "bench: same answers, counted");
