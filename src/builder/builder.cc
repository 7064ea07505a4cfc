// The hand-written-mode payload builder: build_payload() drives the tools
// (the compiler, the assembler for the dependency notes, ld -r) through the
// passes listed in builder.h, in a private temporary directory, and checks the
// result as the loader will. Filling in .livepatch.funcs is in funcs.cc.
#include "builder/builder.h"

#include "support/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "builder/funcs.h"
#include "elf/elf_file.h"
#include "payload/payload.h"

extern char** environ;

namespace hs {

namespace fs = std::filesystem;
using builder_detail::GlobalFuncs;
using builder_detail::PatchObject;
using builder_detail::Target;

namespace {

constexpr size_t kMaxToolOutput = 1 << 20;

// ---------------------------------------------------------------------------
// Small file helpers.

Result<Bytes> read_file(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes) return fail_errno(ErrorKind::Io, bytes.error().err, "{}{}", path, bytes.error().opening ? "" : ": read");
  return std::move(*bytes);
}

Status write_file(const std::string& path, ByteView data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail_errno(ErrorKind::Io, errno, "{}", path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return fail_errno(ErrorKind::Io, err, "{}: write", path);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return fail_errno(ErrorKind::Io, errno, "{}: close", path);
  return {};
}

// A private directory for the intermediate files, removed unless kept.
class TempDir {
 public:
  static Result<TempDir> create() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = fmt::format("{}/hotsplice-build-XXXXXX", base && *base ? base : "/tmp");
    if (!::mkdtemp(tmpl.data())) return fail_errno(ErrorKind::Io, errno, "cannot create a temporary directory {}", tmpl);
    return TempDir(std::move(tmpl));
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (path_.empty() || keep_) return;
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: nothing useful to do on failure
  }

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return fmt::format("{}/{}", path_, name); }
  void keep() { keep_ = true; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
  bool keep_ = false;
};

// The line of a tool's output worth showing: the first one saying "error",
// else the first non-empty one.
std::string first_error_line(const std::string& output) {
  std::string first;
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string::npos) end = output.size();
    std::string_view line(output.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (line.find("error") != std::string_view::npos) return std::string(line);
    if (first.empty()) first = line;
  }
  return first;
}

std::string describe_exit(const std::string& tool, const ToolRun& run) {
  std::string line = first_error_line(run.output);
  if (!line.empty()) return line;
  if (run.exit_status > 128) return fmt::format("{} was killed by signal {}", tool, run.exit_status - 128);
  return fmt::format("{} exited with status {}", tool, run.exit_status);
}

// Runs a tool; a non-zero exit becomes an Io error "WHAT failed: <first error line>".
Status run_checked(const std::vector<std::string>& argv, std::string_view what) {
  ToolRun run = HS_TRY(run_tool(argv));
  if (run.exit_status != 0) return fail(ErrorKind::Io, "{} failed: {}", what, describe_exit(argv[0], run));
  return {};
}

// ---------------------------------------------------------------------------
// The dependency notes, as assembler source.

void emit_note(std::string& s, std::string_view section, ByteView desc) {
  s += fmt::format("\t.section {},\"a\",@note\n", section);
  s += "\t.balign 4\n";
  s += "\t.long 4            /* namesz */\n";
  s += fmt::format("\t.long {}           /* descsz */\n", desc.size());
  s += "\t.long 3            /* type: NT_GNU_BUILD_ID */\n";
  s += "\t.asciz \"GNU\"       /* name */\n";
  for (size_t i = 0; i < desc.size(); i += 16) {
    s += "\t.byte ";
    for (size_t j = i; j < std::min(desc.size(), i + 16); ++j) s += fmt::format("{}{:#04x}", j == i ? "" : ", ", desc[j]);
    s += "\n";
  }
  s += "\t.balign 4\n";
}

std::string notes_source(ByteView depends, ByteView object_depends) {
  std::string s = "/* hotsplice build: dependency notes */\n";
  s += fmt::format("/* depends: {} */\n", to_hex(depends));
  s += fmt::format("/* object_depends: {} */\n", to_hex(object_depends));
  emit_note(s, ".livepatch.depends", depends);
  emit_note(s, ".livepatch.object_depends", object_depends);
  s += "\t.section .note.GNU-stack,\"\",@progbits\n";
  return s;
}

std::string object_name(size_t i, const std::string& source) {
  std::string stem = fs::path(source).stem().string();
  std::replace_if(stem.begin(), stem.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-'; }, '_');
  return fmt::format("{}-{}.o", i, stem.empty() ? "src" : stem);
}

}  // namespace

