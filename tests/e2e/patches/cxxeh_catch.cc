/* cxxeh_catch.cc: divide() catches what the target's checked_div() throws
 * and returns -1; pipeline() lets stage()'s exception pass through it,
 * destroying a local whose destructor counts in the target.
 * Checks: exceptions thrown by target code are caught in payload code (the
 * payload's LSDA, .gcc_except_table, and the typeinfo it names are found),
 * and unwinding through a payload frame runs its cleanups.
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <stdexcept>

#include "../targets/cxxeh/cxxeh.h"

static int divide_v2(int a, int b) {
  try {
    return checked_div(a, b);
  } catch (const std::domain_error &) {
    return -1;
  }
}

namespace {
struct Count {
  ~Count() { cleanups++; }
};
}  // namespace

static int pipeline_v2(int n) {
  Count c;
  return stage(n) + 2;
}

HOTSPLICE_REPLACE("_Z6divideii", divide_v2);
HOTSPLICE_REPLACE("_Z8pipelinei", pipeline_v2);
