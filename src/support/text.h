// Text that came from a target or a payload, made safe to show.
//
// Names, paths and .modinfo values read back from a process's registry or a
// payload file are arbitrary bytes: a hostile target can put terminal escape
// sequences in them, or bytes that are not UTF-8 and that a JSON encoder
// refuses. Everything hotsplice prints from such a source goes through one
// of these two functions.
//
// For the terminal, valid UTF-8 that prints as itself is kept; every other
// byte or character is written as an escape: C0 controls, DEL and C1
// controls as \xNN (\n, \t, \r as such), bytes that are not UTF-8 as \xNN,
// Unicode's bidirectional overrides and isolates as \u{NNNN}. A backslash
// stays as it is, as in the payload reader's own messages: the terminal form
// is for people; the JSON form is the exact one.
//
// For JSON, a string that is valid UTF-8 is kept as it is (the encoder
// escapes its control characters); one that is not has each byte that is not
// part of a valid UTF-8 sequence written as the four characters \xNN and
// each backslash doubled. The README documents this.
#pragma once

#include <string>
#include <string_view>

namespace hs {

bool is_valid_utf8(std::string_view s);

std::string escape_for_terminal(std::string_view s);

std::string escape_for_json(std::string_view s);

}  // namespace hs
