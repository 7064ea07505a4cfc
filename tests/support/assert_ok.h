// ASSERT_OK / EXPECT_OK: a Result or Status holds a value, or the test fails
// naming the expression and the error's message. More can be streamed:
// ASSERT_OK(p.write(...)) << "at " << addr;
#pragma once

#include <gtest/gtest.h>

#define HS_TEST_OK_(expr, fail)                                            \
  GTEST_AMBIGUOUS_ELSE_BLOCKER_                                            \
  if (const auto& hs_ok_result_ = (expr); hs_ok_result_.has_value()) {     \
  } else                                                                   \
    fail() << #expr << ": " << hs_ok_result_.error().message() << " "

#define ASSERT_OK(expr) HS_TEST_OK_(expr, GTEST_FAIL)
#define EXPECT_OK(expr) HS_TEST_OK_(expr, ADD_FAILURE)
