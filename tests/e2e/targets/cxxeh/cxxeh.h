/* cxxeh.h: what the cxxeh target (main.cc, work.cc) and its C++ payloads
 * (tests/e2e/patches/cxxeh_*.cc) share: the classes, the inline function
 * with a static local, and the patchable functions (defined in work.cc, a
 * translation unit of their own, so g++ -O2 cannot inline them into main.cc). */
#ifndef HOTSPLICE_CXXEH_H
#define HOTSPLICE_CXXEH_H

#include <string>
#include <vector>

/* Every virtual function is inline (no key function), so the typeinfo and
 * vtables of these classes are weak COMDAT definitions in every object that
 * uses them: in the target and again in a payload. */
struct Shape {
  virtual ~Shape() {}
  virtual int size() const = 0;
};
struct Circle : Shape {
  explicit Circle(int radius) : r(radius) {}
  int size() const override { return r; }
  int r;
};
struct Square : Shape {
  explicit Square(int side) : s(side) {}
  int size() const override { return s * s; }
  int s;
};

/* An inline function with a static local: one counter per process only if
 * every user binds to the same copy (the target's). */
inline int &hits() {
  static int n = 0;
  return n;
}

/* Target code a payload calls. */
int checked_div(int a, int b);       /* throws std::domain_error("division by zero") */
int stage(int n);                    /* throws std::out_of_range("stage: negative") for n < 0 */
extern int cleanups;                 /* bumped by payload destructors */

/* The patchable functions (mangled names in the tests). */
int parse_number(const char *s);                     /* _Z12parse_numberPKc */
int divide(int a, int b);                            /* _Z6divideii */
int pipeline(int n);                                 /* _Z8pipelinei */
std::string describe(const Shape &s);                /* _Z8describeB5cxx11RK5Shape */
std::string join(const std::vector<std::string> &v); /* _Z4joinRKSt6vectorINSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEESaIS5_EE */

#endif
