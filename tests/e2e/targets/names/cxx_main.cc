// names_cxx: a C++ target (g++ -O2, no frame pointers, no noipa) for the
// Names.* tests: functions named demangled in HOTSPLICE_REPLACE.
//
// Protocol (serve.h): "ready <pid>", then one answer per line:
//   send   -> "send=<ns::Conn::send(\"xy\", 5) on a Conn with fd 7>"   (7006)
//   kind   -> "kind=<conn->kind()>" through the vtable                (1)
//   twice  -> "twice=<ns::twice(21)> <ns::twice(1.25)>"               (42 2.5)
//   bigger -> "bigger=<ns::bigger<int>(3, 9)> <ns::bigger<long>(3, 9)>" (9 9)
#include <cstdio>
#include <string_view>

#include "../serve.h"
#include "cxx_lib.h"

namespace {

ns::Conn* conn;

int handle(const char* line) {
  const std::string_view l(line);
  if (l == "send") {
    std::printf("send=%d\n", conn->send("xy", 5));
  } else if (l == "kind") {
    std::printf("kind=%d\n", conn->kind());
  } else if (l == "twice") {
    std::printf("twice=%d %g\n", ns::twice(21), ns::twice(1.25));
  } else if (l == "bigger") {
    std::printf("bigger=%d %ld\n", ns::bigger<int>(3, 9), ns::bigger<long>(3L, 9L));
  } else {
    return 0;
  }
  return 1;
}

}  // namespace

int main() {
  conn = ns::make_conn(7);
  return serve(handle);
}
