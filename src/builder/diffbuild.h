// `hotsplice build --source DIR --patch FILE... --build-cmd CMD`: the payload
// builder's diff mode (issue 11). What it does so far:
//
//   1. parse the patches and find each one's -p level in DIR (or --strip N)
//   2. copy DIR (cp -a: timestamps kept) to <tmp>/original and run CMD there
//      (`sh -c`, in the copy's root) through the compiler wrapper
//      (wrapper.h: CC, CXX and gcc/cc/g++/c++ on PATH), which adds
//      -ffunction-sections -fdata-sections and logs every object
//   3. copy the built original to <tmp>/patched, apply the patches in order,
//      run CMD again: only what the patches touched is recompiled
//   4. compare each object the second build wrote with its original
//      (compare.h); an object the first build did not write (DIR held it
//      already) is first compiled in the original tree by the same command
//
//   5. when something changed and nothing was refused: the payload, from
//      the changed and new functions (payload_gen.h) through build_payload
//
// DIR itself is never written.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "builder/builder.h"
#include "builder/compare.h"
#include "builder/wrapper.h"
#include "support/error.h"

namespace hs {

struct DiffBuildOptions {
  std::string source_dir;
  std::vector<std::string> patches;
  std::string build_cmd;
  std::string target;
  std::string output;
  std::optional<std::string> depends_payload;
  std::string name;
  std::optional<int> strip;  // --strip N; else detected per patch
  bool keep_temps = false;
};

struct PhaseTime {
  std::string name;  // "copy", "original build", "patch", "patched build", "compare"
  double seconds = 0;
};

struct AppliedPatch {
  std::string file;
  int strip = 0;
  bool strip_detected = true;
  std::vector<std::string> files;  // tree paths it changed
};

struct ObjectReport {
  std::string object;  // relative to the tree
  std::string source;  // relative to the tree
  bool created = false;  // no original object (a file the patch adds)
  ObjectDiff diff;
};

struct DiffBuildReport {
  std::vector<PhaseTime> phases;
  std::vector<AppliedPatch> patches;
  size_t original_compiles = 0;        // objects the original build compiled
  std::vector<ObjectReport> objects;   // each object the patched build compiled
  std::string temp_dir;                // when kept
  std::optional<BuildReport> payload;  // written when there were changes and no refusal
  std::string payload_error;           // else why the payload could not be made (the report stands)
  size_t changed() const;              // changed + new functions
  size_t refused() const;
};

// Runs steps 1-4. Errors: Usage (options), BadTarget (target unreadable,
// a patch that does not apply, no -p level fits), BadPayload (a malformed
// patch), Io (a copy or the build command failed: its first error line).
Result<DiffBuildReport> diff_build(const DiffBuildOptions& opts);

// Relative path of `path` under `root` ("." for root itself, as is if not under it).
std::string relative_to(const std::string& path, const std::string& root);

}  // namespace hs
