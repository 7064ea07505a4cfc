// A local `debuginfod` server for the tests of debug files found through
// debuginfod: elfutils' own server, scanning a directory the test fills
// (-F), on a free port, its database in the test's scratch directory.
// Clients reach it at http://127.0.0.1:PORT (debuginfod 0.188 has no option
// to listen on one address; it listens on every one).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

namespace hs::test {

class DebuginfodServer {
 public:
  // Starts it on `dir` (the files it serves), with its database and log in
  // `work`; nullptr (and a test failure) if it cannot be started.
  static std::unique_ptr<DebuginfodServer> start(const std::string& dir, const std::string& work);
  ~DebuginfodServer();  // SIGTERM, reaped
  DebuginfodServer(const DebuginfodServer&) = delete;
  DebuginfodServer& operator=(const DebuginfodServer&) = delete;

  std::string url() const;  // "http://127.0.0.1:PORT"
  int port() const { return port_; }
  // The HTTP status of GET path ("/buildid/HEX/debuginfo"), 0 if no answer.
  int get_status(const std::string& path) const;
  // Polls until it serves build-id `hex`'s debuginfo (it has scanned `dir`).
  bool serves(const std::string& hex, std::chrono::milliseconds limit = std::chrono::seconds(30)) const;
  // Stops it now (the destructor does too).
  void stop();
  std::string log() const;

 private:
  DebuginfodServer() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

}  // namespace hs::test
