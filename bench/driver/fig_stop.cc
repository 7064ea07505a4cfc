// Figure 1: the stop window a running thread sees during apply, revert and
// replace, against the number of blocked threads and the payload size.
//
// spin_target K runs K threads blocked in read(), one spinner and the main
// thread (blocked reading commands). For each payload size n, payloads pa<n>
// and pb<n> are uploaded, then each run measures, in this order:
//   apply a      (stack empty -> a)
//   replace b    (reverts a and applies b in one stop)
//   revert b     (-> empty)
// Each measurement: arm the spinner, run the command, read the spinner's
// longest gap ("during"); then arm it again for as long as the command took,
// with nothing else happening, and read its longest gap ("baseline").
// The target's function sums are checked after every operation, so a
// measured operation is known to have really (un)patched n functions.
#include <thread>

#include "figures.h"

namespace hsb {

namespace {

struct Gap {
  double max_us = 0, cover_us = 0;
};

Gap read_gap(Child& t, long long t0, long long t1) {
  auto kv = parse_kv(t.ask_expect(fmt::format("gap {} {}", t0, t1), "max="));
  return Gap{kv_get(kv, "max") / 1e3, kv_get(kv, "cover") / 1e3};
}

struct Series {
  std::vector<double> wall_ms, during_us, baseline_us, cover_us, net_us;
  std::vector<double> window_us, stop_us, check_us, write_us, resume_us, prepare_us, journal_us, seize_us,
      registry_us, detach_us;
  int max_tries = 0;
};

long long expect_sum(long long base, int n, int state) {  // 0 none, 1 a, 2 b
  return base + static_cast<long long>(n) * (state == 1 ? 1000000LL : state == 2 ? 2000000LL : 0LL);
}

void check_sum(Child& t, long long want, const char* after) {
  auto kv = parse_kv(t.ask_expect("call", "sum="));
  auto got = static_cast<long long>(kv_get(kv, "sum"));
  if (got != want) die("after {}: the target's functions sum to {}, expected {}", after, got, want);
}

void measure(const Config& c, Child& t, const std::vector<std::string>& args, Series& s) {
  t.ask_expect("arm", "armed");
  std::vector<std::string> argv{c.hotsplice};
  argv.insert(argv.end(), args.begin(), args.end());
  CmdResult r = run_ok(argv, {"HOTSPLICE_TIMING=1"});
  const std::string op = args.at(0);
  auto it = r.timing.find(op);
  if (it == r.timing.end()) die("`{}` printed no timing line (is HOTSPLICE_TIMING supported?)", join(argv));
  const auto& tm = it->second;
  long long t0 = static_cast<long long>(kv_get(tm, "t0")), t1 = static_cast<long long>(kv_get(tm, "t1"));
  Gap during = read_gap(t, t0, t1);

  t.ask_expect("arm", "armed");
  sleep_ns(static_cast<long long>(r.ms * 1e6));
  Gap base = read_gap(t, 0, 0);

  s.wall_ms.push_back(r.ms);
  s.during_us.push_back(during.max_us);
  s.cover_us.push_back(during.cover_us);
  s.baseline_us.push_back(base.max_us);
  s.net_us.push_back(during.max_us - base.max_us);
  s.window_us.push_back(static_cast<double>(t1 - t0) / 1e3);
  s.stop_us.push_back(kv_get(tm, "stop") / 1e3);
  s.check_us.push_back(kv_get(tm, "check") / 1e3);
  s.write_us.push_back(kv_get(tm, "write") / 1e3);
  s.resume_us.push_back(kv_get(tm, "resume") / 1e3);
  s.prepare_us.push_back(kv_get(tm, "prepare") / 1e3);
  s.journal_us.push_back(kv_get(tm, "journal") / 1e3);
  s.max_tries = std::max(s.max_tries, static_cast<int>(kv_get(tm, "tries")));
  if (auto o = r.timing.find("open"); o != r.timing.end()) {
    s.seize_us.push_back(kv_get(o->second, "seize") / 1e3);
    s.registry_us.push_back(kv_get(o->second, "registry") / 1e3);
  }
  if (auto o = r.timing.find("close"); o != r.timing.end()) s.detach_us.push_back(kv_get(o->second, "detach") / 1e3);
}

json series_json(int k, int n, const std::string& op, const Series& s) {
  Stats during = stats(s.during_us), base = stats(s.baseline_us);
  json j{{"threads", k},
         {"funcs", n},
         {"op", op},
         {"during_us", to_json(during, 1)},
         {"baseline_us", to_json(base, 1)},
         {"net_us", round_to(during.median - base.median, 1)},
         {"net_pairwise_us", to_json(stats(s.net_us), 1)},
         {"cover_us", to_json(stats(s.cover_us), 1)},
         {"tool_window_us", to_json(stats(s.window_us), 1)},
         {"wall_ms", to_json(stats(s.wall_ms), 3)},
         {"max_tries", s.max_tries}};
  json ph;
  auto put = [&](const char* name, const std::vector<double>& v) {
    if (!v.empty()) ph[name] = round_to(stats(v).median, 1);
  };
  put("seize", s.seize_us);
  put("registry", s.registry_us);
  put("journal", s.journal_us);
  put("prepare", s.prepare_us);
  put("stop", s.stop_us);
  put("check", s.check_us);
  put("write", s.write_us);
  put("resume", s.resume_us);
  put("detach", s.detach_us);
  j["phases_median_us"] = ph;
  return j;
}

}  // namespace

json fig_stop_window(const Config& c) {
  json out = json::array();
  for (int k : c.threads) {
    Child t({c.spin_target, std::to_string(k)});
    auto ready = t.read_line();
    if (ready.rfind("ready ", 0) != 0) die("spin_target: '{}'", ready);
    // K blocked readers + the main thread reading stdin + the idle spinner.
    wait_sleeping_threads(t.pid(), k + 2);
    const std::string pid = std::to_string(t.pid());
    long long base_sum = static_cast<long long>(kv_get(parse_kv(t.ask_expect("call", "sum=")), "sum"));

    for (int n : c.funcs) {
      progress("stop window: {} blocked threads, {} function{} x {} runs", k, n, n == 1 ? "" : "s", c.runs);
      const std::string a = fmt::format("a{}", n), b = fmt::format("b{}", n);
      run_ok({c.hotsplice, "upload", pid, a, c.payload(fmt::format("pa{}", n))});
      run_ok({c.hotsplice, "upload", pid, b, c.payload(fmt::format("pb{}", n))});
      Series apply, replace, revert;
      for (int r = 0; r < c.runs; r++) {
        measure(c, t, {"apply", pid, a}, apply);
        check_sum(t, expect_sum(base_sum, n, 1), "apply");
        measure(c, t, {"replace", pid, b}, replace);
        check_sum(t, expect_sum(base_sum, n, 2), "replace");
        measure(c, t, {"revert", pid, b}, revert);
        check_sum(t, expect_sum(base_sum, n, 0), "revert");
      }
      run_ok({c.hotsplice, "unload", pid, a});
      run_ok({c.hotsplice, "unload", pid, b});
      out.push_back(series_json(k, n, "apply", apply));
      out.push_back(series_json(k, n, "replace", replace));
      out.push_back(series_json(k, n, "revert", revert));
      const auto& last = out[out.size() - 3];
      progress("  apply: during {} us (baseline {} us), tool window {} us, wall {} ms",
               last["during_us"]["median"].get<double>(), last["baseline_us"]["median"].get<double>(),
               last["tool_window_us"]["median"].get<double>(), last["wall_ms"]["median"].get<double>());
    }
    t.stop();
  }
  return out;
}

}  // namespace hsb
