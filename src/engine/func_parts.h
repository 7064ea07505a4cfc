// What a replaced function is in its object, beyond its entry: the symbol a
// source name stood for ("parse" -> "parse.isra.0") and the cold parts GCC
// split out of it ("parse.cold"), recorded at upload (make_record) and by
// recover, so that list shows the real symbol and the activeness check of an
// apply guards the cold code too (plan_apply).
#pragma once

#include "engine/registry.h"
#include "process/objects.h"

namespace hs {

// Fills f.symbol and f.cold from obj's symbols (f.name, f.old_addr set).
// Best effort: an object whose symbols cannot be read leaves them empty
// (its lookups would have failed first).
void describe_function_parts(FuncState& f, const MappedObject& obj);

}  // namespace hs
