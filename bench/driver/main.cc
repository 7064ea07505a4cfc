// hsbench: runs the benchmarks of bench/README.md and writes
// results.json, results.md and the data files for bench/plots.gp.
// bench/run.sh is the way to run it (it builds everything first).
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "figures.h"

using namespace hsb;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string loadavg() {
  std::string s = read_text_file("/proc/loadavg");
  std::istringstream in(s);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string cpu_model() {
  std::istringstream in(read_text_file("/proc/cpuinfo"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return trim(line.substr(line.find(':') + 2));
  return "unknown";
}

std::string git_rev(const std::string& src) {
  CmdResult r = run_cmd({"/usr/bin/git", "-C", src, "rev-parse", "--short", "HEAD"}, {}, true);
  if (r.status != 0) return "unknown";
  std::string rev = trim(r.out);
  CmdResult d = run_cmd({"/usr/bin/git", "-C", src, "status", "--porcelain", "--untracked-files=no"}, {}, true);
  if (d.status == 0 && !trim(d.out).empty()) rev += " + local changes";
  return rev;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  std::string out_dir = "bench/results", src_dir = ".";
  std::vector<std::string> only;
  bool report_only = false;
  CLI::App app{"hsbench: hotsplice benchmarks (use bench/run.sh)"};
  app.add_option("--runs", c.runs, "samples per figure cell (default 20)");
  app.add_flag("--quick", c.quick, "fewer runs and shorter phases (under a minute)");
  app.add_option("--only", only, "figures to run: stop wall upload call throughput (default all)")->delimiter(',');
  app.add_option("--out", out_dir, "where results.json and results.md go");
  app.add_option("--plot-data", c.plot_dir, "where the gnuplot data files go (default: --out)");
  app.add_option("--threads", c.threads, "blocked-thread counts for the stop window")->delimiter(',');
  app.add_option("--funcs", c.funcs, "payload sizes for the stop window (of 1,10,100,1000)")->delimiter(',');
  app.add_option("--source", src_dir, "the source tree (for the git revision)");
  app.add_option("--tput-pairs", c.tput_pairs, "throughput: baseline/patching phase pairs (default 6)");
  app.add_option("--tput-phase", c.tput_phase_s, "throughput: seconds per phase (default 4)");
  app.add_flag("--report-only", report_only, "measure nothing: rewrite results.md and the plot data from results.json");
  CLI11_PARSE(app, argc, argv);

  bool runs_given = app.count("--runs") > 0;
  if (c.quick) {
    if (!runs_given) c.runs = 5;
    if (!app.count("--tput-pairs")) c.tput_pairs = 1;
    if (!app.count("--tput-phase")) c.tput_phase_s = 3;
  }
  if (c.runs < 1) c.runs = 1;
  if (c.plot_dir.empty()) c.plot_dir = out_dir;
  std::set<std::string> figs(only.begin(), only.end());
  if (figs.empty()) figs = {"stop", "wall", "upload", "call", "throughput"};

  // With --only, keep the other figures of an earlier results.json.
  json results = json::object();
  const std::string json_path = out_dir + "/results.json";
  if (report_only) {
    results = json::parse(read_text_file(json_path), nullptr, false);
    if (results.is_discarded() || !results.contains("meta")) {
      fmt::print(stderr, "hsbench: error: no results in {}\n", json_path);
      return 1;
    }
    results["goals"] = evaluate_goals(results);
    std::ofstream(json_path) << results.dump(1) << "\n";
    std::ofstream(out_dir + "/results.md") << render_markdown(results);
    write_plot_data(results, c.plot_dir);
    return 0;
  }
  if (!only.empty()) {
    std::string old = read_text_file(json_path);
    if (!old.empty()) results = json::parse(old, nullptr, false);
    if (results.is_discarded()) results = json::object();
  }

  utsname u{};
  uname(&u);
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  json meta{{"date", date},
            {"kernel", fmt::format("Linux {}", u.release)},
            {"cpus", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))},
            {"cpu_model", cpu_model()},
            {"loadavg_before", loadavg()},
            {"runs", c.runs},
            {"quick", c.quick},
            {"git", git_rev(src_dir)}};
  long long t0 = now_ns();
  try {
    if (figs.count("stop")) results["stop_window"] = fig_stop_window(c);
    if (figs.count("wall")) results["wall"] = fig_wall(c);
    if (figs.count("upload")) results["upload"] = fig_upload(c);
    if (figs.count("call")) results["call"] = fig_call(c);
    if (figs.count("throughput")) results["throughput"] = fig_throughput(c);
  } catch (const BenchError& e) {
    fmt::print(stderr, "hsbench: error: {}\n", e.what());
    return 1;
  }
  meta["loadavg_after"] = loadavg();
  meta["seconds"] = round_to(static_cast<double>(now_ns() - t0) / 1e9, 1);
  meta["figures_run"] = std::vector<std::string>(figs.begin(), figs.end());
  results["meta"] = meta;
  results["goals"] = evaluate_goals(results);

  try {
    std::ofstream(json_path) << results.dump(1) << "\n";
    std::ofstream(out_dir + "/results.md") << render_markdown(results);
    write_plot_data(results, c.plot_dir);
  } catch (const BenchError& e) {
    fmt::print(stderr, "hsbench: error: {}\n", e.what());
    return 1;
  }
  progress("done in {} s: {}/results.json, {}/results.md", meta["seconds"].get<double>(), out_dir, out_dir);
  return 0;
}
