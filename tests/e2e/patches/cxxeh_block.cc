/* cxxeh_block.cc: parse_number("wait") sleeps 3 s inside the replacement,
 * then throws std::runtime_error("woke up"); other input parses as before.
 * Checks: an unload refused because a thread is inside the payload (its
 * table deregistered for a moment) registers the table again, so that
 * thread's exception still finds the payload's frame.
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "../targets/cxxeh/cxxeh.h"

static int parse_number_v4(const char *s) {
  if (std::strcmp(s, "wait") == 0) {
    for (int i = 0; i < 30; i++) usleep(100 * 1000);
    throw std::runtime_error("woke up");
  }
  return static_cast<int>(std::strtol(s, nullptr, 10));
}

HOTSPLICE_REPLACE("_Z12parse_numberPKc", parse_number_v4);
