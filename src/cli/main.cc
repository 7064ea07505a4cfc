// hotsplice: the command line. Thin on purpose: it parses arguments, calls
// the engine or the builder, and prints. Verbs and argument order follow
// Xen's xen-livepatch; exit codes are 0 ok, 1 error, 2 retry-able (busy,
// activeness timeout), 64 bad usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "builder/builder.h"
#include "builder/wrapper.h"
#include "cli/build_diff.h"
#include "cli/guardian.h"
#include "engine/recover.h"
#include "elf/source_names.h"
#include "engine/session.h"
#include "payload/payload.h"
#include "support/text.h"

using namespace hs;
using json = nlohmann::json;

namespace {

// Everything printed that came from a payload file or a target's registry
// goes through one of these (support/text.h): shown(s) for the terminal,
// exact(s) for JSON.
std::string shown(std::string_view s) { return escape_for_terminal(s); }
std::string exact(std::string_view s) { return escape_for_json(s); }

// `pid`: the process the command is about (0: none). Its state being
// corrupt, the line says how to rebuild it (unless that is what failed).
bool recovering = false;
[[noreturn]] void die(const Error& e, pid_t pid = 0) {
  if (e.kind() == ErrorKind::Corrupt && pid > 0 && !recovering)
    fmt::print(stderr, "hotsplice: error: {}; 'hotsplice recover {}' rebuilds the state from the process's code\n",
               shown(e.message()), pid);
  else
    fmt::print(stderr, "hotsplice: error: {}\n", shown(e.message()));
  std::exit(e.exit_code());
}

template <class T>
T check(Result<T> r) {
  if (!r) die(r.error());
  return std::move(*r);
}

// A target that dies under an operation makes whichever step was running
// fail (a memory access, a remote system call, the unwinder), each in its own
// words; say once what happened instead.
void check_op(pid_t pid, Status s) {
  if (!s && s.error().kind() != ErrorKind::Usage && !Process::any_thread_running(pid))
    die(Error(ErrorKind::TargetGone, fmt::format("process {} exited during the operation", pid)));
  if (!s) die(s.error(), pid);
}

// A result about process `pid`.
template <class T>
T check_on(pid_t pid, Result<T> r) {
  if (!r) die(r.error(), pid);
  return std::move(*r);
}

Result<std::chrono::milliseconds> parse_duration(const std::string& s) {
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    std::string unit = s.substr(used);
    if (v < 0) throw std::invalid_argument("negative");
    if (unit == "ms") return std::chrono::milliseconds(static_cast<long>(v));
    if (unit == "s" || unit.empty()) return std::chrono::milliseconds(static_cast<long>(v * 1000));
  } catch (const std::exception&) {
  }
  return fail(ErrorKind::Usage, "invalid --timeout '{}': use e.g. 1s, 1.5, 500ms", s);
}

