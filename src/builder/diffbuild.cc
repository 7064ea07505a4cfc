// The diff mode of the builder (diffbuild.h): the two builds of a source
// tree through the compiler wrapper, and the comparison of what changed.
#include "builder/diffbuild.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "builder/builder.h"
#include "builder/funcs.h"
#include "builder/patch_file.h"
#include "builder/payload_gen.h"
#include "payload/payload.h"
#include "support/file.h"

namespace hs {

namespace fs = std::filesystem;

namespace {

// The builder's own directory, removed unless kept.
class WorkDir {
 public:
  static Result<WorkDir> create() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = fmt::format("{}/hotsplice-diffbuild-XXXXXX", base && *base ? base : "/tmp");
    if (!::mkdtemp(tmpl.data())) return fail_errno(ErrorKind::Io, errno, "cannot create a temporary directory {}", tmpl);
    return WorkDir(std::move(tmpl));
  }
  WorkDir(WorkDir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) { o.path_.clear(); }
  WorkDir& operator=(WorkDir&&) = delete;
  ~WorkDir() {
    if (path_.empty() || keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort
  }
  const std::string& path() const { return path_; }
  std::string sub(std::string_view name) const { return fmt::format("{}/{}", path_, name); }
  void keep() { keep_ = true; }

 private:
  explicit WorkDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  bool keep_ = false;
};

std::string first_error_line(const std::string& output) {
  std::istringstream in(output);
  std::string line, first;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) return line;
    if (first.empty()) first = line;
  }
  return first;
}

Status run_step(const std::vector<std::string>& argv, std::string_view what) {
  ToolRun run = HS_TRY(run_tool(argv));
  if (run.exit_status != 0) {
    std::string line = first_error_line(run.output);
    return fail(ErrorKind::Io, "{} failed (exit status {}){}{}", what, run.exit_status, line.empty() ? "" : ": ", line);
  }
  return {};
}

Result<std::string> read_text(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes) return fail_errno(ErrorKind::Io, bytes.error().err, "{}", path);
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

Status write_text(const std::string& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return fail(ErrorKind::Io, "cannot write {}", path);
  return {};
}

// A program by name on PATH (as is when it has a '/').
Result<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (true) {
    size_t colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    std::string cand = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    if (colon == std::string_view::npos) break;
    dirs = dirs.substr(colon + 1);
  }
  return fail(ErrorKind::Io, "cannot find the compiler '{}' on PATH", name);
}

