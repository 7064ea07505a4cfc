// The compiler wrapper of `hotsplice build --patch`: a mode of the hotsplice
// binary itself, chosen when it is run under the name gcc, cc, g++ or c++
// with HOTSPLICE_WRAP_LOG set (the builder puts symlinks by those names in a
// directory of its own, first on PATH, and points CC / CXX at them). It runs
// the real compiler (HOTSPLICE_WRAP_CC / HOTSPLICE_WRAP_CXX) with
// -ffunction-sections -fdata-sections added and, for each object a `-c`
// compile wrote, appends one line to the log: the object, the source, the
// directory and the full command line.
//
// Why a mode of the binary rather than a separate program: nothing more to
// install or find, and the wrapper is always the builder's own version.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "support/error.h"

namespace hs {

inline constexpr const char* kWrapLogEnv = "HOTSPLICE_WRAP_LOG";
inline constexpr const char* kWrapCcEnv = "HOTSPLICE_WRAP_CC";
inline constexpr const char* kWrapCxxEnv = "HOTSPLICE_WRAP_CXX";

// The wrapper's names: the symlinks the builder makes.
inline constexpr const char* kWrapperNames[] = {"gcc", "cc", "g++", "c++"};

// If this process was started as the wrapper, runs the real compiler and
// returns its exit status; otherwise nullopt (main goes on). Called first
// thing in main().
std::optional<int> run_as_compiler_wrapper(int argc, char** argv);

// One object a wrapped compile wrote.
struct CompiledObject {
  std::string output;             // absolute path of the .o
  std::string source;             // absolute path of the source
  std::string cwd;                // where the compiler ran
  std::vector<std::string> argv;  // the command as the build ran it (argv[0] the wrapper's name)
};

// The objects a log holds, in order; a later line for the same object
// replaces the earlier one. A missing log is an empty list.
Result<std::vector<CompiledObject>> read_wrapper_log(const std::string& path);

// The object files a compile command line writes and their sources
// ("-c x.c -o y.o" -> {y.o, x.c}; "-c a.c b.c" -> {a.o, a.c}, {b.o, b.c});
// empty when it writes none (no -c: a link, -E, -S, -M). Paths as written.
std::vector<std::pair<std::string, std::string>> compile_outputs(const std::vector<std::string>& args);

}  // namespace hs