std::string payload_name_from_file(const std::string& file) {
  std::string base = file.substr(file.rfind('/') + 1);
  auto dot = base.find('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// ---- info -----------------------------------------------------------------

json payload_json(const Payload& p) {
  json j;
  j["file"] = exact(p.file);
  j["build_id"] = to_hex(p.build_id);
  j["depends"] = to_hex(p.depends);
  j["object_depends"] = to_hex(p.object_depends);
  j["funcs"] = json::array();
  for (const auto& f : p.funcs) {
    json fj;
    fj["name"] = exact(f.name);
    fj["new"] = f.new_ref ? json(exact(f.new_ref->display)) : json(nullptr);
    fj["new_size"] = f.new_size;
    fj["old_size"] = f.old_size;
    if (!f.expect.empty()) fj["expect"] = to_hex(f.expect);
    j["funcs"].push_back(fj);
  }
  json hooks = json::object();
  auto hook = [&](const char* n, const std::optional<SymRef>& r) {
    if (r) hooks[n] = exact(r->display);
  };
  if (!p.load_hooks.empty())
    for (const auto& h : p.load_hooks) hooks["load"].push_back(exact(h.display));
  if (!p.unload_hooks.empty())
    for (const auto& h : p.unload_hooks) hooks["unload"].push_back(exact(h.display));
  hook("preapply", p.preapply);
  hook("apply", p.apply);
  hook("postapply", p.postapply);
  hook("prerevert", p.prerevert);
  hook("revert", p.revert);
  hook("postrevert", p.postrevert);
  j["hooks"] = hooks;
  j["modinfo"] = json::object();
  for (const auto& [k, v] : p.modinfo) j["modinfo"][exact(k)] = exact(v);
  return j;
}

void print_info(const Payload& p) {
  fmt::print("payload {}\n", shown(p.file));
  fmt::print("  build-id        {}\n", to_hex(p.build_id));
  fmt::print("  depends         {}\n", to_hex(p.depends));
  fmt::print("  object depends  {}\n", to_hex(p.object_depends));
  for (const auto& [k, v] : p.modinfo) fmt::print("  {:<15} {}\n", shown(k), shown(v));
  fmt::print("  functions       {}\n", p.funcs.size());
  for (const auto& f : p.funcs) {
    if (f.new_ref)
      fmt::print("    {} -> {} (old {:#x} bytes, new {:#x} bytes)", shown(f.name), shown(f.new_ref->display), f.old_size,
                 f.new_size);
    else
      fmt::print("    {} -> NOP out {:#x} bytes (old {:#x} bytes)", shown(f.name), f.new_size, f.old_size);
    if (!f.expect.empty()) fmt::print(", expects {}", to_hex(f.expect));
    fmt::print("\n");
  }
}

// ---- list -----------------------------------------------------------------

// What `list --json` and `recover --json` both say of a payload record;
// each adds its own per-function view.
json record_json(const PayloadRecord& p) {
  json pj;
  pj["name"] = exact(p.name);
  pj["state"] = state_name(p.state);
  pj["object"] = exact(p.object_path);
  pj["file"] = exact(p.file);
  pj["build_id"] = to_hex(p.build_id);
  pj["depends"] = to_hex(p.depends);
  pj["object_depends"] = to_hex(p.object_depends);
  pj["base"] = fmt::format("{:#x}", p.base);
  pj["size"] = p.size;
  pj["funcs"] = json::array();
  return pj;
}

// The functions a patch named by a source name: which symbol each is, and
// for a copy GCC made (.isra, .constprop, .part), that the replacement gets
// that copy's arguments; and the copies of a named function it leaves alone.
void print_renamed(const BuildReport& r) {
  for (const auto& f : r.funcs) {
    if (!f.other_copies.empty()) {
      std::string copies;
      for (const auto& c : f.other_copies) copies += (copies.empty() ? "" : ", ") + shown(c);
      fmt::print("  note: {} also has copies GCC made ({}), which this payload does not replace: calls to them keep "
                 "the old code\n",
                 shown(f.name), copies);
    }
    if (f.symbol.empty()) continue;
    const auto clone = split_clone(f.symbol);
    fmt::print("  {} -> {}{}\n", shown(f.name), shown(f.symbol),
               clone ? " (a copy GCC made: the replacement is called with that copy's arguments)" : "");
  }
}

json state_json(pid_t pid, const ListResult& l) {
  json j;
  j["pid"] = pid;
  j["in_progress"] = l.in_progress;
  j["payloads"] = json::array();
  for (const auto& p : l.state.payloads) {
    json pj = record_json(p);
    for (const auto& f : p.funcs) {
      json fj = {{"name", exact(f.name)},
                 {"old_addr", fmt::format("{:#x}", f.old_addr)},
                 {"new_addr", fmt::format("{:#x}", f.new_addr)},
                 {"applied", f.applied}};
      if (!f.implementation.empty()) fj["implementation"] = exact(f.implementation);  // an IFUNC's
      if (!f.symbol.empty()) fj["symbol"] = exact(f.symbol);
      for (const auto& [addr, size] : f.cold) fj["cold"].push_back({{"addr", fmt::format("{:#x}", addr)}, {"size", size}});
      pj["funcs"].push_back(fj);
    }
    pj["modinfo"] = json::object();
    for (const auto& [k, v] : p.modinfo) pj["modinfo"][exact(k)] = exact(v);
    // As `info` shows them: load/unload as arrays, the others as one name.
    pj["hooks"] = json::object();
    for (const auto& h : p.hooks) {
      if (h.kind == "load" || h.kind == "unload")
        pj["hooks"][h.kind].push_back(exact(h.name));
      else
        pj["hooks"][exact(h.kind)] = exact(h.name);
    }
    pj["unload_hooks_run"] = p.unload_hooks_started;
    j["payloads"].push_back(pj);
  }
  return j;
}

void print_state(pid_t pid, const ListResult& l) {
  fmt::print("PID {}: {} payload{}{}\n", pid, l.state.payloads.size(), l.state.payloads.size() == 1 ? "" : "s",
             l.in_progress ? " (an operation is in progress)" : "");
  for (const auto& p : l.state.payloads) {
    fmt::print("{}  {}  {}\n", shown(p.name), state_name(p.state), shown(p.object_path));
    fmt::print("  build-id {}  depends {}\n", to_hex(p.build_id), to_hex(p.depends));
    for (const auto& f : p.funcs)
      fmt::print("  [{}] {}{} {:#x} -> {}\n", f.applied ? "x" : " ", shown(f.name),
                 (f.symbol.empty() || f.symbol == f.implementation ? "" : " (" + shown(f.symbol) + ")") +
                     (f.implementation.empty() ? "" : " -> " + shown(f.implementation)),
                 f.old_addr,
                 f.new_addr ? fmt::format("{:#x}", f.new_addr) : std::string("nop"));
    for (const auto& [k, v] : p.modinfo) fmt::print("  {}={}\n", shown(k), shown(v));
    for (const auto& h : p.hooks) fmt::print("  {} hook {}\n", shown(h.kind), shown(h.name));
    if (p.unload_hooks_started) fmt::print("  (its unload hooks have run: unload it)\n");
  }
}

// ---- recover --------------------------------------------------------------

json recovery_json(pid_t pid, const RecoveryReport& r) {
  json j;
  j["pid"] = pid;
  j["old_registry"] = exact(r.registry);
  j["registry"] = fmt::format("{:#x}", r.registry_base);
  j["payloads"] = json::array();
  for (const RecoveredPayload& rp : r.payloads) {
    const PayloadRecord& p = rp.record;
    json pj = record_json(p);
    for (size_t i = 0; i < p.funcs.size() && i < rp.sites.size(); i++) {
      const FuncState& f = p.funcs[i];
      json fj = {{"name", exact(f.name)},
                 {"site", fmt::format("{:#x}", f.site())},
                 {"new_addr", fmt::format("{:#x}", f.new_addr)},
                 {"applied", f.applied},
                 {"found", exact(rp.sites[i].found)}};
      if (!rp.sites[i].restored.empty()) fj["restored"] = exact(rp.sites[i].restored);
      pj["funcs"].push_back(fj);
    }
    j["payloads"].push_back(pj);
  }
  j["notes"] = json::array();
  for (const auto& n : r.notes) j["notes"].push_back(exact(n));
  j["not_known"] = json::array();
  for (const auto& n : r.unknown) j["not_known"].push_back(n);
  return j;
}

void print_recovery(pid_t pid, const RecoveryReport& r) {
  fmt::print("PID {}: old registry {}; new registry at {:#x} with {} payload{}\n", pid, shown(r.registry),
             r.registry_base, r.payloads.size(), r.payloads.size() == 1 ? "" : "s");
  for (const RecoveredPayload& rp : r.payloads) {
    const PayloadRecord& p = rp.record;
    fmt::print("{}  {}  {}  {} function{}\n", shown(p.name), state_name(p.state), shown(p.object_path), p.funcs.size(),
               p.funcs.size() == 1 ? "" : "s");
    fmt::print("  build-id {}  depends {}\n", to_hex(p.build_id), to_hex(p.depends));
    for (size_t i = 0; i < p.funcs.size() && i < rp.sites.size(); i++) {
      const FuncState& f = p.funcs[i];
      fmt::print("  [{}] {} site {:#x} -> {}: {}{}\n", f.applied ? "x" : " ", shown(f.name), f.site(),
                 f.new_addr ? fmt::format("{:#x}", f.new_addr) : std::string("nop"), shown(rp.sites[i].found),
                 rp.sites[i].restored.empty() ? "" : "; " + shown(rp.sites[i].restored));
    }
  }
  if (!r.payloads.empty()) {
    fmt::print("not known from the process (not in the new registry):");
    for (size_t i = 0; i < r.unknown.size(); i++) fmt::print("{} {}", i ? ";" : "", r.unknown[i]);
    fmt::print("\n");
  }
}

void print_notes(const std::vector<std::string>& notes) {
  for (const auto& n : notes) fmt::print(stderr, "hotsplice: {}\n", shown(n));
}

}  // namespace

int main(int argc, char** argv) {
  // Run as gcc/cc/g++/c++ by `build --patch`'s builds: the compiler wrapper.
  if (auto rc = run_as_compiler_wrapper(argc, argv)) return *rc;
  CLI::App app{"hotsplice: live-patch running processes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hotsplice " HS_VERSION);  // project(VERSION) in CMakeLists.txt

  bool json_out = false, force = false, entry_only = false;
  std::string timeout_s = "1s";
  pid_t pid = 0;
  std::string name, file;

  // Repeatable, searched in the order given, then /usr/lib/debug (and
  // debuginfod): elf/debug_file.h.
  std::vector<std::string> debug_dirs;
  auto add_debug_dir = [&](CLI::App* c) {
    c->add_option("--debug-dir", debug_dirs,
                  "where separate debug files of stripped target objects are (DIR/.build-id/ab/cdef.debug, "
                  "DIR/<object's dir>/<.gnu_debuglink name>); repeatable, searched before /usr/lib/debug")
        ->allow_extra_args(false)
        ->type_name("DIR");
  };

  auto add_engine_opts = [&](CLI::App* c) {
    c->add_option("--timeout", timeout_s, "how long to retry the activeness check (e.g. 1s, 500ms)");
    c->add_flag("--force", force, "skip the activeness check (unsafe)");
    c->add_flag("--entry-only", entry_only,
                "write only the jump at each function's entry; direct calls keep going through it");
  };

  // build
  BuildOptions bopt;
  std::string cflags;
  auto* build = app.add_subcommand("build", "build a payload from patch source, or from a diff (--patch)");
  build->add_option("sources", bopt.sources, "patch source file(s) (hand-written mode)");
  build->add_option("--target", bopt.target, "the binary or library the payload patches")->required();
  build->add_option("-o,--output", bopt.output, "payload file to write")->required();
  build->add_option("--depends", bopt.depends_payload, "stack on this earlier payload");
  build->add_option("--cflags", cflags, "extra compiler flags");
  build->add_option("--cc", bopt.cc, "C compiler (default gcc)");
  build->add_option("--cxx", bopt.cxx, "C++ compiler for .cc/.cpp/.cxx sources (default g++)");
  build->add_flag("--keep-temps", bopt.keep_temps, "keep the intermediate files");
  // Diff mode (cli/build_diff.h).
  DiffBuildOptions dopt;
  int strip = -1;
  build->add_option("--source", dopt.source_dir, "the source tree the target was built from (diff mode)");
  build->add_option("--patch", dopt.patches, "a unified diff to apply to it; repeatable, in order")->allow_extra_args(false);
  build->add_option("--build-cmd", dopt.build_cmd, "the command that builds the tree (run with sh -c in its root)");
  build->add_option("--strip", strip, "strip N leading path components from the patches' file names (default: detected)")
      ->check(CLI::NonNegativeNumber);
  build->add_option("--name", dopt.name, "payload name (diff mode)");
  build->add_flag("--json", json_out, "print the report as one JSON object (diff mode)");
  add_debug_dir(build);

  auto* info = app.add_subcommand("info", "describe a payload file");
  info->add_option("file", file)->required();
  info->add_flag("--json", json_out);

  auto* upload = app.add_subcommand("upload", "load a payload into a process (state CHECKED)");
  upload->add_option("pid", pid)->required();
  upload->add_option("name", name)->required();
  upload->add_option("file", file)->required();
  add_debug_dir(upload);

  auto* apply = app.add_subcommand("apply", "switch a payload on (state APPLIED)");
  auto* revert = app.add_subcommand("revert", "switch the top payload off (state CHECKED)");
  auto* replace = app.add_subcommand("replace", "revert every applied payload and apply this one, in one stop");
  auto* unload = app.add_subcommand("unload", "remove a CHECKED payload from the process");
  for (auto* c : {apply, revert, replace, unload}) {
    c->add_option("pid", pid)->required();
    c->add_option("name", name)->required();
  }
  for (auto* c : {upload, apply, revert, replace, unload}) add_engine_opts(c);

  auto* load = app.add_subcommand("load", "upload and apply, named after the file");
  load->add_option("pid", pid)->required();
  load->add_option("file", file)->required();
  load->add_option("--name", name, "payload name (default: the file name without extension)");
  add_engine_opts(load);
  add_debug_dir(load);

  auto* list = app.add_subcommand("list", "show the payloads of a process");
  list->add_option("pid", pid)->required();
  list->add_flag("--json", json_out);

  bool revert_all = false;
  auto* recover_cmd = app.add_subcommand("recover", "rebuild a process's registry from its payload mappings and code");
  recover_cmd->add_option("pid", pid)->required();
  recover_cmd->add_flag("--revert-all", revert_all, "first put the original bytes back at every patch site");
  recover_cmd->add_flag("--json", json_out);
  add_debug_dir(recover_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "hotsplice: error: {}\n", shown(e.what()));
    return 64;
  }

  if (build->parsed() && (!dopt.patches.empty() || !dopt.source_dir.empty() || !dopt.build_cmd.empty())) {
    auto usage = [](std::string_view msg) {
      fmt::print(stderr, "hotsplice: error: {}\n", msg);
      return 64;
    };
    if (!bopt.sources.empty()) return usage("build: give patch sources or --source/--patch, not both");
    if (dopt.source_dir.empty()) return usage("build --patch needs --source DIR");
    if (dopt.patches.empty()) return usage("build --source needs at least one --patch FILE");
    if (dopt.build_cmd.empty()) return usage("build --patch needs --build-cmd CMD");
    dopt.target = bopt.target;
    dopt.output = bopt.output;
    dopt.depends_payload = bopt.depends_payload;
    dopt.keep_temps = bopt.keep_temps;
    if (strip >= 0) dopt.strip = strip;
    return run_diff_build(dopt, json_out);
  }
  if (build->parsed()) {
    if (bopt.sources.empty()) {
      fmt::print(stderr, "hotsplice: error: build: give patch source file(s), or --source DIR --patch FILE --build-cmd CMD\n");
      return 64;
    }
    if (!cflags.empty()) {
      for (size_t i = 0; i < cflags.size();) {
        size_t j = cflags.find(' ', i);
        if (j == std::string::npos) j = cflags.size();
        if (j > i) bopt.cflags.push_back(cflags.substr(i, j - i));
        i = j + 1;
      }
    }
    bopt.debug = DebugSearch::with_default(debug_dirs);
    const BuildReport report = check(build_payload(bopt));
    Payload p = check(Payload::open(bopt.output));
    fmt::print("wrote {}: {} function{}, build-id {}\n", shown(bopt.output), p.funcs.size(), p.funcs.size() == 1 ? "" : "s",
               to_hex(p.build_id));
    print_renamed(report);
    return 0;
  }
  if (info->parsed()) {
    Payload p = check(Payload::open(file));
    if (json_out)
      fmt::print("{}\n", payload_json(p).dump(2, ' ', false, json::error_handler_t::replace));
    else
      print_info(p);
    return 0;
  }
  if (list->parsed()) {
    ListResult l = check_on(pid, list_state(pid));
    print_notes(l.notes);
    if (json_out)
      fmt::print("{}\n", state_json(pid, l).dump(2, ' ', false, json::error_handler_t::replace));
    else
      print_state(pid, l);
    return 0;
  }

  if (recover_cmd->parsed()) {
    recovering = true;
    auto r = recover(pid, RecoverOptions{.revert_all = revert_all, .debug = DebugSearch::with_default(debug_dirs)});
    if (!r && r.error().kind() != ErrorKind::NoProcess) check_op(pid, std::unexpected(r.error()));
    const RecoveryReport rep = check(std::move(r));
    print_notes(rep.notes);
    if (json_out)
      fmt::print("{}\n", recovery_json(pid, rep).dump(2, ' ', false, json::error_handler_t::replace));
    else
      print_recovery(pid, rep);
    return 0;
  }

  EngineOptions eopt;
  eopt.timeout = check(parse_duration(timeout_s));
  eopt.force = force;
  eopt.redirect_calls = !entry_only;
  eopt.release_when_done = true;  // one operation per invocation
  eopt.debug = DebugSearch::with_default(debug_dirs);
  if (force) fmt::print(stderr, "hotsplice: warning: --force skips the activeness check; the process may crash\n");
  // Repairs the target at once if this tool dies mid-operation (guardian.h).
  start_guardian(pid);
  auto session = check_on(pid, Session::open(pid, eopt));
  print_notes(session->notes());
  const size_t notes_shown = session->notes().size();
  Status st;
  if (upload->parsed()) st = session->upload(name, file);
  if (apply->parsed()) st = session->apply(name);
  if (revert->parsed()) st = session->revert(name);
  if (replace->parsed()) st = session->replace(name);
  if (unload->parsed()) st = session->unload(name);
  if (load->parsed()) {
    if (name.empty()) name = payload_name_from_file(file);
    st = session->load(name, file);
  }
  // What the operation itself has to say (a post hook that failed).
  print_notes({session->notes().begin() + static_cast<long>(notes_shown), session->notes().end()});
  check_op(pid, std::move(st));
  check_op(pid, session->close());
  return 0;
}
