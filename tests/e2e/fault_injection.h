// The e2e tests that kill the tool or the target at the engine's fault
// points (HOTSPLICE_FAULT_STEP / _LIST / _KILL_TARGET) need a hotsplice built
// with -DHS_FAULT_INJECTION=ON (scripts/test.sh builds so). hs_engine passes
// the definition on to whatever links it, this test binary included; in a
// build without it those tests are skipped, saying why.
#pragma once

#include <gtest/gtest.h>

#ifdef HS_FAULT_INJECTION
#define HS_REQUIRE_FAULT_INJECTION() static_cast<void>(0)
#else
#define HS_REQUIRE_FAULT_INJECTION() \
  GTEST_SKIP() << "hotsplice was built without fault points (configure with -DHS_FAULT_INJECTION=ON)"
#endif
