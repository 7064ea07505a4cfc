#include "support/files.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace hs::test {

TempDir::TempDir(std::string_view tag) {
  std::string tmpl = "/tmp/" + std::string(tag) + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(std::string_view name, std::string_view text) const {
  write_file(file(name), text);
  return file(name);
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) std::abort();
}

void write_bytes(const std::string& path, ByteView b) {
  write_file(path, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

Bytes read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc != 0) ADD_FAILURE() << "command failed (" << rc << "): " << cmd;
  return rc == 0;
}

}  // namespace hs::test
