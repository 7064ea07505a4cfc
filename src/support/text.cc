// Escaping of untrusted text for the terminal and for JSON (see text.h).
#include "support/text.h"

#include <fmt/format.h>

namespace hs {

namespace {

// The length of the valid UTF-8 sequence starting at s[i] and its code
// point, or 0 if s[i] does not start one (overlong forms, surrogates and
// values past U+10FFFF are not valid).
size_t utf8_sequence(std::string_view s, size_t i, char32_t& cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len;
  char32_t min;
  if ((b0 & 0xe0) == 0xc0) {
    len = 2;
    cp = b0 & 0x1f;
    min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3;
    cp = b0 & 0x0f;
    min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool is_bidi_control(char32_t cp) {
  return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e || cp == 0x200f ||
         cp == 0x061c;
}

void append_byte_escape(std::string& out, unsigned char b) { out += fmt::format("\\x{:02x}", b); }

// Calls `valid(code point, its bytes)` for each valid UTF-8 sequence of `s`
// and `invalid(byte)` for each byte that does not start one.
template <class Valid, class Invalid>
void for_each_sequence(std::string_view s, Valid valid, Invalid invalid) {
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    const size_t n = utf8_sequence(s, i, cp);
    if (n == 0) {
      invalid(static_cast<unsigned char>(s[i]));
      i++;
    } else {
      valid(cp, s.substr(i, n));
      i += n;
    }
  }
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  bool valid = true;
  for_each_sequence(s, [](char32_t, std::string_view) {}, [&](unsigned char) { valid = false; });
  return valid;
}

std::string escape_for_terminal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for_each_sequence(
      s,
      [&](char32_t cp, std::string_view bytes) {
        if (cp == '\n')
          out += "\\n";
        else if (cp == '\t')
          out += "\\t";
        else if (cp == '\r')
          out += "\\r";
        else if (cp < 0x20 || cp == 0x7f)
          append_byte_escape(out, static_cast<unsigned char>(cp));
        else if ((cp >= 0x80 && cp < 0xa0) || is_bidi_control(cp))  // C1 controls (CSI is U+009B), bidi
          out += fmt::format("\\u{{{:04x}}}", static_cast<unsigned>(cp));
        else
          out.append(bytes);
      },
      [&](unsigned char b) { append_byte_escape(out, b); });
  return out;
}

std::string escape_for_json(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for_each_sequence(
      s, [&](char32_t cp, std::string_view bytes) { cp == '\\' ? out.append("\\\\") : out.append(bytes); },
      [&](unsigned char b) { append_byte_escape(out, b); });
  return out;
}

}  // namespace hs
