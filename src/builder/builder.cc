// Hand-written-mode payload builder; see builder.h for the passes.
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

#include "arch/x86_64.h"
#include "elf/elf_file.h"
#include "elf/symbols.h"
#include "payload/payload.h"

extern char** environ;

namespace hs {

namespace fs = std::filesystem;

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
// The target object.

struct Target {
  std::string path;
  std::optional<ElfFile> elf;
  Bytes build_id;
  std::shared_ptr<ObjectSymbols> symbols;  // loaded on first use

  Result<const ObjectSymbols*> syms() {
    if (!symbols) {
      symbols = HS_TRY_CTX(ObjectSymbols::load(*elf, 0), fmt::format("target {}", path));
    }
    return symbols.get();
  }

  // The executable section holding [addr, addr + 1), if any.
  std::optional<size_t> exec_section_at(u64 addr) const {
    const auto& shdrs = elf->sections();
    for (size_t i = 1; i < shdrs.size(); ++i) {
      const Elf64_Shdr& s = shdrs[i];
      if (!(s.sh_flags & SHF_ALLOC) || !(s.sh_flags & SHF_EXECINSTR)) continue;
      if (addr >= s.sh_addr && addr - s.sh_addr < s.sh_size) return i;
    }
    return std::nullopt;
  }