// ---------------------------------------------------------------------------

Result<ToolRun> run_tool(const std::vector<std::string>& argv) {
  HS_ASSERT(!argv.empty());
  // Everything the child needs is prepared before fork().
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (!v.starts_with("LC_ALL=")) env_strings.emplace_back(v);
  }
  env_strings.emplace_back("LC_ALL=C");
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out[2], status_pipe[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return fail_errno(ErrorKind::Io, errno, "pipe");
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    return fail_errno(ErrorKind::Io, err, "pipe");
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {out[0], out[1], status_pipe[0], status_pipe[1]}) ::close(fd);
    return fail_errno(ErrorKind::Io, err, "cannot run '{}': fork", argv[0]);
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execvpe(args[0], args.data(), envp.data());
    int err = errno;
    ssize_t ignored = ::write(status_pipe[1], &err, sizeof err);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(status_pipe[1]);

  ToolRun run;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (run.output.size() < kMaxToolOutput) run.output.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int exec_err = 0;
  ssize_t got;
  do {
    got = ::read(status_pipe[0], &exec_err, sizeof exec_err);
  } while (got < 0 && errno == EINTR);
  ::close(status_pipe[0]);

  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) return fail_errno(ErrorKind::Io, errno, "waiting for '{}'", argv[0]);
  }
  if (got == static_cast<ssize_t>(sizeof exec_err)) return fail_errno(ErrorKind::Io, exec_err, "cannot run '{}'", argv[0]);
  run.exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return run;
}

Result<std::string> find_include_dir() {
  auto has_header = [](const fs::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "hotsplice" / "livepatch.h", ec);
  };
  if (const char* env = std::getenv("HOTSPLICE_INCLUDE"); env && *env) {
    if (has_header(env)) return std::string(env);
    return fail(ErrorKind::Io, "HOTSPLICE_INCLUDE={}: no hotsplice/livepatch.h there", env);
  }
  std::vector<std::string> tried;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path dir = (exe.parent_path() / ".." / "include").lexically_normal();
    if (has_header(dir)) return dir.string();
    tried.push_back(dir.string());
  }
#ifdef HS_INCLUDE_DIR
  if (has_header(HS_INCLUDE_DIR)) return std::string(HS_INCLUDE_DIR);
  tried.emplace_back(HS_INCLUDE_DIR);
#endif
  std::string list;
  for (const std::string& t : tried) list += (list.empty() ? "" : ", ") + t;
  return fail(ErrorKind::Io, "cannot find hotsplice/livepatch.h (looked in: {}); set HOTSPLICE_INCLUDE", list);
}

bool is_cxx_source(const std::string& source) {
  for (std::string_view ext : {".cc", ".cpp", ".cxx", ".C"}) {
    if (source.size() > ext.size() && source.ends_with(ext)) return true;
  }
  return false;
}