bool is_header(const std::string& p) {
  for (std::string_view ext : {".h", ".hh", ".hpp", ".hxx", ".inc", ".def"})
    if (p.ends_with(ext)) return true;
  return false;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string relative_to(const std::string& path, const std::string& root) {
  if (path == root) return ".";
  if (path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/') return path.substr(root.size() + 1);
  return path;
}

size_t DiffBuildReport::changed() const {
  size_t n = 0;
  for (const ObjectReport& o : objects)
    for (const FuncDiff& f : o.diff.funcs) n += f.status == FuncStatus::Changed || f.status == FuncStatus::New;
  return n;
}

size_t DiffBuildReport::refused() const {
  size_t n = 0;
  for (const ObjectReport& o : objects)
    for (const FuncDiff& f : o.diff.funcs) n += f.status == FuncStatus::Refused;
  return n;
}

Result<DiffBuildReport> diff_build(const DiffBuildOptions& opts) {
  using clock = std::chrono::steady_clock;
  DiffBuildReport report;

  // The options.
  if (opts.source_dir.empty()) return fail(ErrorKind::Usage, "build --patch needs --source DIR");
  if (opts.build_cmd.empty()) return fail(ErrorKind::Usage, "build --patch needs --build-cmd CMD");
  if (opts.patches.empty()) return fail(ErrorKind::Usage, "build --source needs at least one --patch FILE");
  if (opts.output.empty()) return fail(ErrorKind::Usage, "no output file given");
  if (opts.strip && *opts.strip < 0) return fail(ErrorKind::Usage, "--strip {} is negative", *opts.strip);
  std::error_code ec;
  if (!fs::is_directory(opts.source_dir, ec)) return fail(ErrorKind::Usage, "--source {} is not a directory", opts.source_dir);
  const std::string source_dir = fs::absolute(opts.source_dir).lexically_normal().string();
  auto target = HS_TRY(builder_detail::open_target(opts.target));
  if (opts.depends_payload) {
    Payload earlier = HS_TRY_CTX(Payload::open(*opts.depends_payload), "earlier payload");
    if (earlier.object_depends != target.build_id) {
      return fail(ErrorKind::BadTarget, "earlier payload {} was built for object build-id {}, but target {} has build-id {}",
                  *opts.depends_payload, to_hex(earlier.object_depends), target.path, to_hex(target.build_id));
    }
  }

  // 1. The patches, applied in memory first so one that does not apply
  // fails before anything is built.
  auto t0 = clock::now();
  std::vector<PatchFile> patches;
  std::map<std::string, std::optional<std::string>> overlay;  // tree path -> contents (nullopt: deleted)
  std::map<std::string, std::vector<const FileDiff*>> diffs_of;  // tree path -> its diffs, in order
  patches.reserve(opts.patches.size());
  for (const std::string& file : opts.patches) {
    std::string text = HS_TRY(read_text(file));
    patches.push_back(HS_TRY(parse_patch(text, file)));
    const PatchFile& p = patches.back();
    AppliedPatch ap{file, 0, !opts.strip.has_value(), {}};
    ap.strip = opts.strip ? *opts.strip : HS_TRY(detect_strip(p, source_dir));
    for (const FileDiff& f : p.files) {
      std::string rel = HS_TRY(diff_target_path(p, f, ap.strip));
      std::string before;
      if (auto it = overlay.find(rel); it != overlay.end()) {
        if (!it->second && !f.creates()) return fail(ErrorKind::BadTarget, "patch {}: {} was deleted by an earlier patch", file, rel);
        before = it->second.value_or("");
      } else if (!f.creates()) {
        auto text_or = read_text(source_dir + "/" + rel);
        if (!text_or) return fail(ErrorKind::BadTarget, "patch {}: {} is not in {} (-p{})", file, rel, source_dir, ap.strip);
        before = std::move(*text_or);
      }
      std::string after = HS_TRY(apply_file_diff(before, f, file, rel));
      overlay[rel] = f.deletes() ? std::nullopt : std::optional<std::string>(std::move(after));
      diffs_of[rel].push_back(&f);
      ap.files.push_back(rel);
    }
    report.patches.push_back(std::move(ap));
  }

  // The work directory and the wrapper.
  WorkDir work = HS_TRY(WorkDir::create());
  if (opts.keep_temps) {
    work.keep();
    report.temp_dir = work.path();
  }
  const std::string wrap_dir = work.sub("wrap");
  fs::create_directories(wrap_dir, ec);
  if (ec) return fail(ErrorKind::Io, "cannot create {}: {}", wrap_dir, ec.message());
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return fail(ErrorKind::Io, "cannot read /proc/self/exe: {}", ec.message());
  for (const char* n : kWrapperNames) {
    fs::create_symlink(self, fs::path(wrap_dir) / n, ec);
    if (ec) return fail(ErrorKind::Io, "cannot create {}/{}: {}", wrap_dir, n, ec.message());
  }
  // The real compilers: $CC / $CXX when each is one word (not "ccache gcc"),
  // else gcc / g++.
  auto compiler = [](const char* env, const char* fallback) -> std::string {
    const char* v = std::getenv(env);
    if (!v || !*v || std::string_view(v).find_first_of(" \t") != std::string_view::npos) return fallback;
    return v;
  };
  const std::string real_cc = HS_TRY(find_program(compiler("CC", "gcc")));
  const std::string real_cxx = HS_TRY(find_program(compiler("CXX", "g++")));
  const char* path_env = std::getenv("PATH");
  auto build_env = [&](const std::string& root, const std::string& log) {
    return std::vector<std::string>{"env",
                                    "-C",
                                    root,
                                    "CC=" + wrap_dir + "/gcc",
                                    "CXX=" + wrap_dir + "/g++",
                                    "PATH=" + wrap_dir + ":" + (path_env ? path_env : "/usr/bin:/bin"),
                                    std::string(kWrapLogEnv) + "=" + log,
                                    std::string(kWrapCcEnv) + "=" + real_cc,
                                    std::string(kWrapCxxEnv) + "=" + real_cxx};
  };
  const std::string orig_root = work.sub("original"), patched_root = work.sub("patched");
  const std::string orig_log = work.sub("original.log"), patched_log = work.sub("patched.log");

  // 2. The original build.
  HS_CHECK(run_step({"cp", "-a", source_dir + "/.", orig_root}, fmt::format("copying {}", source_dir)));
  report.phases.push_back({"copy", since(t0)});
  auto t1 = clock::now();
  {
    auto argv = build_env(orig_root, orig_log);
    argv.insert(argv.end(), {"sh", "-c", opts.build_cmd});
    HS_CHECK(run_step(argv, "the build command in the original tree"));
  }
  report.phases.push_back({"original build", since(t1)});
  const auto orig_objects = HS_TRY(read_wrapper_log(orig_log));
  report.original_compiles = orig_objects.size();

  // 3. The patched tree, from the built original (timestamps kept, so the
  // build recompiles only what the patches touched), and its build.
  auto t2 = clock::now();
  HS_CHECK(run_step({"cp", "-a", orig_root + "/.", patched_root}, "copying the built original tree"));
  for (const auto& [rel, contents] : overlay) {
    const std::string dest = patched_root + "/" + rel;
    if (!contents) {
      fs::remove(dest, ec);
      continue;
    }
    HS_CHECK(write_text(dest, *contents));
  }
  report.phases.push_back({"patch", since(t2)});
  auto t3 = clock::now();
  {
    auto argv = build_env(patched_root, patched_log);
    argv.insert(argv.end(), {"sh", "-c", opts.build_cmd});
    HS_CHECK(run_step(argv, "the build command in the patched tree"));
  }
  report.phases.push_back({"patched build", since(t3)});
  const auto patched_objects = HS_TRY(read_wrapper_log(patched_log));

  // 4. The comparison.
  auto t4 = clock::now();
  std::map<std::string, const CompiledObject*> orig_by_rel;
  for (const CompiledObject& o : orig_objects) orig_by_rel[relative_to(o.output, orig_root)] = &o;
  for (const CompiledObject& po : patched_objects) {
    ObjectReport rep;
    rep.object = relative_to(po.output, patched_root);
    rep.source = relative_to(po.source, patched_root);
    std::string original = orig_root + "/" + rep.object;
    const bool source_existed = fs::exists(orig_root + "/" + rep.source, ec);
    if (!source_existed) {
      rep.created = true;
      original.clear();
    } else if (!orig_by_rel.count(rep.object)) {
      // The original build did not compile it (DIR held it already): compile
      // it now, by the same command, in the original tree.
      auto argv = build_env(orig_root + "/" + relative_to(po.cwd, patched_root), orig_log);
      argv.push_back(wrap_dir + "/" + fs::path(po.argv.at(0)).filename().string());
      for (size_t i = 1; i < po.argv.size(); ++i) {
        std::string a = po.argv[i];
        if (a.starts_with(patched_root)) a = orig_root + a.substr(patched_root.size());
        argv.push_back(a);
      }
      HS_CHECK(run_step(argv, fmt::format("compiling the original {}", rep.source)));
    }
    // Line numbers the patches moved, in this object's source and in headers.
    std::vector<const std::vector<const FileDiff*>*> maps;
    for (const auto& [rel, diffs] : diffs_of)
      if (rel == rep.source || is_header(rel)) maps.push_back(&diffs);
    LineShift shifted = [&maps](u64 o, u64 n) {
      if (o == n || o > 0xffffff) return false;
      for (const auto* diffs : maps) {
        std::optional<u32> line = static_cast<u32>(o);
        for (const FileDiff* d : *diffs)
          if (line) line = map_line(*d, *line);
        if (line && *line == n) return true;
      }
      return false;
    };
    rep.diff = HS_TRY_CTX(compare_objects(original, po.output, shifted), fmt::format("comparing {}", rep.object));
    report.objects.push_back(std::move(rep));
  }
  report.phases.push_back({"compare", since(t4)});

  // 5. The payload.
  if (report.changed() == 0 || report.refused() > 0) return report;
  auto t5 = clock::now();
  BuildOptions b;
  b.target = opts.target;
  b.output = opts.output;
  b.depends_payload = opts.depends_payload;
  b.cc = real_cc;
  std::vector<std::pair<std::string, std::string>> source_of;  // generated file -> its object, for messages
  for (size_t i = 0; i < report.objects.size(); ++i) {
    const ObjectReport& o = report.objects[i];
    bool any = false;
    for (const FuncDiff& f : o.diff.funcs) any |= f.status == FuncStatus::Changed || f.status == FuncStatus::New;
    if (!any) continue;
    const std::string original = o.created ? "" : orig_root + "/" + o.object;
    auto src = payload_source(original, patched_root + "/" + o.object, o.diff);
    if (!src) {
      report.payload_error = std::move(src.error().context(o.object)).message();
      return report;
    }
    const std::string path = work.sub(fmt::format("payload-{}.s", i));
    HS_CHECK(write_text(path, *src));
    b.sources.push_back(path);
    source_of.emplace_back(path, o.object);
  }
  auto built = build_payload(b);
  if (!built) {
    // Errors name the generated source; say which object it stands for.
    std::string msg = built.error().message();
    for (const auto& [path, object] : source_of)
      for (size_t at; (at = msg.find(path)) != std::string::npos;) msg.replace(at, path.size(), object);
    report.payload_error = std::move(msg);
    return report;
  }
  report.payload = std::move(*built);
  report.phases.push_back({"link", since(t5)});
  return report;
}

}  // namespace hs
