/* cxxeh_types.cc: describe() asks typeid and dynamic_cast about the target's
 * classes and counts in the inline hits()'s static local; join() builds its
 * result with std::string and std::vector.
 * Checks: the payload's weak (COMDAT) copies of the target's typeinfo,
 * vtables, inline functions and static locals resolve to the target's own
 * (the same typeinfo object, one counter), and libstdc++ is the target's.
 *
 * target: cxxeh_server
 */
#include <hotsplice/livepatch.h>

#include <string>
#include <typeinfo>
#include <vector>

#include "../targets/cxxeh/cxxeh.h"

static std::string describe_v2(const Shape &s) {
  hits()++;
  std::string out;
  if (const Circle *c = dynamic_cast<const Circle *>(&s))
    out = "circle r=" + std::to_string(c->r);
  else if (typeid(s) == typeid(Square))
    out = "square side=" + std::to_string(static_cast<const Square &>(s).s);
  else
    out = "unknown";
  // The very typeinfo object the target's vtable points at, not a copy.
  out += &typeid(s) == &typeid(Circle) || &typeid(s) == &typeid(Square) ? " same-typeinfo" : " other-typeinfo";
  return out;
}

static std::string join_v2(const std::vector<std::string> &v) {
  std::vector<std::string> rev(v.rbegin(), v.rend());
  rev.push_back("end");
  std::string out;
  for (const auto &w : rev) out += (out.empty() ? "" : "|") + w;
  return out + " n=" + std::to_string(rev.size());
}

HOTSPLICE_REPLACE("_Z8describeB5cxx11RK5Shape", describe_v2);
HOTSPLICE_REPLACE("_Z4joinRKSt6vectorINSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEESaIS5_EE", join_v2);
