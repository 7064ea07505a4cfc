// Tests of the error type (support/error.h): contexts kept apart from the
// detail, the consequence suffix, the kinds and their exit codes, and the
// HS_TRY_CTX path that every layer uses to say where an error happened.
#include "support/error.h"

#include <type_traits>

#include <gtest/gtest.h>

namespace hs {
namespace {

Status fails_in_reader() { return fail(ErrorKind::BadPayload, "section 3: bad size"); }
Status opens_file() {
  HS_CHECK_CTX(fails_in_reader(), "fix.lp");
  return {};
}
Result<int> value_or_context(bool ok) {
  auto inner = [&]() -> Result<int> {
    if (ok) return 7;
    return fail(ErrorKind::BadTarget, "symbol 'x' not found");
  };
  return HS_TRY_CTX(inner(), "function 'x'") + 1;
}

TEST(Error, ContextsAreOutermostFirstAndKeptApart) {
  auto st = opens_file();
  ASSERT_FALSE(st);
  Error e = st.error();
  EXPECT_EQ(e.message(), "fix.lp: section 3: bad size");
  ASSERT_NE(e.outer_context(), nullptr);
  EXPECT_EQ(*e.outer_context(), "fix.lp");
  e.context("target ./server");
  EXPECT_EQ(e.message(), "target ./server: fix.lp: section 3: bad size");
  e.drop_outer_context().drop_outer_context();
  EXPECT_EQ(e.message(), "section 3: bad size");
  EXPECT_EQ(e.outer_context(), nullptr);
  e.drop_outer_context();  // nothing left to drop
  EXPECT_EQ(e.message(), "section 3: bad size");
}

TEST(Error, ConsequenceFollowsTheDetailAndKeepsTheKind) {
  Error e(ErrorKind::Timeout, "hook 'h' timed out", 0);
  e.context("payload 'p'").consequence("apply rolled back");
  EXPECT_EQ(e.message(), "payload 'p': hook 'h' timed out; apply rolled back");
  EXPECT_EQ(e.kind(), ErrorKind::Timeout);
  EXPECT_EQ(e.exit_code(), 2);
}

TEST(Error, TryCtxAddsContextOnlyOnError) {
  EXPECT_EQ(*value_or_context(true), 8);
  auto r = value_or_context(false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "function 'x': symbol 'x' not found");
  EXPECT_EQ(r.error().kind(), ErrorKind::BadTarget);
}

TEST(Error, ErrnoIsKeptAndNamed) {
  auto r = fail_errno(ErrorKind::Io, ENOENT, "cannot open {}", "/nope");
  EXPECT_EQ(r.error().message(), "cannot open /nope: No such file or directory");
  EXPECT_EQ(r.error().sys_errno(), ENOENT);
  EXPECT_EQ(kind_for_errno(ESRCH, ErrorKind::Io), ErrorKind::TargetGone);
  EXPECT_EQ(kind_for_errno(EPERM, ErrorKind::Io), ErrorKind::Permission);
}

TEST(Error, KindsAndExitCodes) {
  EXPECT_EQ(Error(ErrorKind::Usage, "").exit_code(), 64);
  EXPECT_EQ(Error(ErrorKind::Busy, "").exit_code(), 2);
  EXPECT_EQ(Error(ErrorKind::Ambiguous, "").exit_code(), 1);
  EXPECT_EQ(Error(ErrorKind::Corrupt, "").exit_code(), 1);
  EXPECT_STREQ(kind_name(ErrorKind::Ambiguous), "ambiguous");
  EXPECT_STREQ(kind_name(ErrorKind::Corrupt), "corrupt");
  EXPECT_EQ(Error(ErrorKind::Corrupt, "x").set_kind(ErrorKind::Internal).kind(), ErrorKind::Internal);
}

// Result and Status are distinct [[nodiscard]] types, not aliases of
// std::expected (a dropped one is a -Werror compile error; that part is
// checked by the build itself).
static_assert(!std::is_same_v<Status, std::expected<void, Error>>);
static_assert(std::is_base_of_v<std::expected<int, Error>, Result<int>>);

}  // namespace
}  // namespace hs
