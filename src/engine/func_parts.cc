// A replaced function's symbol and cold parts: see func_parts.h.
#include "engine/func_parts.h"

namespace hs {

void describe_function_parts(FuncState& f, const MappedObject& obj) {
  auto syms = obj.symbols();
  if (!syms) return;
  const RemoteAddr entry(f.old_addr);
  // The symbol the name stood for, else (old_addr given by the payload) the
  // one starting there.
  std::string symbol;
  if (auto r = (*syms)->lookup_function(f.name); r && r->addr == entry) {
    symbol = r->name;
  } else if (auto s = (*syms)->symbolize(entry); s && s->second.addr == entry) {
    symbol = s->first;
  }
  if (symbol.empty()) return;
  if (symbol != f.name) f.symbol = symbol;
  for (const RemoteRange& c : (*syms)->cold_parts(symbol, entry)) f.cold.emplace_back(c.begin.value(), c.size());
}

}  // namespace hs
