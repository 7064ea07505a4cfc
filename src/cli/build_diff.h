// The `build --source DIR --patch FILE...` subcommand's output: runs the
// diff-mode builder (builder/diffbuild.h) and prints what it found, as text
// or one JSON object (--json). Kept out of main.cc, which other work edits.
#pragma once

#include "builder/diffbuild.h"

namespace hs {

// Returns the exit code: 1 with "no changes" when the patches change no
// function, 1 while writing the payload is not done yet, the error's code
// on failure.
int run_diff_build(const DiffBuildOptions& opts, bool json);

}  // namespace hs
