// names_cxx's library half: the functions the Names.* tests patch by their
// demangled names. A translation unit of its own (no LTO), so main.cc cannot
// inline them, and each touches a volatile so its body is over 5 bytes.
#include "cxx_lib.h"

namespace ns {

volatile int sink;

// A member function: the answer mixes the object, both arguments.
int Conn::send(const char* data, unsigned long len) {
  sink = fd;
  return fd * 1000 + static_cast<int>(len) + (data[0] == 'x' ? 1 : 0);
}

// Virtual: main.cc reaches it only through the vtable.
int Conn::kind() const {
  sink = fd;
  return 1;
}

Conn::~Conn() { sink = 0; }

Conn* make_conn(int fd) { return new Conn(fd); }

// Overloads: patched by their full signatures.
int twice(int x) {
  sink = x;
  return 2 * x;
}
double twice(double x) {
  sink = 2;
  return 2.0 * x;
}

// A template, instantiated here for int and long.
template <class T>
T bigger(T a, T b) {
  sink = 3;
  return a > b ? a : b;
}
template int bigger<int>(int, int);
template long bigger<long>(long, long);

}  // namespace ns
