// A "finished" flag for types whose destructor undoes something unless it
// is set: moving leaves the source set, so a moved-from object does nothing
// when it dies, and the owner's move constructor can be defaulted.
#pragma once

#include <utility>

namespace hs {

class DoneFlag {
 public:
  DoneFlag() = default;
  DoneFlag(DoneFlag&& o) noexcept : done_(std::exchange(o.done_, true)) {}
  DoneFlag& operator=(DoneFlag&& o) noexcept {
    done_ = std::exchange(o.done_, true);
    return *this;
  }
  DoneFlag& operator=(bool done) {
    done_ = done;
    return *this;
  }
  operator bool() const { return done_; }

 private:
  bool done_ = true;
};

}  // namespace hs
