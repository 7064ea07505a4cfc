// `hotsplice build --patch`: the report of the diff-mode builder (build_diff.h).
#include "cli/build_diff.h"

#include <nlohmann/json.hpp>

#include "support/text.h"

namespace hs {

namespace {

using json = nlohmann::json;

std::string shown(std::string_view s) { return escape_for_terminal(s); }
std::string exact(std::string_view s) { return escape_for_json(s); }

size_t compared(const DiffBuildReport& r) {
  size_t n = 0;
  for (const ObjectReport& o : r.objects) n += o.diff.compared;
  return n;
}

std::string outcome_line(const DiffBuildReport& r, const DiffBuildOptions& opts) {
  if (r.refused() > 0)
    return fmt::format("{} change{} cannot be live-patched (refused above); {} not written", r.refused(),
                       r.refused() == 1 ? "" : "s", opts.output);
  if (r.changed() == 0)
    return fmt::format("no changes: the patches change no function ({} functions compared in {} recompiled object{})", compared(r),
                       r.objects.size(), r.objects.size() == 1 ? "" : "s");
  return r.payload_error;
}

json report_json(const DiffBuildReport& r, const std::string& outcome) {
  json j;
  j["patches"] = json::array();
  for (const AppliedPatch& p : r.patches) {
    json pj = {{"file", exact(p.file)}, {"strip", p.strip}, {"strip_detected", p.strip_detected}, {"files", json::array()}};
    for (const auto& f : p.files) pj["files"].push_back(exact(f));
    j["patches"].push_back(pj);
  }
  j["original_compiles"] = r.original_compiles;
  j["recompiled"] = json::array();
  j["functions"] = json::array();
  j["line_only"] = json::array();
  for (const ObjectReport& o : r.objects) {
    j["recompiled"].push_back({{"object", exact(o.object)}, {"source", exact(o.source)}, {"created", o.created}});
    for (const FuncDiff& f : o.diff.funcs) {
      j["functions"].push_back({{"name", exact(f.name)},
                                {"symbol", exact(f.symbol)},
                                {"object", exact(o.object)},
                                {"status", status_name(f.status)},
                                {"kind", f.data ? "data" : "function"},
                                {"reason", exact(f.reason)}});
    }
    for (const auto& s : o.diff.line_only) j["line_only"].push_back(exact(s));
  }
  j["compared"] = compared(r);
  j["changed"] = r.changed();
  j["refused"] = r.refused();
  j["phases"] = json::object();
  for (const PhaseTime& p : r.phases) j["phases"][p.name] = p.seconds;
  if (!r.temp_dir.empty()) j["temp_dir"] = exact(r.temp_dir);
  if (r.payload) {
    j["payload"] = {{"file", exact(r.payload->output)}, {"build_id", to_hex(r.payload->build_id)}, {"funcs", json::array()}};
    for (const BuiltFunc& f : r.payload->funcs)
      j["payload"]["funcs"].push_back({{"name", exact(f.name)}, {"new_size", f.new_size}, {"old_size", f.old_size}});
  }
  j["result"] = exact(outcome);
  return j;
}

void print_report(const DiffBuildReport& r) {
  for (const AppliedPatch& p : r.patches) {
    std::string files;
    for (const auto& f : p.files) files += (files.empty() ? "" : ", ") + shown(f);
    fmt::print("patch {} (-p{}{}): {}\n", shown(p.file), p.strip, p.strip_detected ? ", detected" : "", files);
  }
  std::string recompiled;
  for (const ObjectReport& o : r.objects) recompiled += (recompiled.empty() ? "" : ", ") + shown(o.object);
  fmt::print("original build: {} object{} compiled; patched build: {} recompiled{}{}\n", r.original_compiles,
             r.original_compiles == 1 ? "" : "s", r.objects.size(), r.objects.empty() ? "" : ": ", recompiled);
  for (const ObjectReport& o : r.objects) {
    for (const FuncDiff& f : o.diff.funcs) {
      fmt::print("{:<8} {}{}{} ({}){}{}\n", status_name(f.status), f.data ? "data " : "", shown(f.name),
                 f.symbol == f.name ? "" : " [" + shown(f.symbol) + "]", shown(o.object), f.reason.empty() ? "" : ": ",
                 shown(f.reason));
    }
    if (!o.diff.line_only.empty()) {
      std::string names;
      for (const auto& s : o.diff.line_only) names += (names.empty() ? "" : ", ") + shown(s);
      fmt::print("unchanged but for moved __LINE__ values ({}): {}\n", shown(o.object), names);
    }
  }
  std::string phases;
  for (const PhaseTime& p : r.phases) phases += fmt::format("{}{} {:.3f} s", phases.empty() ? "" : ", ", p.name, p.seconds);
  fmt::print("phases: {}\n", phases);
  if (!r.temp_dir.empty()) fmt::print("kept {}\n", shown(r.temp_dir));
}

}  // namespace

int run_diff_build(const DiffBuildOptions& opts, bool as_json) {
  auto r = diff_build(opts);
  if (!r) {
    fmt::print(stderr, "hotsplice: error: {}\n", shown(r.error().message()));
    return r.error().exit_code();
  }
  const std::string outcome = outcome_line(*r, opts);
  if (as_json)
    fmt::print("{}\n", report_json(*r, outcome).dump(2, ' ', false, json::error_handler_t::replace));
  else
    print_report(*r);
  if (outcome.empty() && r->payload) {
    if (!as_json)
      fmt::print("wrote {}: {} function{}, build-id {}\n", shown(r->payload->output), r->payload->funcs.size(),
                 r->payload->funcs.size() == 1 ? "" : "s", to_hex(r->payload->build_id));
    return 0;
  }
  std::fflush(stdout);
  fmt::print(stderr, "hotsplice: error: {}\n", shown(outcome));
  return 1;
}

}  // namespace hs
