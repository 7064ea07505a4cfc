/* cxxeh_throw.cc: parse_number() throws std::invalid_argument for input that
 * is not a number; the unpatched caller in the target catches it.
 * Checks: the payload's .eh_frame is registered with the target's unwinder
 * (without it, the throw finds no FDE for this frame: terminate, exit 134).
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <cctype>
#include <stdexcept>
#include <string>

#include "../targets/cxxeh/cxxeh.h"

static int parse_number_v2(const char *s) {
  int v = 0;
  for (const char *p = s; *p; ++p) {
    if (!std::isdigit(static_cast<unsigned char>(*p)))
      throw std::invalid_argument(std::string("not a number: ") + s);
    v = v * 10 + (*p - '0');
  }
  return v;
}

HOTSPLICE_REPLACE("_Z12parse_numberPKc", parse_number_v2);
