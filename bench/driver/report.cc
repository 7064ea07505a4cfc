// results.md, the goals, and the data files for bench/plots.gp.
#include <fstream>

#include "figures.h"

namespace hsb {

namespace {

std::string num(double v, int decimals = 1) { return fmt::format("{:.{}f}", v, decimals); }

// "median [min–max]"
std::string mmm(const json& s, int decimals = 1, double scale = 1) {
  return fmt::format("{} [{}–{}]", num(s["median"].get<double>() * scale, decimals),
                     num(s["min"].get<double>() * scale, decimals), num(s["max"].get<double>() * scale, decimals));
}

const json* find_stop(const json& r, int k, int n, const std::string& op) {
  if (!r.contains("stop_window")) return nullptr;
  for (const auto& row : r["stop_window"])
    if (row["threads"] == k && row["funcs"] == n && row["op"] == op) return &row;
  return nullptr;
}

const json* find_cmd(const json& r, const std::string& cmd) {
  if (!r.contains("wall")) return nullptr;
  for (const auto& row : r["wall"]["commands"])
    if (row["cmd"] == cmd) return &row;
  return nullptr;
}

const json* find_upload(const json& r, const std::string& payload) {
  if (!r.contains("upload")) return nullptr;
  for (const auto& row : r["upload"]["rows"])
    if (row["payload"] == payload) return &row;
  return nullptr;
}

json goal(const std::string& what, const std::string& target, const std::string& measured, bool met,
          const std::string& note = "") {
  return json{{"goal", what}, {"target", target}, {"measured", measured}, {"met", met}, {"note", note}};
}

}  // namespace

json evaluate_goals(const json& r) {
  json g = json::array();
  // Stop window goals (net = median during - median baseline).
  for (auto [n, limit_us] : {std::pair{1, 300.0}, std::pair{100, 1000.0}}) {
    std::string measured;
    bool met = true, any = false;
    for (const std::string op : {"apply", "revert", "replace"}) {
      const json* row = find_stop(r, 8, n, op);
      if (!row) continue;
      any = true;
      double seen = (*row)["cover_us"]["median"].get<double>();
      double net = (*row)["net_us"].get<double>();
      double tool = (*row)["tool_window_us"]["median"].get<double>();
      met = met && seen <= limit_us;
      measured += fmt::format("{}{} {} µs (net {}, tool {})", measured.empty() ? "" : "; ", op, num(seen, 0),
                              num(net, 0), num(tool, 0));
    }
    if (any)
      g.push_back(goal(fmt::format("stop window, 8 blocked threads, {}-function payload", n),
                       fmt::format("≤ {} ms", num(limit_us / 1000, 1)), measured, met,
                       "judged on the spinner's gap covering the stop (median); net = median longest gap during "
                       "the command − median longest gap over an equal idle period"));
  }
  {
    const json *w1 = find_stop(r, 1, 1, "apply"), *w8 = find_stop(r, 8, 1, "apply"),
               *w64 = find_stop(r, 64, 1, "apply"), *w256 = find_stop(r, 256, 1, "apply");
    if (w8 && w64 && w256) {
      auto tw = [](const json* j) { return (*j)["tool_window_us"]["median"].get<double>(); };
      double s1 = (tw(w64) - tw(w8)) / 56.0, s2 = (tw(w256) - tw(w64)) / 192.0;
      bool met = s2 <= 1.5 * std::max(s1, 0.5);
      g.push_back(goal("stop window grows no faster than linearly with threads (1-function apply)",
                       "per-thread cost 64→256 ≤ 1.5 × 8→64",
                       fmt::format("{}tool window 8: {} µs, 64: {} µs, 256: {} µs; per thread {} µs (8→64), {} µs "
                                   "(64→256); seen by the spinner at 256: {} µs",
                                   w1 ? fmt::format("1 thread: {} µs, ", num(tw(w1), 0)) : "", num(tw(w8), 0),
                                   num(tw(w64), 0), num(tw(w256), 0), num(s1, 2), num(s2, 2),
                                   num((*w256)["cover_us"]["median"].get<double>(), 0)),
                       met));
    }
  }
  if (const json* a = find_cmd(r, "apply"))
    g.push_back(goal("apply wall time, small payload", "≤ 3 ms", num((*a)["ms"]["median"].get<double>(), 2) + " ms",
                     (*a)["ms"]["median"].get<double>() <= 3.0));
  if (const json* a = find_cmd(r, "load"))
    g.push_back(goal("load wall time (upload + apply), small payload", "≤ 10 ms",
                     num((*a)["ms"]["median"].get<double>(), 2) + " ms", (*a)["ms"]["median"].get<double>() <= 10.0));
  for (const std::string p : {"pa1000", "u1000"})
    if (const json* u = find_upload(r, p))
      g.push_back(goal(fmt::format("upload, 1,000 functions ({} KiB of code)", (*u)["code_bytes"].get<long long>() / 1024),
                       "≤ 50 ms", num((*u)["ms"]["median"].get<double>(), 1) + " ms",
                       (*u)["ms"]["median"].get<double>() <= 50.0));
  if (r.contains("call")) {
    const json& c = r["call"];
    if (c["callgrind"].contains("tiny")) {
      std::string m;
      bool met = true;
      for (const std::string fn : {"tiny", "small"}) {
        double x = c["callgrind"][fn]["extra_ir_per_call"].get<double>();
        met = met && std::abs(x - 1.0) < 0.01;
        m += fmt::format("{}{}: +{}", m.empty() ? "through the entry jump: " : ", ", fn, num(x, 2));
      }
      if (c["callgrind"]["tiny"].contains("redirected_extra_ir_per_call"))
        for (const std::string fn : {"tiny", "small"}) {
          double x = c["callgrind"][fn]["redirected_extra_ir_per_call"].get<double>();
          met = met && x < 1.01;
          m += fmt::format("{}{}: +{}", fn == "tiny" ? "; redirected direct call: " : ", ", fn, num(x, 2));
        }
      g.push_back(goal("patched call: at most one extra instruction (callgrind)", "+1 instruction per call", m, met));
    }
    struct Variant {
      const char* method;
      const char* direct;
      const char* patched;
      const char* pct;
      const char* what;
    };
    for (const Variant v : {Variant{"engine_patched", "direct_ns", "patched_ns", "overhead_pct",
                                    "patched by hotsplice: direct call redirected"},
                            Variant{"engine_patched", "entry_only_direct_ns", "entry_only_ns", "entry_only_overhead_pct",
                                    "patched by hotsplice --entry-only: through the entry jump"},
                            Variant{"self_patched", "direct_ns", "patched_ns", "overhead_pct",
                                    "self-patched entry jump, replacement 1 GiB away"}}) {
      if (!c.contains(v.method) || !c[v.method]["tiny"].contains(v.pct)) continue;
      std::string m;
      bool met = true;
      for (const std::string fn : {"tiny", "small"}) {
        const json& x = c[v.method][fn];
        double pct = x[v.pct].get<double>();
        met = met && pct <= 2.0;
        m += fmt::format("{}{}: {} vs {} ns ({:+.1f} %)", m.empty() ? "" : "; ", fn, num(x[v.patched].get<double>(), 2),
                         num(x[v.direct].get<double>(), 2), pct);
      }
      g.push_back(goal(fmt::format("patched call ns/call within 2 % of direct ({})", v.what), "≤ +2 %", m, met));
    }
  }
  if (r.contains("throughput")) {
    const json& t = r["throughput"];
    double dip = t["dip_pct"].get<double>();
    g.push_back(goal("throughput dip, apply + revert once a second", "≤ 1 %",
                     fmt::format("{} % ({} → {} req/s, medians of 1-s samples)", num(dip, 2),
                                 num(t["baseline_rps"]["median"].get<double>(), 0),
                                 num(t["patching_rps"]["median"].get<double>(), 0)),
                     dip <= 1.0));
  }
  return g;
}

std::string render_markdown(const json& r) {
  std::string md;
  const json& m = r["meta"];
  md += "# hotsplice benchmark results\n\n";
  md += fmt::format("{} · {} · {} CPUs ({}) · load average {} before, {} after · {} runs per figure{} · hotsplice {}\n\n",
                    m["date"].get<std::string>(), m["kernel"].get<std::string>(), m["cpus"].get<int>(),
                    m["cpu_model"].get<std::string>(), m["loadavg_before"].get<std::string>(),
                    m["loadavg_after"].get<std::string>(), m["runs"].get<int>(), m["quick"].get<bool>() ? " (--quick)" : "",
                    m["git"].get<std::string>());
  md += "Medians, with [min–max]. See bench/README.md for the method.\n\n";

  if (r.contains("goals")) {
    md += "## Goals\n\n| goal | target | measured | met |\n|---|---|---|---|\n";
    for (const auto& g : r["goals"])
      md += fmt::format("| {} | {} | {} | {} |\n", g["goal"].get<std::string>(), g["target"].get<std::string>(),
                        g["measured"].get<std::string>(), g["met"].get<bool>() ? "yes" : "**no**");
    md += "\n";
  }

  if (r.contains("stop_window")) {
    md += "## 1. Stop window (µs)\n\n";
    md += "Seen = the spinner's longest gap that overlaps the stop (median): what a running thread of the target "
          "sees. Net = median longest spinner gap during the whole command − median longest gap over an equal idle "
          "period (the issue's definition; noisy when the machine is busy). Tool = the stop measured inside "
          "hotsplice (first PTRACE_INTERRUPT to last resume, HOTSPLICE_TIMING).\n\n";
    std::vector<int> ks, ns;
    for (const auto& row : r["stop_window"]) {
      int k = row["threads"], n = row["funcs"];
      if (std::find(ks.begin(), ks.end(), k) == ks.end()) ks.push_back(k);
      if (std::find(ns.begin(), ns.end(), n) == ns.end()) ns.push_back(n);
    }
    for (const std::string op : {"apply", "revert", "replace"}) {
      md += fmt::format("**{}** — seen / net / tool, µs\n\n| blocked threads |", op);
      for (int n : ns) md += fmt::format(" {} fn |", n);
      md += "\n|---|";
      for (size_t i = 0; i < ns.size(); i++) md += "---|";
      md += "\n";
      for (int k : ks) {
        md += fmt::format("| {} |", k);
        for (int n : ns) {
          const json* row = find_stop(r, k, n, op);
          md += row ? fmt::format(" {} / {} / {} |", num((*row)["cover_us"]["median"].get<double>(), 0),
                                  num((*row)["net_us"].get<double>(), 0),
                                  num((*row)["tool_window_us"]["median"].get<double>(), 0))
                    : " – |";
        }
        md += "\n";
      }
      md += "\n";
    }
    md += "<details><summary>All stop-window figures</summary>\n\n";
    md += "| threads | fns | op | during µs | baseline µs | net µs | seen (gap covering the stop) µs | tool window µs | "
          "in window: stop / check / write / resume µs | wall ms | max tries |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& row : r["stop_window"]) {
      const json& ph = row["phases_median_us"];
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} / {} | {} | {} |\n",
                        row["threads"].get<int>(), row["funcs"].get<int>(), row["op"].get<std::string>(),
                        mmm(row["during_us"], 0), mmm(row["baseline_us"], 0), num(row["net_us"].get<double>(), 0),
                        mmm(row["cover_us"], 0), mmm(row["tool_window_us"], 0), num(ph.value("stop", 0.0), 0),
                        num(ph.value("check", 0.0), 0), num(ph.value("write", 0.0), 0), num(ph.value("resume", 0.0), 0),
                        mmm(row["wall_ms"], 2), row["max_tries"].get<int>());
    }
    md += "\n</details>\n\n";
  }

  if (r.contains("wall")) {
    md += fmt::format("## 2. Wall time of whole commands (ms, {} blocked threads, {})\n\n| command | ms | phases inside the tool (median µs) |\n|---|---|---|\n",
                      r["wall"]["threads"].get<int>(), r["wall"]["payload"].get<std::string>());
    for (const auto& row : r["wall"]["commands"]) {
      std::string ph;
      if (row.contains("phases_median_us"))
        for (const auto& [k, v] : row["phases_median_us"].items())
          ph += fmt::format("{}{} {}", ph.empty() ? "" : ", ", k, num(v.get<double>(), 0));
      md += fmt::format("| {} | {} | {} |\n", row["cmd"].get<std::string>(), mmm(row["ms"], 2), ph);
    }
    md += "\n";
  }

  // Where the wall time of apply and load goes (medians of separate runs,
  // so the parts do not add up exactly).
  if (r.contains("wall")) {
    const json *tru = find_cmd(r, "/bin/true (spawn + exec + exit floor)"), *ver = find_cmd(r, "--version (process start only)");
    for (const std::string cmd : {"apply", "load"}) {
      const json* row = find_cmd(r, cmd);
      if (!row || !tru || !ver || !row->contains("phases_median_us")) continue;
      const json& ph = (*row)["phases_median_us"];
      auto get = [&](const std::string& k) { return ph.value(k, 0.0) / 1000.0; };
      const double wall = (*row)["ms"]["median"].get<double>();
      const double spawn = (*tru)["ms"]["median"].get<double>();
      const double start = (*ver)["ms"]["median"].get<double>() - spawn;
      std::vector<std::pair<std::string, double>> parts{
          {"spawn + exec + exit of any process (/bin/true)", spawn},
          {"hotsplice start-up and exit (--version − /bin/true)", start},
          {"open: seize every thread", get("open.seize")},
          {"open: find + read the registry", get("open.registry")}};
      if (cmd == "load")
        for (const char* k : {"parse", "objects", "link", "registry", "borrow", "map", "write", "protect", "commit"})
          parts.emplace_back(fmt::format("upload: {}", k), get(fmt::format("upload.{}", k)));
      parts.emplace_back("apply: journal commit", get("apply.journal"));
      parts.emplace_back("apply: activeness prepare (libdw modules)", get("apply.prepare"));
      parts.emplace_back("apply: STOP WINDOW: stop every thread (two waves; the first wave's stack check inside)",
                         get("apply.stop"));
      parts.emplace_back("apply: STOP WINDOW: activeness check (second wave)", get("apply.check"));
      parts.emplace_back("apply: STOP WINDOW: write", get("apply.write"));
      parts.emplace_back("apply: STOP WINDOW: resume all", get("apply.resume"));
      parts.emplace_back("close: detach", get("close.detach"));
      double sum = 0;
      for (const auto& [k, v] : parts) sum += v;
      parts.emplace_back("the rest (plan, final commit, CLI, ...)", wall - sum);
      md += fmt::format("**Where `{}` spends its {} ms** (medians of the parts)\n\n| part | ms | share |\n|---|---|---|\n",
                        cmd, num(wall, 2));
      for (const auto& [k, v] : parts)
        md += v >= 0 ? fmt::format("| {} | {} | {} % |\n", k, num(v, 3), num(v / wall * 100, 0))
                     : fmt::format("| {} | – (the parts, measured in separate runs, exceed the total: noise) | |\n", k);
      md += "\n";
    }
  }

  if (r.contains("upload")) {
    md += "## 3. Upload time against payload size\n\n| payload | functions | code | mapped image | file | upload ms | "
          "parse / link / write µs |\n|---|---|---|---|---|---|---|\n";
    for (const auto& row : r["upload"]["rows"]) {
      const json& ph = row["phases_median_us"];
      md += fmt::format("| {} ({}) | {} | {} KiB | {} KiB | {} KiB | {} | {} / {} / {} |\n",
                        row["payload"].get<std::string>(), row["series"].get<std::string>(), row["funcs"].get<int>(),
                        num(row["code_bytes"].get<double>() / 1024, 1), num(row["image_bytes"].get<double>() / 1024, 1),
                        num(row["file_bytes"].get<double>() / 1024, 1), mmm(row["ms"], 2),
                        num(ph.value("upload.parse", 0.0), 0), num(ph.value("upload.link", 0.0), 0),
                        num(ph.value("upload.write", 0.0), 0));
    }
    md += "\n";
  }

  if (r.contains("call")) {
    const json& c = r["call"];
    md += "## 4. Call overhead\n\n| function | callgrind Ir/call direct → entry jump / redirected call | ns/call "
          "direct → patched, self-patched entry jump, replacement adjacent | … replacement 1 GiB away | … patched by "
          "hotsplice (call redirected) | … hotsplice --entry-only |\n"
          "|---|---|---|---|---|---|\n";
    for (const std::string fn : {"tiny", "small"}) {
      std::string cg = "–";
      if (c["callgrind"].contains(fn))
        cg = fmt::format("{} → {} (+{}) / {} (+{})", num(c["callgrind"][fn]["direct_ir_per_call"].get<double>(), 2),
                         num(c["callgrind"][fn]["patched_ir_per_call"].get<double>(), 2),
                         num(c["callgrind"][fn]["extra_ir_per_call"].get<double>(), 2),
                         num(c["callgrind"][fn].value("redirected_ir_per_call", 0.0), 2),
                         num(c["callgrind"][fn].value("redirected_extra_ir_per_call", 0.0), 2));
      auto ns = [&](const char* method, const char* direct, const char* key, const char* pct) -> std::string {
        const json& x = c[method][fn];
        if (!x.contains(key)) return "–";
        return fmt::format("{} → {} ({:+.1f} %)", num(x.value(direct, x["direct_ns"].get<double>()), 3),
                           num(x[key].get<double>(), 3), x[pct].get<double>());
      };
      md += fmt::format("| {} | {} | {} | {} | {} | {} |\n",
                        fn == "tiny" ? "tiny (`x * 3 + 1`)" : "small (16-step FNV-1a)", cg,
                        ns("self_patched", "adjacent_direct_ns", "adjacent_ns", "adjacent_overhead_pct"),
                        ns("self_patched", "direct_ns", "patched_ns", "overhead_pct"),
                        ns("engine_patched", "direct_ns", "patched_ns", "overhead_pct"),
                        ns("engine_patched", "entry_only_direct_ns", "entry_only_ns", "entry_only_overhead_pct"));
    }
    md += "\n";
  }

  if (r.contains("throughput")) {
    const json& t = r["throughput"];
    md += fmt::format(
        "## 5. Throughput under patching\n\n{} connections to bench/targets/tcp_server on 127.0.0.1, 1-second "
        "samples; patching = `apply` at the start of the second and `revert` half a second later.\n\n"
        "| | req/s |\n|---|---|\n| baseline | {} |\n| patching | {} |\n| dip (medians) | {} % |\n| dip (means) | {} % "
        "|\n| apply/revert wall | {} ms |\n| their stop window (tool) | {} µs |\n\n",
        t["connections"].get<int>(), mmm(t["baseline_rps"], 0), mmm(t["patching_rps"], 0),
        num(t["dip_pct"].get<double>(), 2), num(t["dip_mean_pct"].get<double>(), 2), mmm(t["op_wall_ms"], 2),
        mmm(t["op_window_us"], 0));
  }
  return md;
}

