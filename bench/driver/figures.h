// The five figures of bench/README.md. Each returns its part of results.json.
#pragma once

#include <string>
#include <vector>

#include "util.h"

namespace hsb {

struct Config {
  int runs = 20;                            // samples per figure cell
  bool quick = false;
  std::vector<int> threads{1, 8, 64, 256};  // blocked threads (figure 1)
  std::vector<int> funcs{1, 10, 100, 1000}; // payload sizes (figure 1)
  int tput_pairs = 6;                       // figure 5: baseline/patching phase pairs
  int tput_phase_s = 4;                     // seconds per phase
  int tput_conns = 4;                       // client connections
  std::string plot_dir;                     // where gnuplot data files go
  bool verbose = false;

  // Paths (compiled in by bench/CMakeLists.txt).
  std::string hotsplice = HSB_HOTSPLICE;
  std::string spin_target = HSB_SPIN_TARGET;
  std::string callcost = HSB_CALLCOST;
  std::string server = HSB_SERVER;
  std::string gen = HSB_GEN_DIR;
  std::string payload(const std::string& name) const { return gen + "/" + name + ".lp"; }
};

// Progress line on stderr ("[hsbench] ...").
template <class... Args>
void progress(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "[hsbench] {}\n", fmt::format(f, std::forward<Args>(args)...));
}

json fig_stop_window(const Config& c);
json fig_wall(const Config& c);
json fig_upload(const Config& c);
json fig_call(const Config& c);
json fig_throughput(const Config& c);

// results.md from results.json; the goals table is computed here.
std::string render_markdown(const json& results);
json evaluate_goals(const json& results);
// gnuplot data files (*.dat) for bench/plots.gp.
void write_plot_data(const json& results, const std::string& dir);

}  // namespace hsb