Result<BuildReport> build_payload(const BuildOptions& opts) {
  // Pass 0: the options.
  if (opts.sources.empty()) return fail(ErrorKind::Usage, "no patch source given");
  if (opts.output.empty()) return fail(ErrorKind::Usage, "no output file given");
  if (opts.target.empty() && !opts.depends_payload) {
    return fail(ErrorKind::Usage, "no target binary given (and no earlier payload to stack on)");
  }
  for (const std::string& src : opts.sources) {
    struct stat st;
    if (::stat(src.c_str(), &st) != 0) return fail_errno(ErrorKind::Io, errno, "patch source {}", src);
  }

  // Pass 1: what the payload depends on.
  std::optional<Target> target;
  if (!opts.target.empty()) {
    target.emplace(HS_TRY(builder_detail::open_target(opts.target)));
    target->debug = opts.debug;
  }
  Bytes depends, object_depends;
  if (opts.depends_payload) {
    const std::string& dep_path = *opts.depends_payload;
    Payload earlier = HS_TRY_CTX(Payload::open(dep_path), "earlier payload");
    if (target && earlier.object_depends != target->build_id) {
      return fail(ErrorKind::BadTarget,
                  "earlier payload {} was built for object build-id {}, but target {} has build-id {}", dep_path,
                  to_hex(earlier.object_depends), target->path, to_hex(target->build_id));
    }
    depends = earlier.build_id;
    object_depends = earlier.object_depends;
  } else {
    depends = target->build_id;
    object_depends = target->build_id;
  }

  // Pass 2: compile.
  const std::string include_dir = HS_TRY(find_include_dir());
  TempDir tmp = HS_TRY(TempDir::create());
  if (opts.keep_temps) tmp.keep();
  std::vector<PatchObject> objects;
  for (size_t i = 0; i < opts.sources.size(); ++i) {
    const std::string& src = opts.sources[i];
    PatchObject obj;
    obj.source = src;
    obj.path = tmp.file(object_name(i, src));
    std::vector<std::string> argv = {is_cxx_source(src) ? opts.cxx : opts.cc, "-O2", "-fPIC", "-ffunction-sections", "-fdata-sections", "-fno-common",
                                     "-I" + include_dir};
    argv.insert(argv.end(), opts.cflags.begin(), opts.cflags.end());
    argv.insert(argv.end(), {"-c", src, "-o", obj.path});
    HS_CHECK(run_checked(argv, fmt::format("compiling {}", src)));
    obj.bytes = HS_TRY(read_file(obj.path));
    obj.elf.emplace(HS_TRY_CTX(ElfFile::create(obj.bytes), fmt::format("{} (compiled from {})", obj.path, src)));
    if (!obj.elf->is_relocatable()) {
      return fail(ErrorKind::BadPayload, "{} (compiled from {}) is not a relocatable object", obj.path, src);
    }
    objects.push_back(std::move(obj));
  }

  // Pass 3: fill in the sizes.
  GlobalFuncs globals;
  for (const PatchObject& obj : objects) {
    auto st = obj.elf->symtab_index();
    if (!st) continue;
    for (const ElfSymbol& s : HS_TRY(obj.elf->symbols(*st))) {
      if (s.type() == STT_FUNC && s.defined() && s.bind() != STB_LOCAL) globals.emplace(s.name, s.st_size);
    }
  }
  std::vector<BuiltFunc> built;
  for (PatchObject& obj : objects) {
    const auto& shdrs = obj.elf->sections();
    bool changed = false;
    for (size_t i = 1; i < shdrs.size(); ++i) {
      if (obj.elf->section_name(i) != ".livepatch.funcs") continue;
      HS_CHECK_CTX(builder_detail::fill_section(obj, i, target ? &*target : nullptr, globals, built), obj.source);
      changed = true;
    }
    if (changed) HS_CHECK(write_file(obj.path, obj.bytes));
  }

  // Pass 4: the dependency notes.
  const std::string notes_s = tmp.file("notes.s");
  const std::string notes_o = tmp.file("notes.o");
  const std::string notes = notes_source(depends, object_depends);
  HS_CHECK(write_file(notes_s, ByteView(reinterpret_cast<const u8*>(notes.data()), notes.size())));
  HS_CHECK(run_checked({opts.cc, "-c", notes_s, "-o", notes_o}, "assembling the dependency notes"));

  // Pass 5: link.
  const std::string linked = tmp.file("payload.lp");
  std::vector<std::string> ld = {opts.ld, "-r", "--build-id=sha1", "-o", linked};
  for (const PatchObject& obj : objects) ld.push_back(obj.path);
  ld.push_back(notes_o);
  HS_CHECK(run_checked(ld, "linking the payload"));

  // Pass 6: check it as the loader will, then put it in place.
  auto checked = Payload::open(linked);
  if (!checked) {
    tmp.keep();  // worth a look: the objects, notes.s and payload.lp are there
    return std::unexpected(std::move(checked.error())
                               .context(fmt::format("the built payload does not validate (kept in {})", tmp.path())));
  }
  Payload payload = std::move(*checked);
  if (payload.depends != depends || payload.object_depends != object_depends) {
    return fail(ErrorKind::Internal, "the built payload's dependency notes do not read back as written");
  }
  Bytes image = HS_TRY(read_file(linked));
  HS_CHECK(write_file(opts.output, image));

  BuildReport report;
  report.output = opts.output;
  report.build_id = payload.build_id;
  report.depends = payload.depends;
  report.object_depends = payload.object_depends;
  for (const FuncSpec& spec : payload.funcs) {
    BuiltFunc f;
    f.name = spec.name;
    f.nop = !spec.new_ref;
    f.new_size = spec.new_size;
    f.old_size = spec.old_size;
    auto it = std::find_if(built.begin(), built.end(), [&](const BuiltFunc& b) { return b.name == spec.name; });
    if (it != built.end()) {
      f.new_size_filled = it->new_size_filled;
      f.old_size_filled = it->old_size_filled;
      f.symbol = it->symbol;
      f.other_copies = it->other_copies;
    }
    report.funcs.push_back(std::move(f));
  }
  if (opts.keep_temps) report.temp_dir = tmp.path();
  return report;
}

}  // namespace hs
