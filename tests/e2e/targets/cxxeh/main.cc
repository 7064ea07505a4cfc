/* cxxeh_server: a C++ target (g++ -O2, no noipa, frame pointers omitted) for
 * tests/e2e/cxx_eh_test.cc. The functions the payloads replace live in
 * work.cc; every exception is caught here, in unpatched code.
 *
 * Protocol (one answer line per input line; serve.h):
 *   parse S     -> "parse=<n>", or "caught=<what()>" if it threw
 *   div A B     -> "div=<q>", or "caught=<what()>"
 *   pipe N      -> "pipe=<v> cleanups=<c>", or "caught=<what()> cleanups=<c>"
 *   shape c|s N -> "shape=<describe(Circle(N) or Square(N))>"
 *   words W...  -> "words=<join(W...)>"
 *   hits        -> "hits=<hits()>" (the inline function's static local)
 *   fde ADDR    -> "fde=1" if the process's unwinder has an FDE for ADDR
 *                  (hex), else "fde=0"
 *   selftest    -> "selftest=<what()>": target code throws and catches
 *   spin N      -> "spinning=N": N threads call parse_number("7x") in a
 *                  loop (100 us apart), counting results and exceptions
 *   spun        -> "spun ok=<results> caught=<exceptions>"
 *   bg S        -> "bg started": a thread calls parse_number(S) once
 *   bgres       -> "bg=<n>", "bg caught=<what()>", or "bg pending"
 *   ping -> pong; quit / EOF -> exit 0
 */
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "../serve.h"
#include "cxxeh.h"

extern "C" {
struct cxxeh_bases {
  void *tbase, *dbase, *func;
};
/* libgcc's FDE lookup (exported by libgcc_s.so.1, GCC_3.0): what the
 * unwinder itself consults for a PC, registered frames included. */
const void *_Unwind_Find_FDE(void *pc, struct cxxeh_bases *bases);
}

static std::atomic<long> spun_ok{0}, spun_caught{0};

static void spin() {
  for (;;) {
    try {
      parse_number("7x");
      spun_ok++;
    } catch (const std::exception &) {
      spun_caught++;
    }
    usleep(100);
  }
}

static std::mutex bg_mutex;
static std::string bg_result = "pending";

static void background(std::string s) {
  std::string r;
  try {
    r = std::to_string(parse_number(s.c_str()));
  } catch (const std::exception &e) {
    r = std::string("caught=") + e.what();
  }
  std::lock_guard<std::mutex> lock(bg_mutex);
  bg_result = r;
}

static int handle_line(const char *line) {
  std::istringstream in(line);
  std::string cmd;
  in >> cmd;
  try {
    if (cmd == "parse") {
      std::string s;
      in >> s;
      std::printf("parse=%d\n", parse_number(s.c_str()));
    } else if (cmd == "div") {
      int a = 0, b = 0;
      in >> a >> b;
      std::printf("div=%d\n", divide(a, b));
    } else if (cmd == "pipe") {
      int n = 0;
      in >> n;
      int v = pipeline(n);
      std::printf("pipe=%d cleanups=%d\n", v, cleanups);
    } else if (cmd == "shape") {
      std::string kind;
      int n = 0;
      in >> kind >> n;
      Circle c(n);
      Square q(n);
      const Shape &s = kind == "c" ? static_cast<const Shape &>(c) : static_cast<const Shape &>(q);
      std::printf("shape=%s\n", describe(s).c_str());
    } else if (cmd == "words") {
      std::vector<std::string> v;
      for (std::string w; in >> w;) v.push_back(w);
      std::printf("words=%s\n", join(v).c_str());
    } else if (cmd == "hits") {
      std::printf("hits=%d\n", hits());
    } else if (cmd == "fde") {
      std::string a;
      in >> a;
      cxxeh_bases b{};
      void *pc = reinterpret_cast<void *>(std::strtoull(a.c_str(), nullptr, 16));
      std::printf("fde=%d\n", _Unwind_Find_FDE(pc, &b) != nullptr ? 1 : 0);
    } else if (cmd == "spin") {
      int n = 0;
      in >> n;
      for (int i = 0; i < n; i++) std::thread(spin).detach();
      std::printf("spinning=%d\n", n);
    } else if (cmd == "bg") {
      std::string s;
      in >> s;
      std::thread(background, s).detach();
      std::printf("bg started\n");
    } else if (cmd == "bgres") {
      std::lock_guard<std::mutex> lock(bg_mutex);
      std::printf("bg%s%s\n", bg_result == "pending" ? " " : (bg_result.rfind("caught=", 0) == 0 ? " " : "="),
                  bg_result.c_str());
    } else if (cmd == "spun") {
      std::printf("spun ok=%ld caught=%ld\n", spun_ok.load(), spun_caught.load());
    } else if (cmd == "selftest") {
      try {
        checked_div(1, 0);
        std::printf("selftest=none\n");
      } catch (const std::exception &e) {
        std::printf("selftest=%s\n", e.what());
      }
    } else {
      return 0;
    }
  } catch (const std::exception &e) {
    if (cmd == "pipe")
      std::printf("caught=%s cleanups=%d\n", e.what(), cleanups);
    else
      std::printf("caught=%s\n", e.what());
  }
  return 1;
}

int main() {
  hits() = 0;
  return serve(handle_line);
}