void write_plot_data(const json& r, const std::string& dir) {
  auto open = [&](const std::string& name) {
    std::ofstream f(dir + "/" + name);
    if (!f) die("cannot write {}/{}", dir, name);
    return f;
  };
  if (r.contains("stop_window")) {
    // stop_<op>_<funcs>.dat: threads net during_med during_min during_max tool_med tool_min tool_max
    //                        seen_med seen_min seen_max
    std::map<std::string, std::ofstream> files;
    for (const auto& row : r["stop_window"]) {
      std::string name = fmt::format("stop_{}_{}.dat", row["op"].get<std::string>(), row["funcs"].get<int>());
      if (!files.count(name)) files.emplace(name, open(name));
      files[name] << fmt::format("{} {} {} {} {} {} {} {} {} {} {}\n", row["threads"].get<int>(),
                                 row["net_us"].get<double>(), row["during_us"]["median"].get<double>(),
                                 row["during_us"]["min"].get<double>(), row["during_us"]["max"].get<double>(),
                                 row["tool_window_us"]["median"].get<double>(),
                                 row["tool_window_us"]["min"].get<double>(), row["tool_window_us"]["max"].get<double>(),
                                 row["cover_us"]["median"].get<double>(), row["cover_us"]["min"].get<double>(),
                                 row["cover_us"]["max"].get<double>());
    }
  }
  if (r.contains("wall")) {
    auto f = open("wall.dat");
    for (const auto& row : r["wall"]["commands"])
      f << fmt::format("\"{}\" {} {} {}\n", row["cmd"].get<std::string>(), row["ms"]["median"].get<double>(),
                       row["ms"]["min"].get<double>(), row["ms"]["max"].get<double>());
  }
  if (r.contains("upload")) {
    auto small = open("upload_small.dat"), big = open("upload_big.dat");
    for (const auto& row : r["upload"]["rows"])
      (row["series"] == "small functions" ? small : big)
          << fmt::format("{} {} {} {} {}\n", row["code_bytes"].get<long long>(), row["funcs"].get<int>(),
                         row["ms"]["median"].get<double>(), row["ms"]["min"].get<double>(),
                         row["ms"]["max"].get<double>());
  }
  if (r.contains("call")) {
    auto f = open("call.dat");
    const json& c = r["call"];
    for (const std::string fn : {"tiny", "small"})
      // "fn" adjacent% far% hotsplice% hotsplice-entry-only% (overhead over
      // the direct rounds run alongside)
      f << fmt::format("\"{}\" {} {} {} {}\n", fn, c["self_patched"][fn]["adjacent_overhead_pct"].get<double>(),
                       c["self_patched"][fn]["overhead_pct"].get<double>(),
                       c["engine_patched"][fn]["overhead_pct"].get<double>(),
                       c["engine_patched"][fn].value("entry_only_overhead_pct", 0.0));
  }
  if (r.contains("throughput")) {
    auto f = open("throughput.dat");
    for (const auto& s : r["throughput"]["timeline"])
      f << fmt::format("{} {} {}\n", s["t"].get<double>(), s["rps"].get<double>(), s["patching"].get<bool>() ? 1 : 0);
  }
}

}  // namespace hsb
