// Scratch directories and whole-file reads and writes for the tests.
#pragma once

#include <string>
#include <string_view>

#include "support/bytes.h"

namespace hs::test {

// A fresh directory under /tmp (named after `tag`), removed with its
// contents when the object goes.
class TempDir {
 public:
  explicit TempDir(std::string_view tag = "hs-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
  // Writes `text` to file(name) and returns that path.
  std::string write(std::string_view name, std::string_view text) const;

 private:
  std::string path_;
};

// Whole files; a write that fails aborts (a test cannot go on without it).
void write_file(const std::string& path, std::string_view text);
void write_bytes(const std::string& path, ByteView b);
Bytes read_bytes(const std::string& path);   // empty if unreadable
std::string slurp(const std::string& path);  // text; "" if unreadable (works for /proc)

// Runs a shell command; true on exit status 0, else a test failure naming it.
bool run(const std::string& cmd);

}  // namespace hs::test
