// The payload builder, hand-written mode: the patch is C written by hand.
//
// The author writes the new function(s) in C and says what each replaces with
// the macros of <hotsplice/livepatch.h>. build_payload() then runs these passes:
//
//   1. read the target binary's build-id (and, when stacking, the earlier
//      payload's build-id and object_depends; they must agree with the target)
//   2. compile each source:  cc -O2 -fPIC -ffunction-sections -fdata-sections
//                               -fno-common -I<include dir> <cflags> -c
//      (C++ sources, by extension, with cxx instead of cc)
//   3. fill in the sizes left at 0 in each object's .livepatch.funcs:
//      new_size = st_size of the function new_addr points at,
//      old_size = st_size of the target's function (ObjectSymbols lookup, so
//      "f", "f,2" and "file.c#f" all work); NOP entries keep their new_size
//   4. write the dependency notes (.livepatch.depends, .livepatch.object_depends)
//      as an assembler file and assemble it
//   5. ld -r --build-id=sha1 the objects into the payload
//   6. check the result with Payload::open() before it replaces `output`
//
// Subprocesses run through fork/execvp (no shell); their output is captured so
// a failed compile reports the compiler's first error line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "elf/debug_file.h"
#include "support/bytes.h"
#include "support/error.h"

namespace hs {

struct BuildOptions {
  std::vector<std::string> sources;            // patch sources (C, or anything cc compiles)
  std::string target;                          // target binary or .so
  std::string output;                          // payload file to write
  std::optional<std::string> depends_payload;  // stack on an earlier payload
  std::vector<std::string> cflags;             // appended after the builder's own flags
  std::string cc = "gcc";
  std::string cxx = "g++";                     // for sources ending .cc .cpp .cxx .C
  std::string ld = "ld";
  bool keep_temps = false;                     // keep the temporary directory (reported)
  DebugSearch debug;                           // a stripped target's debug file (--debug-dir)
};

struct BuiltFunc {
  std::string name;      // as written in the source ("hello", "twin,2", "dup_a.c#twin")
  std::string symbol;    // the target's symbol, when the name is another spelling ("parse.isra.0", "_ZN2ns1fEi")
  std::vector<std::string> other_copies;  // GCC's copies of it this payload does not replace ("parse.part.0")
  bool nop = false;      // new_addr 0: NOP out new_size bytes
  u32 new_size = 0;
  u32 old_size = 0;
  bool new_size_filled = false;  // the builder wrote new_size (it was 0)
  bool old_size_filled = false;  // the builder wrote old_size (it was 0)
};

struct BuildReport {
  std::string output;
  Bytes build_id;        // the payload's own (.note.gnu.build-id)
  Bytes depends;         // .livepatch.depends
  Bytes object_depends;  // .livepatch.object_depends
  std::vector<BuiltFunc> funcs;
  std::string temp_dir;  // set when keep_temps, else empty (removed)
};

// Whether `source` is C++ by its extension (.cc .cpp .cxx .C), so the builder
// compiles it with BuildOptions::cxx.
bool is_cxx_source(const std::string& source);

// Builds a payload. Errors: Usage (bad options), BadTarget (target unreadable,
// no build-id, unknown/ambiguous function, build-id mismatch with the earlier
// payload), BadPayload (the patch's .livepatch.funcs is malformed, or the
// result fails validation), Io (a tool failed: "compiling fix.c failed: ...").
Result<BuildReport> build_payload(const BuildOptions& opts);

// The directory holding hotsplice/livepatch.h: $HOTSPLICE_INCLUDE, else
// <exe dir>/../include, else the source tree's include/ (compiled in).
Result<std::string> find_include_dir();

// One subprocess run (exposed for tests and for the diff-mode builder).
struct ToolRun {
  int exit_status = 0;   // exit code, or 128 + signal number
  std::string output;    // stdout and stderr, interleaved
};
// Runs argv[0] (PATH lookup) with LC_ALL=C, waits for it. Only a failure to
// start it is an error (Io "cannot run 'gcc': ..."); a non-zero exit is not.
Result<ToolRun> run_tool(const std::vector<std::string>& argv);

}  // namespace hs
