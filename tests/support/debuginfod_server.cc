// DebuginfodServer: elfutils' debuginfod started for one test (see the header).
#include "support/debuginfod_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "support/eventually.h"
#include "support/files.h"

namespace hs::test {
namespace {

// A port nobody listens on now: bound to 127.0.0.1:0, read, released.
int free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

bool exited(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

std::unique_ptr<DebuginfodServer> DebuginfodServer::start(const std::string& dir, const std::string& work) {
  // A port taken between free_port() and the server's bind makes it exit at
  // once: try another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::unique_ptr<DebuginfodServer> s(new DebuginfodServer);
    s->port_ = free_port();
    s->log_ = work + "/debuginfod.log";
    const std::string port = std::to_string(s->port_), db = work + "/debuginfod.sqlite";
    const pid_t pid = ::fork();
    if (pid < 0) break;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = ::open(s->log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      // -F: ELF/DWARF files under dir; -t 0: scan once; -g 0: no grooming;
      // -c 1: one scanning thread (the machine is shared).
      ::execlp("debuginfod", "debuginfod", "-F", "-p", port.c_str(), "-d", db.c_str(), "-t", "0", "-g", "0", "-c",
               "1", "-v", dir.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    s->pid_ = pid;
    // Listening, or gone.
    bool up = eventually([&] { return exited(pid) || s->get_status("/metrics") == 200; });
    if (up && !exited(pid)) return s;
    if (s->pid_ > 0 && !exited(pid)) s->stop();
    s->pid_ = -1;
    ADD_FAILURE() << "debuginfod on port " << port << " did not start: " << slurp(s->log_);
  }
  ADD_FAILURE() << "cannot start debuginfod";
  return nullptr;
}

DebuginfodServer::~DebuginfodServer() { stop(); }

void DebuginfodServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string DebuginfodServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string DebuginfodServer::log() const { return slurp(log_); }

int DebuginfodServer::get_status(const std::string& path) const {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port_));
  int status = 0;
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(s, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[64] = {};
      size_t got = 0;
      while (got < sizeof buf - 1) {
        ssize_t n = ::recv(s, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
        if (std::memchr(buf, '\n', got)) break;
      }
      // "HTTP/1.x NNN ..."
      if (got >= 12 && std::strncmp(buf, "HTTP/1.", 7) == 0) status = std::atoi(buf + 9);
    }
  }
  ::close(s);
  return status;
}

bool DebuginfodServer::serves(const std::string& hex, std::chrono::milliseconds limit) const {
  return eventually([&] { return get_status("/buildid/" + hex + "/debuginfo") == 200; }, limit);
}

}  // namespace hs::test
