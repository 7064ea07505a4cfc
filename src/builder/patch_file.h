// Unified diffs for `hotsplice build --patch`: parsing what `git diff`,
// `diff -u` and distribution patch series write, finding the -p level the
// paths need in a source tree, applying the hunks (exact context, the hunk
// searched for near its stated line like patch(1) without fuzz), and the
// old -> new line mapping a patch implies (to tell a __LINE__-only change).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/bytes.h"
#include "support/error.h"

namespace hs {

struct DiffHunk {
  u32 old_start = 0, old_count = 0;  // as the "@@ -a,b +c,d @@" line says
  u32 new_start = 0, new_count = 0;
  std::string header;                // that line, up to the second "@@"
  std::vector<std::string> lines;    // each begins with ' ', '-' or '+'
  bool old_no_newline = false;       // "\ No newline at end of file" after the old side's last line
  bool new_no_newline = false;       // ... after the new side's
};

struct FileDiff {
  std::string old_path, new_path;  // as written after "--- " / "+++ " (no timestamp); "/dev/null" for none
  std::vector<DiffHunk> hunks;
  bool creates() const { return old_path == "/dev/null"; }
  bool deletes() const { return new_path == "/dev/null"; }
};

struct PatchFile {
  std::string path;  // the patch file, for messages
  std::vector<FileDiff> files;
};

// Parses a unified diff. Text outside file diffs (a mail header, "diff --git",
// "index" lines) is skipped. Errors (BadPayload): a malformed hunk, naming
// the patch file and its line; a git binary patch; no file diff at all.
Result<PatchFile> parse_patch(std::string_view text, const std::string& name);

// `path` without its first `n` components ("a/src/x.c", 1 -> "src/x.c");
// nullopt if it has no more than n components.
std::optional<std::string> strip_components(std::string_view path, int n);

// The -p level for `patch` in the tree at `root`: the smallest n (0..4) at
// which every file the patch changes or deletes exists under root (files it
// only creates: "a/"+"b/" prefixes mean 1, else 0). Errors (BadTarget): no
// level fits, naming the first file not found at -p0 and -p1.
Result<int> detect_strip(const PatchFile& patch, const std::string& root);

// The path under the tree a file diff applies to at level `strip`.
Result<std::string> diff_target_path(const PatchFile& patch, const FileDiff& f, int strip);

// Applies one file diff to `content` (the file's bytes, empty for a created
// file). A hunk whose old lines are not found: BadTarget "patch P: hunk #N
// (@@ -a,b +c,d @@) of PATH does not apply: ...".
Result<std::string> apply_file_diff(const std::string& content, const FileDiff& f, const std::string& patch_name,
                                    const std::string& shown_path);

// Where line `old_line` (1-based) of the file before `f` is after it, by
// the hunk headers; nullopt for a line the diff removes.
std::optional<u32> map_line(const FileDiff& f, u32 old_line);

}  // namespace hs
