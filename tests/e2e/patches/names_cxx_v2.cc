/* names_cxx_v2.cc: replaces names_cxx's C++ functions, named demangled:
 * a member function and a virtual one by their full signatures, an overload
 * by its signature, a template instance with its return type, and the other
 * overload by its mangled name.
 * Checks: demangled names resolve in the builder and at load, list shows the
 * symbols, behaviour changes and comes back on revert (Names.Cxx*).
 *
 * target: names_cxx
 */
#include <hotsplice/livepatch.h>

namespace ns {
// The layout of the target's Conn (targets/names/cxx_lib.h): vtable pointer, fd.
struct Conn {
  virtual ~Conn();
  virtual int kind() const;
  int fd;
};
}  // namespace ns

namespace {

// A member function's replacement takes `this` first.
int send_v2(ns::Conn* self, const char*, unsigned long len) { return self->fd * 1000 + static_cast<int>(len) + 500; }
int kind_v2(const ns::Conn* self) { return self->fd > 0 ? 2 : 0; }
double twice_double_v2(double x) { return 2.0 * x + 1.25; }
int twice_int_v2(int x) { return 2 * x + 1; }
int bigger_int_v2(int a, int b) { return a < b ? a : b; }

}  // namespace

HOTSPLICE_REPLACE("ns::Conn::send(char const*, unsigned long)", send_v2);
HOTSPLICE_REPLACE("ns::Conn::kind() const", kind_v2);
HOTSPLICE_REPLACE("ns::twice(double)", twice_double_v2);
HOTSPLICE_REPLACE("int ns::bigger<int>(int, int)", bigger_int_v2);
HOTSPLICE_REPLACE("_ZN2ns5twiceEi", twice_int_v2);
