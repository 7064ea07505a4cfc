// Figure 5: requests per second of a server under a steady load, without
// patching and while a payload is applied and reverted once a second.
//
// tcp_server (bench/targets) listens on 127.0.0.1; C client threads here
// keep one request in flight each (closed loop) and check every answer.
// Time is cut into 1-second samples grouped in phases of P seconds,
// alternating baseline (B) and patching (X) in the order B X X B B X ... so
// that a slow drift of the machine's load does not favour either. In an X
// second the payload (server_fix: same answers) is applied at its start and
// reverted half a second later. The dip is 1 - median(X) / median(B).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>

#include "figures.h"

namespace hsb {

namespace {

struct alignas(64) ClientStats {
  std::atomic<unsigned long long> done{0};
  std::atomic<unsigned long long> bad{0};
  std::string error;
};

uint32_t fnv1a(const char* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 16777619u;
  }
  return h;
}

void client(int port, int id, const std::atomic<bool>& stop, ClientStats& st) {
  constexpr unsigned long long kMaxRequests = 100000000ULL;  // a bound, never reached in practice
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    st.error = fmt::format("client {}: cannot connect to 127.0.0.1:{}: {}", id, port, std::strerror(errno));
    if (fd >= 0) close(fd);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char req[64], resp[64];
  for (unsigned long long i = 0; i < kMaxRequests && !stop.load(std::memory_order_relaxed); i++) {
    int len = std::snprintf(req, sizeof req, "GET /item/%d/%llu", id, i);
    req[len] = '\n';
    if (write(fd, req, static_cast<size_t>(len) + 1) != len + 1) {
      st.error = fmt::format("client {}: write failed", id);
      break;
    }
    size_t have = 0;
    while (have < 9) {
      ssize_t r = read(fd, resp + have, sizeof resp - have);
      if (r <= 0) break;
      have += static_cast<size_t>(r);
    }
    if (have < 9) {
      st.error = fmt::format("client {}: the server closed the connection", id);
      break;
    }
    char want[16];
    std::snprintf(want, sizeof want, "%08x\n", fnv1a(req, static_cast<size_t>(len)));
    if (have != 9 || std::memcmp(resp, want, 9) != 0) st.bad.fetch_add(1, std::memory_order_relaxed);
    st.done.fetch_add(1, std::memory_order_relaxed);
  }
  close(fd);
}

}  // namespace

json fig_throughput(const Config& c) {
  Child srv({c.server});
  std::string ready = srv.read_line();
  int srv_pid = 0, port = 0;
  if (std::sscanf(ready.c_str(), "ready %d %d", &srv_pid, &port) != 2) die("tcp_server: '{}'", ready);
  const std::string pid = std::to_string(srv.pid());
  run_ok({c.hotsplice, "upload", pid, "fix", c.payload("server_fix")});

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<ClientStats>> st;
  std::vector<std::thread> clients;
  for (int i = 0; i < c.tput_conns; i++) {
    st.push_back(std::make_unique<ClientStats>());
    clients.emplace_back(client, port, i, std::cref(stop), std::ref(*st.back()));
  }
  auto total = [&] {
    unsigned long long n = 0;
    for (auto& s : st) n += s->done.load(std::memory_order_relaxed);
    return n;
  };
  auto stop_clients = [&] {
    stop = true;
    for (auto& th : clients) th.join();
    clients.clear();
  };

  std::vector<double> base_rps, patch_rps, op_ms, op_window_us;
  json timeline = json::array();
  try {
    progress("throughput: {} connections, warm-up 1 s", c.tput_conns);
    sleep_ns(1000000000LL);
    const int phases = 2 * c.tput_pairs;
    progress("throughput: {} phases of {} s (baseline / apply+revert every second)", phases, c.tput_phase_s);
    long long t = now_ns();
    double clock_s = 0;
    for (int ph = 0; ph < phases; ph++) {
      // B X X B B X X B ...: position in each group of four.
      const bool patching = (ph % 4 == 1) || (ph % 4 == 2);
      for (int s = 0; s < c.tput_phase_s; s++) {
        const long long t_start = now_ns();
        const unsigned long long c0 = total();
        const long long tick = t + 1000000000LL;
        if (patching) {
          for (const char* op : {"apply", "revert"}) {
            if (std::strcmp(op, "revert") == 0) sleep_until_ns(t + 500000000LL);
            CmdResult r = run_ok({c.hotsplice, op, pid, "fix"}, {"HOTSPLICE_TIMING=1"});
            op_ms.push_back(r.ms);
            if (auto it = r.timing.find(op); it != r.timing.end())
              op_window_us.push_back((kv_get(it->second, "t1") - kv_get(it->second, "t0")) / 1e3);
          }
        }
        sleep_until_ns(tick);
        const unsigned long long c1 = total();
        const double rps = static_cast<double>(c1 - c0) / (static_cast<double>(now_ns() - t_start) / 1e9);
        (patching ? patch_rps : base_rps).push_back(rps);
        timeline.push_back(json{{"t", clock_s}, {"patching", patching}, {"rps", round_to(rps, 0)}});
        clock_s += 1;
        t = tick;
      }
    }
  } catch (...) {
    stop_clients();
    throw;
  }
  stop_clients();

  unsigned long long bad = 0, done = total();
  for (auto& s : st) {
    if (!s->error.empty()) die("throughput: {}", s->error);
    bad += s->bad.load();
  }
  if (bad) die("throughput: {} of {} answers were wrong", bad, done);
  auto kv = parse_kv(srv.ask_expect("stats", "requests="));
  double patched = kv_get(kv, "patched");
  if (patched <= 0) die("throughput: the payload never served a request (patched=0)");
  run_ok({c.hotsplice, "unload", pid, "fix"});
  srv.stop();

  Stats b = stats(base_rps), p = stats(patch_rps);
  return json{{"connections", c.tput_conns},
              {"phase_s", c.tput_phase_s},
              {"requests", done},
              {"wrong_answers", bad},
              {"served_by_payload", patched},
              {"baseline_rps", to_json(b, 0)},
              {"patching_rps", to_json(p, 0)},
              {"dip_pct", round_to((b.median - p.median) / b.median * 100, 2)},
              {"dip_mean_pct", round_to((b.mean - p.mean) / b.mean * 100, 2)},
              {"ops", op_ms.size()},
              {"op_wall_ms", to_json(stats(op_ms), 3)},
              {"op_window_us", to_json(stats(op_window_us), 1)},
              {"timeline", timeline}};
}

}  // namespace hsb
