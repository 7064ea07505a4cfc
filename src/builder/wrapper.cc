// The compiler wrapper mode of the hotsplice binary (see wrapper.h): runs the
// real compiler with -ffunction-sections -fdata-sections and logs each object.
#include "builder/wrapper.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "support/file.h"

extern char** environ;

namespace hs {

namespace {

namespace fs = std::filesystem;

// Fields are separated by tabs, argv words by \x1f; these and newlines are
// escaped as %XX so every record stays on one line.
std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '\t' || c == '\n' || c == '\x1f') out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out;
}

std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  for (;;) {
    size_t end = s.find(sep, pos);
    parts.push_back(s.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return parts;
}

bool is_source(std::string_view a) {
  for (std::string_view ext : {".c", ".cc", ".cpp", ".cxx", ".c++", ".C", ".i", ".ii", ".s", ".S"}) {
    if (a.size() > ext.size() && a.ends_with(ext)) return true;
  }
  return false;
}

// Options whose value is the next word.
bool takes_value(std::string_view a) {
  for (std::string_view o : {"-o", "-I", "-D", "-U", "-include", "-imacros", "-MF", "-MT", "-MQ", "-x", "-isystem",
                             "-iquote", "-idirafter", "-isysroot", "--sysroot", "-Xlinker", "-Xassembler",
                             "-Xpreprocessor", "-aux-info", "-dumpbase", "-dumpdir", "-L", "-l"}) {
    if (a == o) return true;
  }
  return false;
}

std::string absolute(const std::string& cwd, const std::string& p) {
  if (p.starts_with('/')) return fs::path(p).lexically_normal().string();
  return (fs::path(cwd) / p).lexically_normal().string();
}

}  // namespace

std::vector<std::pair<std::string, std::string>> compile_outputs(const std::vector<std::string>& args) {
  bool compile_only = false, stops_early = false;
  std::optional<std::string> out;
  std::vector<std::string> sources;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-c") compile_only = true;
    else if (a == "-E" || a == "-S" || a == "-M" || a == "-MM") stops_early = true;
    else if (a == "-o" && i + 1 < args.size()) out = args[++i];
    else if (a.starts_with("-o") && a.size() > 2) out = a.substr(2);
    else if (takes_value(a)) ++i;
    else if (!a.starts_with('-') && is_source(a)) sources.push_back(a);
  }
  std::vector<std::pair<std::string, std::string>> result;
  if (!compile_only || stops_early || sources.empty()) return result;
  if (out && sources.size() == 1) {
    result.emplace_back(*out, sources[0]);
    return result;
  }
  for (const std::string& s : sources) result.emplace_back(fs::path(s).stem().string() + ".o", s);
  return result;
}

std::optional<int> run_as_compiler_wrapper(int argc, char** argv) {
  const char* log = std::getenv(kWrapLogEnv);
  if (!log || !*log || argc < 1) return std::nullopt;
  const std::string name = fs::path(argv[0]).filename().string();
  bool cxx = name == "g++" || name == "c++";
  if (!cxx && name != "gcc" && name != "cc") return std::nullopt;

  const char* real = std::getenv(cxx ? kWrapCxxEnv : kWrapCcEnv);
  if (!real || !*real) {
    std::fprintf(stderr, "hotsplice compiler wrapper: %s is not set\n", cxx ? kWrapCxxEnv : kWrapCcEnv);
    return 127;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> full = {real, "-ffunction-sections", "-fdata-sections"};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> cargs;
  for (std::string& a : full) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid;
  int err = ::posix_spawn(&pid, real, nullptr, nullptr, cargs.data(), environ);
  if (err != 0) {
    std::fprintf(stderr, "hotsplice compiler wrapper: cannot run %s: %s\n", real, std::strerror(err));
    return 127;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (rc != 0) return rc;

  auto outputs = compile_outputs(args);
  if (outputs.empty()) return 0;
  std::error_code ec;
  const std::string cwd = fs::current_path(ec).string();
  std::string words;
  for (size_t i = 0; i < static_cast<size_t>(argc); ++i) words += (i ? "\x1f" : "") + escape(argv[i]);
  std::string record;
  for (const auto& [o, s] : outputs) {
    record += fmt::format("{}\t{}\t{}\t{}\n", escape(absolute(cwd, o)), escape(absolute(cwd, s)), escape(cwd), words);
  }
  // One write with O_APPEND: records of parallel compiles (make -j) do not interleave.
  int fd = ::open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size())) {
    std::fprintf(stderr, "hotsplice compiler wrapper: cannot write %s: %s\n", log, std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return 1;
  }
  ::close(fd);
  return 0;
}

Result<std::vector<CompiledObject>> read_wrapper_log(const std::string& path) {
  auto bytes = read_whole_file(path);
  if (!bytes) {
    if (bytes.error().err == ENOENT) return std::vector<CompiledObject>{};
    return fail_errno(ErrorKind::Io, bytes.error().err, "compiler wrapper log {}", path);
  }
  std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  std::vector<CompiledObject> objects;
  std::map<std::string, size_t> index;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    auto f = split(line, '\t');
    if (f.size() != 4) return fail(ErrorKind::Internal, "compiler wrapper log {}: malformed line '{}'", path, line);
    CompiledObject o{unescape(f[0]), unescape(f[1]), unescape(f[2]), {}};
    for (std::string_view w : split(f[3], '\x1f')) o.argv.push_back(unescape(w));
    auto [it, fresh] = index.emplace(o.output, objects.size());
    if (fresh) objects.push_back(std::move(o));
    else objects[it->second] = std::move(o);
  }
  return objects;
}

}  // namespace hs
