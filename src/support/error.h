// Errors travel as values: every fallible function returns Result<T>, and a
// caller that knows more (the file, the section, the function) adds it as
// context on the way up, so the one line the user reads names everything:
//
//   hotsplice: error: fix.lp: section [index 3] '.livepatch.funcs': size 0x64 is not a multiple of 104
//
// The kind decides the exit code; the message is lowercase, without a trailing
// period, and names the bad value and the limit it broke.
#pragma once

#include <cerrno>
#include <cstdint>
#include <expected>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace hs {

enum class ErrorKind : uint8_t {
  Usage,       // bad command line
  BadPayload,  // malformed or unacceptable payload file
  BadTarget,   // the target process/object does not fit the payload (build-id, symbol, expectation)
  Ambiguous,   // a name that matches more than one definition (a BadTarget the resolver must not look past)
  NoProcess,   // no such PID
  Permission,  // not allowed to trace / read / write
  TargetGone,  // the target died while we worked on it
  Busy,        // another operation is in progress on that process (retry-able)
  Timeout,     // activeness check did not pass before --timeout (retry-able)
  State,       // operation not valid in the payload's current state
  Corrupt,     // state read back from a target (its registry) is malformed
  Io,          // host-side I/O (files, tools)
  Internal,    // a broken invariant of hotsplice itself
};

const char* kind_name(ErrorKind k);
std::string errno_text(int err);

class [[nodiscard]] Error {
 public:
  Error(ErrorKind kind, std::string message, int err = 0)
      : kind_(kind), detail_(std::move(message)), message_(detail_), errno_(err) {}

  ErrorKind kind() const { return kind_; }
  // The same error filed under another kind (the exit code follows it).
  Error& set_kind(ErrorKind k) {
    kind_ = k;
    return *this;
  }
  int sys_errno() const { return errno_; }
  // The whole line: every context, outermost first, then the detail, then
  // what followed from it ("ctx2: ctx1: detail; consequence").
  const std::string& message() const { return message_; }

  // The one way to say where an error happened: prepends "ctx: ". The
  // contexts are kept apart from the detail, so a caller can tell which one
  // came last (outer_context) and replace it (drop_outer_context) without
  // reading the message text.
  Error& context(std::string_view ctx) &;
  Error&& context(std::string_view ctx) && { return std::move(context(ctx)); }
  const std::string* outer_context() const { return contexts_.empty() ? nullptr : &contexts_.back(); }
  Error& drop_outer_context();

  // What the failure led to, appended as "; what" ("upload rolled back").
  Error& consequence(std::string_view what) &;
  Error&& consequence(std::string_view what) && { return std::move(consequence(what)); }

  // 0 ok, 1 error, 2 retry-able (busy / activeness timeout), 64 usage.
  int exit_code() const;

 private:
  void compose();

  ErrorKind kind_;
  std::string detail_;
  std::vector<std::string> contexts_;      // innermost first
  std::vector<std::string> consequences_;  // in the order added
  std::string message_;
  int errno_;
};

// std::expected with [[nodiscard]] on the type: a call whose Result or
// Status is dropped does not compile (-Werror). `(void)call()` says that an
// error is ignored on purpose.
template <class T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(std::expected<T, Error> e) : std::expected<T, Error>(std::move(e)) {}  // NOLINT(google-explicit-constructor)
};
using Status = Result<void>;

template <class... Args>
[[nodiscard]] std::unexpected<Error> fail(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  return std::unexpected(Error(kind, fmt::format(f, std::forward<Args>(args)...)));
}

// Like fail(), with the errno of the failed system call appended as ": <strerror>".
template <class... Args>
[[nodiscard]] std::unexpected<Error> fail_errno(ErrorKind kind, int err, fmt::format_string<Args...> f,
                                                Args&&... args) {
  return std::unexpected(
      Error(kind, fmt::format("{}: {}", fmt::format(f, std::forward<Args>(args)...), errno_text(err)), err));
}

// Maps errno of a failed access to the target to the right kind
// (ESRCH -> TargetGone, EPERM/EACCES -> Permission, else the given kind).
ErrorKind kind_for_errno(int err, ErrorKind otherwise);

}  // namespace hs

// HS_TRY(expr): evaluates a Result; on error returns it from the enclosing
// function, otherwise yields the value. HS_CHECK(expr) does the same for Status.
#define HS_TRY(expr)                                             \
  ({                                                             \
    auto hs_try_r_ = (expr);                                     \
    if (!hs_try_r_) return std::unexpected(std::move(hs_try_r_.error())); \
    std::move(*hs_try_r_);                                       \
  })

#define HS_CHECK(expr)                                           \
  do {                                                           \
    auto hs_check_r_ = (expr);                                   \
    if (!hs_check_r_) return std::unexpected(std::move(hs_check_r_.error())); \
  } while (0)

// HS_TRY_CTX(expr, ctx): like HS_TRY but adds context to the error.
#define HS_TRY_CTX(expr, ctx)                                    \
  ({                                                             \
    auto hs_try_r_ = (expr);                                     \
    if (!hs_try_r_) return std::unexpected(std::move(hs_try_r_.error()).context(ctx)); \
    std::move(*hs_try_r_);                                       \
  })

#define HS_CHECK_CTX(expr, ctx)                                  \
  do {                                                           \
    auto hs_check_r_ = (expr);                                   \
    if (!hs_check_r_) return std::unexpected(std::move(hs_check_r_.error()).context(ctx)); \
  } while (0)

// Always-on assertion for hotsplice's own invariants (never for bad input).
#define HS_ASSERT(cond)                                          \
  do {                                                           \
    if (!(cond)) ::hs::assert_failed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace hs {
[[noreturn]] void assert_failed(const char* cond, const char* file, int line);
}
