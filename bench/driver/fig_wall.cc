// Figures 2 and 3: wall time of whole hotsplice commands, and upload time
// against payload size.
#include <sys/stat.h>

#include <thread>

#include "figures.h"

namespace hsb {

namespace {

// The timing lines of one command as "what.key" -> microseconds (the few
// non-time keys are left out).
void add_phases(const CmdResult& r, std::map<std::string, std::vector<double>>& acc) {
  for (const auto& [what, kv] : r.timing)
    for (const auto& [k, v] : kv) {
      if (k == "t0" || k == "t1" || k == "tries" || k == "writes" || k == "threads" || k == "bytes") continue;
      acc[what + "." + k].push_back(v / 1e3);
    }
}

json phases_json(const std::map<std::string, std::vector<double>>& acc) {
  json j = json::object();
  for (const auto& [k, v] : acc) j[k] = round_to(stats(v).median, 1);
  return j;
}

std::string start_spin_target(Child& t, int k) {
  auto ready = t.read_line();
  if (ready.rfind("ready ", 0) != 0) die("spin_target: '{}'", ready);
  wait_sleeping_threads(t.pid(), k + 2);
  return std::to_string(t.pid());
}

}  // namespace

json fig_wall(const Config& c) {
  constexpr int kThreads = 8;
  const std::string lp = c.payload("pa1");
  std::map<std::string, std::vector<double>> ms;
  std::map<std::string, std::map<std::string, std::vector<double>>> phases;

  // The first load into a process also creates the registry there: a fresh
  // target for each run.
  progress("wall time: first load into a fresh process x {} runs", c.runs);
  for (int r = 0; r < c.runs; r++) {
    Child t({c.spin_target, std::to_string(kThreads)});
    std::string pid = start_spin_target(t, kThreads);
    ms["load (first: creates the registry)"].push_back(run_ok({c.hotsplice, "load", pid, lp}).ms);
    t.stop();
  }

  Child t({c.spin_target, std::to_string(kThreads)});
  std::string pid = start_spin_target(t, kThreads);
  // Warm-up: registry created, files in the page cache.
  run_ok({c.hotsplice, "load", pid, lp});
  run_ok({c.hotsplice, "revert", pid, "pa1"});
  run_ok({c.hotsplice, "unload", pid, "pa1"});

  // Twice: plain (the figures), then with HOTSPLICE_TIMING=1 (the phases).
  for (int pass = 0; pass < 2; pass++) {
    const bool timing = pass == 1;
    progress("wall time: {} blocked threads, 1-function payload x {} runs{}", kThreads, c.runs,
             timing ? " (phase timings)" : "");
    std::vector<std::string> env;
    if (timing) env.push_back("HOTSPLICE_TIMING=1");
    auto cmd = [&](const std::string& label, const std::vector<std::string>& args) {
      std::vector<std::string> argv{c.hotsplice};
      argv.insert(argv.end(), args.begin(), args.end());
      CmdResult r = run_ok(argv, env);
      if (timing)
        add_phases(r, phases[label]);
      else
        ms[label].push_back(r.ms);
    };
    for (int r = 0; r < c.runs; r++) {
      if (!timing) ms["/bin/true (spawn + exec + exit floor)"].push_back(run_ok({"/bin/true"}).ms);
      cmd("--version (process start only)", {"--version"});
      cmd("load", {"load", pid, lp});
      cmd("list", {"list", pid});
      cmd("revert", {"revert", pid, "pa1"});
      cmd("apply", {"apply", pid, "pa1"});
      run_ok({c.hotsplice, "revert", pid, "pa1"});
      cmd("unload", {"unload", pid, "pa1"});
      cmd("upload", {"upload", pid, "pa1", lp});
      run_ok({c.hotsplice, "unload", pid, "pa1"});
    }
  }
  t.stop();

  json rows = json::array();
  for (const char* label : {"apply", "revert", "load", "list", "upload", "unload", "load (first: creates the registry)",
                            "--version (process start only)", "/bin/true (spawn + exec + exit floor)"}) {
    json row{{"cmd", label}, {"ms", to_json(stats(ms[label]), 3)}};
    if (phases.count(label)) row["phases_median_us"] = phases_json(phases[label]);
    rows.push_back(row);
  }
  return json{{"threads", kThreads}, {"payload", "pa1 (1 function)"}, {"commands", rows}};
}

json fig_upload(const Config& c) {
  constexpr int kThreads = 8;
  Child t({c.spin_target, std::to_string(kThreads)});
  std::string pid = start_spin_target(t, kThreads);
  // Warm-up: the registry exists before the first measured upload.
  run_ok({c.hotsplice, "upload", pid, "warm", c.payload("pa1")});
  run_ok({c.hotsplice, "unload", pid, "warm"});

  struct Item {
    std::string payload, series;
    int funcs;
  };
  std::vector<Item> items;
  for (int n : {1, 10, 100, 1000}) items.push_back({fmt::format("pa{}", n), "small functions", n});
  for (int n : {1, 3, 10, 30, 100, 300, 1000}) items.push_back({fmt::format("u{}", n), "3 KiB functions", n});

  json rows = json::array();
  for (const auto& it : items) {
    const std::string lp = c.payload(it.payload);
    progress("upload: {} ({} x {}) x {} runs", it.payload, it.funcs, it.series, c.runs);
    // Code and image size from the tool itself.
    auto info = json::parse(run_ok({c.hotsplice, "info", lp, "--json"}, {}, true).out);
    long long code = 0;
    for (const auto& f : info["funcs"]) code += f["new_size"].get<long long>();
    std::vector<double> ms;
    std::map<std::string, std::vector<double>> phases;
    long long image = 0;
    for (int r = 0; r < c.runs; r++) {
      CmdResult res = run_ok({c.hotsplice, "upload", pid, "up", lp}, {"HOTSPLICE_TIMING=1"});
      ms.push_back(res.ms);
      add_phases(res, phases);
      if (auto u = res.timing.find("upload"); u != res.timing.end() && u->second.count("bytes"))
        image = static_cast<long long>(u->second.at("bytes"));
      run_ok({c.hotsplice, "unload", pid, "up"});
    }
    rows.push_back(json{{"payload", it.payload},
                        {"series", it.series},
                        {"funcs", it.funcs},
                        {"code_bytes", code},
                        {"image_bytes", image},
                        {"file_bytes", file_size(lp)},
                        {"ms", to_json(stats(ms), 3)},
                        {"phases_median_us", phases_json(phases)}});
  }
  t.stop();
  return json{{"threads", kThreads}, {"rows", rows}};
}

}  // namespace hsb
