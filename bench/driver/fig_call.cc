// Figure 4: the cost of calling a patched function against calling its
// replacement directly.
//
// Instructions (callgrind): hs_callcost runs a loop of N direct calls, either
// to new_FN ("direct") or to old_FN after writing at old_FN's entry exactly
// the jump the engine writes ("patched"; same arch code: patch_offset +
// make_jump), or after that and pointing the loop's call at new_FN as the
// engine does with the direct calls it finds ("redirected"). ptrace and valgrind do not mix, so the program patches itself;
// the bytes are the ones hotsplice would write, and the count of executed
// instructions does not depend on who wrote them. Only the loop function is
// counted (--toggle-collect), so Ir / N is the instructions per call,
// including the loop's own increment and compare.
//
// Time: best of several rounds of N calls, interleaved, (a) in the
// self-patched program, jumping to new_FN (which the compiler placed right
// after old_FN: the best case) and to a copy of new_FN in a mapping 1 GiB
// away (like a payload's), and (b) in hs_callcost serve patched by the real
// `hotsplice load` (the replacement then lives in the payload's mapping),
// once as it comes (the loop's call redirected) and once applied with
// --entry-only (the loop's call goes through the entry jump, as calls
// through pointers and from other objects always do).
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "figures.h"

namespace hsb {

namespace {

double callgrind_ir(const Config& c, const std::string& mode, const std::string& fn, long n) {
  std::string out = fmt::format("{}/callgrind.{}.{}.{}.out", c.plot_dir, mode, fn, getpid());
  std::string loop = fmt::format("loop_{}_{}", mode == "direct" ? "new" : "old", fn);
  run_ok({"/usr/bin/valgrind", "--tool=callgrind", "--smc-check=all", "--callgrind-out-file=" + out,
          "--toggle-collect=" + loop, c.callcost, "selfpatch", mode, fn, std::to_string(n)});
  std::ifstream in(out);
  std::string line;
  double ir = -1;
  while (std::getline(in, line)) {
    if (line.rfind("totals:", 0) == 0 || line.rfind("summary:", 0) == 0) ir = std::stod(line.substr(line.find(':') + 1));
  }
  std::remove(out.c_str());
  if (ir < 0) die("no instruction count in callgrind's output for {} {}", mode, fn);
  return ir;
}

}  // namespace

json fig_call(const Config& c) {
  json out;
  const long n_cg = 1000000;

  // 1. callgrind
  json cg = json::object();
  if (access("/usr/bin/valgrind", X_OK) == 0) {
    for (const std::string fn : {"tiny", "small"}) {
      progress("call overhead: callgrind, {} function, {} calls", fn, n_cg);
      double direct = callgrind_ir(c, "direct", fn, n_cg);
      double patched = callgrind_ir(c, "patched", fn, n_cg);
      double redirected = callgrind_ir(c, "redirected", fn, n_cg);
      double unpatched = callgrind_ir(c, "unpatched", fn, n_cg);
      cg[fn] = json{{"calls", n_cg},
                    {"direct_ir_per_call", round_to(direct / n_cg, 4)},
                    {"patched_ir_per_call", round_to(patched / n_cg, 4)},
                    {"redirected_ir_per_call", round_to(redirected / n_cg, 4)},
                    {"unpatched_ir_per_call", round_to(unpatched / n_cg, 4)},
                    {"extra_ir_per_call", round_to((patched - direct) / n_cg, 4)},
                    {"redirected_extra_ir_per_call", round_to((redirected - direct) / n_cg, 4)}};
    }
  } else {
    cg["skipped"] = "valgrind not installed";
  }
  out["callgrind"] = cg;

  // 2. ns/call, self-patched (same process, same binary)
  const int rounds = std::max(5, c.runs);
  json self = json::object();
  for (const std::string fn : {"tiny", "small"}) {
    long n = fn == "tiny" ? 20000000 : 2000000;
    progress("call overhead: ns/call self-patched, {} function, best of {} rounds of {}", fn, rounds, n);
    auto kv = parse_kv(run_ok({c.callcost, "time", fn, std::to_string(n), std::to_string(rounds)}, {}, true).out);
    // Each variant against the direct rounds run alongside it.
    double da = kv_get(kv, "direct_a"), db = kv_get(kv, "direct_b"), dc = kv_get(kv, "direct_c");
    double p = kv_get(kv, "patched"), u = kv_get(kv, "unpatched"), f = kv_get(kv, "far");
    self[fn] = json{{"calls_per_round", n},
                    {"rounds", rounds},
                    {"direct_ns", round_to(dc, 3)},
                    {"adjacent_direct_ns", round_to(db, 3)},
                    {"unpatched_direct_ns", round_to(da, 3)},
                    {"adjacent_ns", round_to(p, 3)},
                    {"patched_ns", round_to(f, 3)},
                    {"unpatched_ns", round_to(u, 3)},
                    {"adjacent_overhead_pct", round_to((p - db) / db * 100, 2)},
                    {"overhead_pct", round_to((f - dc) / dc * 100, 2)}};
  }
  out["self_patched"] = self;

  // 3. ns/call, patched by hotsplice (replacement in the payload's mapping)
  {
    Child t({c.callcost, "serve"});
    auto ready = t.read_line();
    if (ready.rfind("ready ", 0) != 0) die("hs_callcost: '{}'", ready);
    const std::string pid = std::to_string(t.pid());
    json eng = json::object();
    std::map<std::string, std::map<std::string, std::vector<double>>> ns;  // fn -> series -> rounds
    auto round = [&](const std::string& fn, const std::string& which, const std::string& label) {
      long n = fn == "tiny" ? 20000000 : 2000000;
      auto kv = parse_kv(t.ask_expect(fmt::format("run {} {} {}", which, fn, n), "ns="));
      ns[fn][label].push_back(kv_get(kv, "ns"));
    };
    progress("call overhead: ns/call patched by hotsplice, best of {} rounds", rounds);
    for (int r = 0; r < rounds; r++)
      for (const std::string fn : {"tiny", "small"}) {
        round(fn, "old", "unpatched");
        round(fn, "new", "direct (unpatched phase)");
      }
    auto all_applied = [&] {
      auto list = json::parse(run_ok({c.hotsplice, "list", pid, "--json"}, {}, true).out);
      for (const auto& f : list["payloads"][0]["funcs"])
        if (!f["applied"].get<bool>()) die("callcost_fix: function {} is not applied", f["name"].dump());
    };
    run_ok({c.hotsplice, "load", pid, c.payload("callcost_fix"), "--name", "fix"});
    all_applied();
    for (int r = 0; r < rounds; r++)
      for (const std::string fn : {"tiny", "small"}) {
        round(fn, "old", "patched");
        round(fn, "new", "direct (patched phase)");
      }
    run_ok({c.hotsplice, "revert", pid, "fix"});
    run_ok({c.hotsplice, "apply", pid, "fix", "--entry-only"});
    all_applied();
    for (int r = 0; r < rounds; r++)
      for (const std::string fn : {"tiny", "small"}) {
        round(fn, "old", "entry jump");
        round(fn, "new", "direct (entry jump phase)");
      }
    for (const std::string fn : {"tiny", "small"}) {
      auto best = [&](const char* label) { return stats(ns[fn][label]).min; };
      auto med = [&](const char* label) { return stats(ns[fn][label]).median; };
      // Each patched variant against the direct rounds alternated with it.
      double d = best("direct (patched phase)"), p = best("patched");
      double de = best("direct (entry jump phase)"), e = best("entry jump");
      eng[fn] = json{{"rounds", rounds},
                     {"direct_ns", round_to(d, 3)},
                     {"patched_ns", round_to(p, 3)},
                     {"unpatched_ns", round_to(best("unpatched"), 3)},
                     {"unpatched_direct_ns", round_to(best("direct (unpatched phase)"), 3)},
                     {"direct_median_ns", round_to(med("direct (patched phase)"), 3)},
                     {"patched_median_ns", round_to(med("patched"), 3)},
                     {"overhead_pct", round_to((p - d) / d * 100, 2)},
                     {"entry_only_direct_ns", round_to(de, 3)},
                     {"entry_only_ns", round_to(e, 3)},
                     {"entry_only_overhead_pct", round_to((e - de) / de * 100, 2)}};
    }
    out["engine_patched"] = eng;
    t.stop();
  }
  return out;
}

}  // namespace hsb
