/* cxxeh_hook_crash.cc: a C++ payload whose load hook crashes (a write to
 * address 0x28), so its upload is rolled back.
 * Checks: the rollback deregisters the unwind table before the image is
 * unmapped (a table left registered over unmapped memory crashes the next
 * throw anywhere in the process).
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <stdexcept>

#include "../targets/cxxeh/cxxeh.h"

static int parse_number_v3(const char *s) {
  if (!*s) throw std::invalid_argument("empty");
  return 3;
}

static void on_load(void) { *reinterpret_cast<volatile int *>(0x28) = 1; }

HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_REPLACE("_Z12parse_numberPKc", parse_number_v3);