  // True if the function at addr (in section sec) starts with endbr64.
  bool starts_with_endbr(size_t sec, u64 addr) const {
    const Elf64_Shdr& s = elf->sections()[sec];
    if (s.sh_type == SHT_NOBITS) return false;
    ByteView data = elf->section_data(sec);
    u64 off = addr - s.sh_addr;
    if (off > data.size()) return false;
    return x86_64::starts_with_endbr64(data.subspan(off));
  }
};

// Errors about the target binary are BadTarget unless the file could not be
// read at all (Io keeps its errno).
// Messages read "target PATH: reason".
Error as_target_error(const Error& e, std::string_view path) {
  ErrorKind kind = e.sys_errno() != 0 ? e.kind() : ErrorKind::BadTarget;
  std::string_view msg = e.message();
  if (msg.starts_with(path) && msg.substr(path.size()).starts_with(": ")) msg.remove_prefix(path.size() + 2);
  Error out(kind, std::string(msg), e.sys_errno());
  out.context(fmt::format("target {}", path));
  return out;
}

Result<Target> open_target(const std::string& path) {
  Target t;
  t.path = path;
  auto elf = ElfFile::open(path);
  if (!elf) return std::unexpected(as_target_error(elf.error(), path));
  t.elf.emplace(std::move(*elf));
  u16 type = t.elf->header().e_type;
  if (type != ET_EXEC && type != ET_DYN) {
    return fail(ErrorKind::BadTarget, "target {}: e_type {:#x} is not an executable or shared object", path, type);
  }
  auto id = t.elf->build_id();
  if (!id) return std::unexpected(as_target_error(id.error(), path));
  t.build_id.assign(id->begin(), id->end());
  return t;
}

// ---------------------------------------------------------------------------
// Filling in the sizes of .livepatch.funcs.

struct PatchObject {
  std::string source;  // the patch source it was compiled from, for messages
  std::string path;    // the .o in the temp dir
  Bytes bytes;         // its contents, modified in place
  std::optional<ElfFile> elf;
};

struct FieldReloc {
  u32 type = 0;
  ElfSymbol sym;
  i64 addend = 0;
};

// Global functions defined by any of the patch objects: name -> st_size.
using GlobalFuncs = std::map<std::string, u64, std::less<>>;

std::string describe_ref(const FieldReloc& r, const ElfFile& elf) {
  std::string base = !r.sym.name.empty() ? std::string(r.sym.name)
                     : r.sym.st_shndx < elf.sections().size() ? std::string(elf.section_name(r.sym.st_shndx))
                                                              : fmt::format("symbol {}", r.sym.index);
  if (r.addend == 0) return base;
  return r.addend > 0 ? fmt::format("{}+{:#x}", base, r.addend) : fmt::format("{}-{:#x}", base, -r.addend);
}

Result<std::string> read_name(const PatchObject& obj, const FieldReloc& r) {
  const ElfFile& elf = *obj.elf;
  if (!r.sym.defined() || r.sym.st_shndx >= elf.sections().size()) {
    return fail(ErrorKind::BadPayload, "name points at '{}', which is not a string in the patch", describe_ref(r, elf));
  }
  ByteView data = elf.section_data(r.sym.st_shndx);
  u64 off = r.sym.st_value + static_cast<u64>(r.addend);
  if (off >= data.size()) {
    return fail(ErrorKind::BadPayload, "name points at offset {:#x} of {}, past its end ({:#x})", off,
                elf.describe_section(r.sym.st_shndx), data.size());
  }
  auto begin = data.begin() + static_cast<ptrdiff_t>(off);
  auto nul = std::find(begin, data.end(), u8{0});
  if (nul == data.end()) {
    return fail(ErrorKind::BadPayload, "name at offset {:#x} of {} is not NUL-terminated", off,
                elf.describe_section(r.sym.st_shndx));
  }
  return std::string(begin, nul);
}

// st_size of the function a new_addr relocation points at.
Result<u64> new_function_size(const PatchObject& obj, const std::vector<ElfSymbol>& syms, const FieldReloc& r,
                              const GlobalFuncs& globals) {
  const ElfFile& elf = *obj.elf;
  if (!r.sym.defined()) {
    auto it = globals.find(r.sym.name);
    if (it == globals.end() || r.addend != 0) {
      return fail(ErrorKind::BadPayload, "new_addr refers to '{}', which no patch source defines as a function",
                  describe_ref(r, elf));
    }
    return it->second;
  }
  u64 place = r.sym.st_value + static_cast<u64>(r.addend);
  for (const ElfSymbol& s : syms) {
    if (s.type() == STT_FUNC && s.st_shndx == r.sym.st_shndx && s.st_value == place) return s.st_size;
  }
  return fail(ErrorKind::BadPayload, "new_addr points at '{}', which is not the start of a function",
              describe_ref(r, elf));
}

// Fills the zero sizes of one .livepatch.funcs section of one object.
Status fill_section(PatchObject& obj, size_t funcs_index, Target* target, const GlobalFuncs& globals,
                    std::vector<BuiltFunc>& out) {
  const ElfFile& elf = *obj.elf;
  const Elf64_Shdr& sh = elf.sections()[funcs_index];
  const std::string where = elf.describe_section(funcs_index);
  if (sh.sh_type == SHT_NOBITS) return fail(ErrorKind::BadPayload, "{} has no contents (SHT_NOBITS)", where);
  if (sh.sh_size % kFuncSize != 0) {
    return fail(ErrorKind::BadPayload, "{}: size {:#x} is not a multiple of {}", where, sh.sh_size, kFuncSize);
  }
  const size_t count = sh.sh_size / kFuncSize;

  // The relocations of this section, by offset.
  std::map<u64, FieldReloc> relocs;
  std::vector<ElfSymbol> syms;
  const auto& shdrs = elf.sections();
  for (size_t i = 1; i < shdrs.size(); ++i) {
    if (shdrs[i].sh_type != SHT_RELA || shdrs[i].sh_info != funcs_index) continue;
    syms = HS_TRY(elf.symbols(shdrs[i].sh_link));
    for (const Elf64_Rela& r : HS_TRY(elf.relocations(i))) {
      u32 sym_index = ELF64_R_SYM(r.r_info);
      if (sym_index >= syms.size()) {
        return fail(ErrorKind::BadPayload, "{}: relocation at {:#x}: symbol index {} is out of range ({})",
                    elf.describe_section(i), r.r_offset, sym_index, syms.size());
      }
      relocs[r.r_offset] = FieldReloc{static_cast<u32>(ELF64_R_TYPE(r.r_info)), syms[sym_index], r.r_addend};
    }
  }
  if (syms.empty()) {
    if (auto st = elf.symtab_index()) syms = HS_TRY(elf.symbols(*st));
  }

  ByteView data = elf.section_data(funcs_index);
  for (size_t i = 0; i < count; ++i) {
    const u64 base = i * kFuncSize;
    auto reloc_at = [&](u64 field) -> Result<const FieldReloc*> {
      auto it = relocs.find(base + field);
      if (it == relocs.end()) return nullptr;
      if (it->second.type != R_X86_64_64) {
        return fail(ErrorKind::BadPayload, "{}: entry {}: relocation type {} at offset {:#x}, expected R_X86_64_64",
                    where, i, it->second.type, base + field);
      }
      return &it->second;
    };
    auto literal = [&](u64 field) { return load_le<u64>(data.data() + base + field); };

    const FieldReloc* name_rel = HS_TRY(reloc_at(kFuncNameOff));
    if (!name_rel) return fail(ErrorKind::BadPayload, "{}: entry {}: name is not set", where, i);
    std::string name = HS_TRY_CTX(read_name(obj, *name_rel), fmt::format("{}: entry {}", where, i));
    const std::string ctx = fmt::format("'{}'", name);

    BuiltFunc f;
    f.name = name;
    f.new_size = load_le<u32>(data.data() + base + kFuncNewSizeOff);
    f.old_size = load_le<u32>(data.data() + base + kFuncOldSizeOff);

    const FieldReloc* new_rel = HS_TRY(reloc_at(kFuncNewAddrOff));
    if (!new_rel && literal(kFuncNewAddrOff) != 0) {
      return fail(ErrorKind::BadPayload, "{}: new_addr is the absolute value {:#x}, not a function of the patch", ctx,
                  literal(kFuncNewAddrOff));
    }
    f.nop = new_rel == nullptr;
    const bool old_given = HS_TRY(reloc_at(kFuncOldAddrOff)) != nullptr || literal(kFuncOldAddrOff) != 0;

    if (f.nop) {
      if (f.new_size == 0) return fail(ErrorKind::BadPayload, "{}: NOP-out of 0 bytes", ctx);
    } else if (f.new_size == 0) {
      u64 size = HS_TRY_CTX(new_function_size(obj, syms, *new_rel, globals), ctx);
      if (size == 0) {
        return fail(ErrorKind::BadPayload, "{}: new function '{}' has st_size 0 (give it a .size if written in assembler)",
                    ctx, describe_ref(*new_rel, elf));
      }
      if (size > UINT32_MAX) return fail(ErrorKind::BadPayload, "{}: new function size {:#x} is too large", ctx, size);
      f.new_size = static_cast<u32>(size);
      f.new_size_filled = true;
    }

    if (f.old_size == 0 && !old_given) {
      if (!target) {
        return fail(ErrorKind::Usage, "{}: old_size is 0 and no target binary was given to look it up", ctx);
      }
      const ObjectSymbols* tsyms = HS_TRY(target->syms());
      TargetSymbol ts = HS_TRY_CTX(tsyms->lookup(name), fmt::format("cannot patch {}", ctx));
      const u64 addr = ts.addr.value();
      auto sec = target->exec_section_at(addr);
      if (!sec) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: {:#x} in {} is not in an executable section", ctx, addr,
                    target->path);
      }
      if (ts.size == 0) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: it has st_size 0 in {}; give old_size in the source", ctx,
                    target->path);
      }
      if (ts.size > UINT32_MAX) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: size {:#x} in {} is too large", ctx, ts.size, target->path);
      }
      f.old_size = static_cast<u32>(ts.size);
      f.old_size_filled = true;

