// Source names of symbols: how a patch author may name a function that the
// symbol table spells otherwise. C++ names demangled
// ("ns::Conn::send(char const*, unsigned long)" for _ZN2ns4Conn4sendEPKcm),
// and GCC's renamed copies of a function ("parse.isra.0", "parse.constprop.1",
// "parse.part.0", and the cold part "parse.cold" it splits out of "parse").
// The pieces here are pure string functions; ObjectSymbols (symbols.h) builds
// its lazy index of source names with them (source_names.cc).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace hs {

// A symbol name split into its source name and the suffixes GCC appends to
// the copies it makes: "parse.isra.0" -> {"parse", ".isra.0", cold=false},
// "parse.part.0.cold" -> {"parse", ".part.0.cold", cold=true}. Recognised
// suffixes, repeatable, each optionally followed by ".N": .isra, .constprop,
// .part, .cold, .lto_priv, .localalias, .specialized. nullopt when `name` has
// none (or is not of that shape: ".L1", "a.b").
struct CloneName {
  std::string_view base;
  std::string_view suffix;  // from the first '.' on
  bool cold = false;        // the last suffix is .cold (or .cold.N): not an entry point
};
std::optional<CloneName> split_clone(std::string_view name);

// The C++ demangling of an Itanium-ABI symbol name ("_Z..."), by the
// compiler runtime's abi::__cxa_demangle; nullopt if it is not one.
std::optional<std::string> demangle(std::string_view mangled);

// A demangled function or variable name in its three spellings a patch may use:
//   full       "int ns::max<int>(int, int)"   as the demangler prints it
//   signature  "ns::max<int>(int, int)"       without a template's return type
//   qualified  "ns::max<int>"                 without the parameters either
// Qualifiers after the parameters (" const", " &&") stay with the signature.
struct DemangledName {
  std::string full, signature, qualified;
};
DemangledName split_demangled(std::string_view demangled);

// The spelling used to compare names: white space is dropped except a single
// space between two identifier characters ("char const *" -> "char const*",
// "vector<int> >" -> "vector<int>>", "f(int, int)" -> "f(int,int)").
std::string normalize_name(std::string_view name);

// True if `name` can only be a demangled C++ name: it contains "::", '(',
// '<' or a space, which no symbol a compiler emits does.
bool looks_demangled(std::string_view name);

// The Levenshtein distance between a and b, or limit + 1 if it is larger
// (so the near-miss search stays cheap on large tables).
size_t edit_distance(std::string_view a, std::string_view b, size_t limit);

}  // namespace hs
