// The out-of-line parts of error.h: kind names, errno to kind, the message
// with its context, and the always-on assertion's report.
#include "support/error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace hs {

const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::Usage: return "usage";
    case ErrorKind::BadPayload: return "bad-payload";
    case ErrorKind::BadTarget: return "bad-target";
    case ErrorKind::Ambiguous: return "ambiguous";
    case ErrorKind::NoProcess: return "no-process";
    case ErrorKind::Permission: return "permission";
    case ErrorKind::TargetGone: return "target-gone";
    case ErrorKind::Busy: return "busy";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::State: return "state";
    case ErrorKind::Corrupt: return "corrupt";
    case ErrorKind::Io: return "io";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
}

Error& Error::context(std::string_view ctx) & {
  contexts_.emplace_back(ctx);
  compose();
  return *this;
}

Error& Error::drop_outer_context() {
  if (!contexts_.empty()) contexts_.pop_back();
  compose();
  return *this;
}

Error& Error::consequence(std::string_view what) & {
  consequences_.emplace_back(what);
  compose();
  return *this;
}

void Error::compose() {
  message_.clear();
  for (auto it = contexts_.rbegin(); it != contexts_.rend(); ++it) {
    message_ += *it;
    message_ += ": ";
  }
  message_ += detail_;
  for (const std::string& c : consequences_) {
    message_ += "; ";
    message_ += c;
  }
}

int Error::exit_code() const {
  switch (kind_) {
    case ErrorKind::Busy:
    case ErrorKind::Timeout: return 2;
    case ErrorKind::Usage: return 64;
    default: return 1;
  }
}

std::string errno_text(int err) { return std::strerror(err); }

ErrorKind kind_for_errno(int err, ErrorKind otherwise) {
  switch (err) {
    case ESRCH: return ErrorKind::TargetGone;
    case EPERM:
    case EACCES: return ErrorKind::Permission;
    default: return otherwise;
  }
}

void assert_failed(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "hotsplice: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
  std::abort();
}

}  // namespace hs
