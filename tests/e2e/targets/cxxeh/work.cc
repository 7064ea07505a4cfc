/* work.cc: the cxxeh target's patchable functions and the target code its
 * payloads call (see cxxeh.h). A translation unit of its own: main.cc only
 * sees the declarations, so every call stays a call. */
#include <cstdlib>
#include <stdexcept>

#include "cxxeh.h"

int cleanups = 0;

int checked_div(int a, int b) {
  if (b == 0) throw std::domain_error("division by zero");
  return a / b;
}

int stage(int n) {
  if (n < 0) throw std::out_of_range("stage: negative");
  return n * 3;
}

int parse_number(const char *s) { return static_cast<int>(std::strtol(s, nullptr, 10)); }

int divide(int a, int b) { return checked_div(a, b); }

int pipeline(int n) { return stage(n) + 1; }

std::string describe(const Shape &s) { return "shape size=" + std::to_string(s.size()); }

std::string join(const std::vector<std::string> &v) {
  std::string out;
  for (const auto &w : v) {
    if (!out.empty()) out += ',';
    out += w;
  }
  return out;
}
