/* cxxeh_hooks.cc: load and unload hooks that throw and catch inside
 * themselves, then count in the target's hits() (+100 on load, +1000 on
 * unload); parse_number() answers 7.
 * Checks: the payload's unwind table is registered before its load hooks
 * run and deregistered only after its unload hooks (a throw in a hook with
 * no table would terminate: the hook crashes with SIGABRT).
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <stdexcept>

#include "../targets/cxxeh/cxxeh.h"

static void __attribute__((noinline)) fail_with(const char *what) { throw std::runtime_error(what); }

static void count_through_a_throw(int n) {
  try {
    fail_with("hook");
  } catch (const std::runtime_error &) {
    hits() += n;
  }
}

static void on_load(void) { count_through_a_throw(100); }
static void on_unload(void) { count_through_a_throw(1000); }
static int parse_number_v7(const char *) { return 7; }

HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_UNLOAD_HOOK(on_unload);
HOTSPLICE_REPLACE("_Z12parse_numberPKc", parse_number_v7);
