// The functions of names_cxx that the Names.* tests patch (cxx_lib.cc).
#pragma once

namespace ns {

struct Conn {
  explicit Conn(int f) : fd(f) {}
  virtual ~Conn();
  virtual int kind() const;
  int send(const char* data, unsigned long len);
  int fd;
};

Conn* make_conn(int fd);
int twice(int x);
double twice(double x);
template <class T>
T bigger(T a, T b);
extern template int bigger<int>(int, int);
extern template long bigger<long>(long, long);

}  // namespace ns
