// Unified diffs: parsing, the -p level, applying hunks, line mapping (see
// patch_file.h). Written for the diffs `hotsplice build --patch` takes;
// no fuzz: a hunk's context must match exactly, as a security fix should.
#include "builder/patch_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>

namespace hs {

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  return lines;
}

// "--- a/x.c\t2024-01-01 ..." -> "a/x.c"
std::string header_path(std::string_view rest) {
  size_t tab = rest.find('\t');
  if (tab != std::string_view::npos) rest = rest.substr(0, tab);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return std::string(rest);
}

bool parse_range(std::string_view s, u32& start, u32& count) {
  size_t comma = s.find(',');
  std::string_view a = s.substr(0, comma);
  if (std::from_chars(a.data(), a.data() + a.size(), start).ec != std::errc() ) return false;
  count = 1;
  if (comma != std::string_view::npos) {
    std::string_view b = s.substr(comma + 1);
    auto r = std::from_chars(b.data(), b.data() + b.size(), count);
    if (r.ec != std::errc() || r.ptr != b.data() + b.size()) return false;
  }
  return true;
}

// "@@ -a,b +c,d @@ context"
bool parse_hunk_header(std::string_view line, DiffHunk& h) {
  if (!line.starts_with("@@ -")) return false;
  size_t end = line.find(" @@", 3);
  if (end == std::string_view::npos) return false;
  h.header = std::string(line.substr(0, end + 3));
  std::string_view body = line.substr(4, end - 4);  // "a,b +c,d"
  size_t sp = body.find(" +");
  if (sp == std::string_view::npos) return false;
  return parse_range(body.substr(0, sp), h.old_start, h.old_count) &&
         parse_range(body.substr(sp + 2), h.new_start, h.new_count);
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<PatchFile> parse_patch(std::string_view text, const std::string& name) {
  PatchFile patch;
  patch.path = name;
  const auto lines = split_lines(text);
  size_t i = 0;
  while (i < lines.size()) {
    std::string_view line = lines[i];
    if (line.starts_with("GIT binary patch") || line.starts_with("Binary files ")) {
      return fail(ErrorKind::BadPayload, "patch {}: line {}: binary diffs are not supported", name, i + 1);
    }
    if (!(line.starts_with("--- ") && i + 1 < lines.size() && lines[i + 1].starts_with("+++ "))) {
      ++i;
      continue;
    }
    FileDiff f;
    f.old_path = header_path(line.substr(4));
    f.new_path = header_path(lines[i + 1].substr(4));
    i += 2;
    while (i < lines.size() && lines[i].starts_with("@@")) {
      DiffHunk h;
      if (!parse_hunk_header(lines[i], h)) {
        return fail(ErrorKind::BadPayload, "patch {}: line {}: malformed hunk header '{}'", name, i + 1, lines[i]);
      }
      ++i;
      u32 old_left = h.old_count, new_left = h.new_count;
      while (old_left > 0 || new_left > 0) {
        if (i >= lines.size()) {
          return fail(ErrorKind::BadPayload, "patch {}: hunk {} of {} ends early (line {})", name, h.header,
                      f.new_path, i + 1);
        }
        std::string_view l = lines[i];
        char c = l.empty() ? ' ' : l[0];  // some tools strip the blank of an empty context line
        std::string_view rest = l.empty() ? l : l.substr(1);
        if (c == '\\') {
          ++i;
          continue;
        }
        if (c == ' ' && old_left > 0 && new_left > 0) {
          --old_left;
          --new_left;
        } else if (c == '-' && old_left > 0) {
          --old_left;
        } else if (c == '+' && new_left > 0) {
          --new_left;
        } else {
          return fail(ErrorKind::BadPayload, "patch {}: line {}: '{}' does not fit hunk {} of {}", name, i + 1, l,
                      h.header, f.new_path);
        }
        h.lines.push_back(std::string(1, c) + std::string(rest));
        ++i;
      }
      // "\ No newline at end of file" right after the hunk's last line(s).
      while (i < lines.size() && lines[i].starts_with("\\")) {
        char last = h.lines.empty() ? ' ' : h.lines.back()[0];
        if (last != '+') h.old_no_newline = true;
        if (last != '-') h.new_no_newline = true;
        ++i;
      }
      f.hunks.push_back(std::move(h));
    }
    if (f.hunks.empty()) {
      return fail(ErrorKind::BadPayload, "patch {}: no hunk after the header of {}", name, f.new_path);
    }
    patch.files.push_back(std::move(f));
  }
  if (patch.files.empty()) return fail(ErrorKind::BadPayload, "patch {}: no unified diff found in it", name);
  return patch;
}

std::optional<std::string> strip_components(std::string_view path, int n) {
  for (int k = 0; k < n; ++k) {
    size_t slash = path.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    path = path.substr(slash + 1);
    while (path.starts_with('/')) path.remove_prefix(1);
  }
  if (path.empty()) return std::nullopt;
  return std::string(path);
}

Result<int> detect_strip(const PatchFile& patch, const std::string& root) {
  bool any_existing = false;
  for (const FileDiff& f : patch.files) any_existing |= !f.creates();
  if (!any_existing) {
    const FileDiff& f = patch.files.front();
    return f.new_path.starts_with("b/") ? 1 : 0;
  }
  for (int n = 0; n <= 4; ++n) {
    bool all = true;
    for (const FileDiff& f : patch.files) {
      if (f.creates()) continue;
      auto p = strip_components(f.old_path, n);
      auto q = strip_components(f.new_path, n);
      if (!(p && exists(root + "/" + *p)) && !(q && exists(root + "/" + *q))) {
        all = false;
        break;
      }
    }
    if (all) return n;
  }
  const FileDiff& f = *std::find_if(patch.files.begin(), patch.files.end(), [](const FileDiff& d) { return !d.creates(); });
  return fail(ErrorKind::BadTarget, "patch {}: cannot find {} in {} at any -p level from 0 to 4; give --strip N",
              patch.path, f.old_path, root);
}

Result<std::string> diff_target_path(const PatchFile& patch, const FileDiff& f, int strip) {
  const std::string& raw = f.deletes() ? f.old_path : f.new_path;
  auto p = strip_components(raw, strip);
  if (!p) return fail(ErrorKind::BadTarget, "patch {}: path {} has no more than {} components (-p{})", patch.path, raw, strip, strip);
  if (p->starts_with("/") || *p == ".." || p->starts_with("../") || p->find("/../") != std::string::npos) {
    return fail(ErrorKind::BadTarget, "patch {}: path {} leaves the source tree", patch.path, *p);
  }
  return *p;
}

Result<std::string> apply_file_diff(const std::string& content, const FileDiff& f, const std::string& patch_name,
                                    const std::string& shown_path) {
  std::vector<std::string> lines;
  bool final_newline = true;
  {
    size_t pos = 0;
    while (pos < content.size()) {
      size_t end = content.find('\n', pos);
      if (end == std::string::npos) {
        lines.emplace_back(content.substr(pos));
        final_newline = false;
        break;
      }
      lines.emplace_back(content.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  long shift = 0;      // where hunks were found vs their stated lines, carried to the next
  size_t floor = 0;    // hunks apply in order: never before the end of the previous one
  for (size_t hi = 0; hi < f.hunks.size(); ++hi) {
    const DiffHunk& h = f.hunks[hi];
    std::vector<std::string> old_side, new_side;
    for (const std::string& l : h.lines) {
      if (l[0] != '+') old_side.push_back(l.substr(1));
      if (l[0] != '-') new_side.push_back(l.substr(1));
    }
    auto matches_at = [&](size_t at) {
      if (at < floor || at + old_side.size() > lines.size()) return false;
      for (size_t k = 0; k < old_side.size(); ++k)
        if (lines[at + k] != old_side[k]) return false;
      return true;
    };
    long stated = static_cast<long>(h.old_start) - (h.old_count == 0 ? 0 : 1) + shift;
    std::optional<size_t> found;
    for (long d = 0; d <= static_cast<long>(lines.size()) + 1 && !found; ++d) {
      for (long at : {stated - d, stated + d}) {
        if (at >= 0 && matches_at(static_cast<size_t>(at))) {
          found = static_cast<size_t>(at);
          break;
        }
      }
    }
    if (!found) {
      // Say which line of the hunk first differs at its stated place.
      std::string why = "its lines are not in the file";
      size_t at = stated < 0 ? 0 : static_cast<size_t>(stated);
      for (size_t k = 0; k < old_side.size(); ++k) {
        if (at + k >= lines.size()) {
          why = fmt::format("the file ends at line {}", lines.size());
          break;
        }
        if (lines[at + k] != old_side[k]) {
          why = fmt::format("line {} is not '{}'", at + k + 1, old_side[k]);
          break;
        }
      }
      return fail(ErrorKind::BadTarget, "patch {}: hunk #{} ({}) of {} does not apply: {}", patch_name, hi + 1, h.header,
                  shown_path, why);
    }
    lines.erase(lines.begin() + static_cast<long>(*found), lines.begin() + static_cast<long>(*found + old_side.size()));
    lines.insert(lines.begin() + static_cast<long>(*found), new_side.begin(), new_side.end());
    floor = *found + new_side.size();
    shift += static_cast<long>(*found) - stated + static_cast<long>(new_side.size()) - static_cast<long>(old_side.size());
    if (hi + 1 == f.hunks.size() && floor == lines.size()) {
      if (h.new_no_newline) final_newline = false;
      else if (h.old_no_newline) final_newline = true;
    }
  }
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    out += lines[k];
    if (k + 1 < lines.size() || final_newline) out += '\n';
  }
  return out;
}

std::optional<u32> map_line(const FileDiff& f, u32 old_line) {
  long delta = 0;
  for (const DiffHunk& h : f.hunks) {
    u32 first = h.old_count == 0 ? h.old_start + 1 : h.old_start;
    if (old_line < first) break;
    if (old_line < first + h.old_count) {
      u32 o = h.old_start, n = h.new_start;
      for (const std::string& l : h.lines) {
        if (l[0] == ' ') {
          if (o == old_line) return n;
          ++o, ++n;
        } else if (l[0] == '-') {
          if (o == old_line) return std::nullopt;
          ++o;
        } else {
          ++n;
        }
      }
      return std::nullopt;
    }
    delta += static_cast<long>(h.new_count) - static_cast<long>(h.old_count);
  }
  return static_cast<u32>(static_cast<long>(old_line) + delta);
}

}  // namespace hs
