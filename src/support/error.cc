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
    case ErrorKind::NoProcess: return "no-process";
    case ErrorKind::Permission: return "permission";
    case ErrorKind::TargetGone: return "target-gone";
    case ErrorKind::Busy: return "busy";
    case ErrorKind::Timeout: return "timeout";
    case ErrorKind::State: return "state";
    case ErrorKind::Io: return "io";
    case ErrorKind::Internal: return "internal";
  }
  return "unknown";
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
