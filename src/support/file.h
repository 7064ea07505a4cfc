// Reading a whole file (payloads, target objects, /proc files).
#pragma once

#include <expected>
#include <string>

#include "support/bytes.h"

namespace hs {

struct FileError {
  int err = 0;          // errno
  bool opening = true;  // failed at open() rather than read()
};

// Reads everything (retrying EINTR). /proc files, whose st_size is 0, work.
std::expected<Bytes, FileError> read_whole_file(const std::string& path);

}  // namespace hs