      // The patch site starts after an endbr64; say now if it cannot fit.
      const bool endbr = target->starts_with_endbr(*sec, addr);
      const u32 skip = endbr ? static_cast<u32>(x86_64::kEndbrSize) : 0;
      const u32 site = f.nop ? f.new_size : static_cast<u32>(x86_64::kJumpSize);
      if (f.old_size < skip + site) {
        return fail(ErrorKind::BadTarget, "cannot patch {}: it is {} bytes in {}, too short for {} bytes{}", ctx,
                    f.old_size, target->path, site, endbr ? " after its endbr64" : "");
      }
    }
    if (f.nop && f.old_size != 0 && f.new_size > f.old_size) {
      return fail(ErrorKind::BadPayload, "{}: NOP-out of {} bytes is longer than the function ({} bytes)", ctx,
                  f.new_size, f.old_size);
    }

    store_le<u32>(obj.bytes.data() + sh.sh_offset + base + kFuncNewSizeOff, f.new_size);
    store_le<u32>(obj.bytes.data() + sh.sh_offset + base + kFuncOldSizeOff, f.old_size);
    out.push_back(std::move(f));
  }
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
  if (!opts.target.empty()) target.emplace(HS_TRY(open_target(opts.target)));
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
    std::vector<std::string> argv = {opts.cc, "-O2", "-fPIC", "-ffunction-sections", "-fdata-sections", "-fno-common",
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
      HS_CHECK_CTX(fill_section(obj, i, target ? &*target : nullptr, globals, built), obj.source);
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
    return with_context(std::move(checked.error()),
                        fmt::format("the built payload does not validate (kept in {})", tmp.path()));
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
    }
    report.funcs.push_back(std::move(f));
  }
  if (opts.keep_temps) report.temp_dir = tmp.path();
  return report;
}

}  // namespace hs
