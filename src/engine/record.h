// The registry record of a payload: what upload commits to the registry.
//
// Once a payload is linked at its base, everything an apply, revert or
// repair will need is computed here and kept in its PayloadRecord
// (registry.h), so no later operation reads the payload file: its mapping
// and regions, exports, hooks (linked address and symbol name), .eh_frame
// location, and per replaced function where the patch goes (after an
// endbr64), the bytes that go there (jmp rel32 or NOPs), the bytes it
// expects, and the direct call sites found in the object's file
// (call_sites.h).
#pragma once

#include <string>
#include <string_view>

#include "engine/registry.h"
#include "payload/loader.h"
#include "payload/payload.h"
#include "process/objects.h"

namespace hs {

// The record of `payload` (read from `file`, to be named `name`) as linked
// at `linked.base` against `obj`, reading the first bytes of each replaced
// function from `proc`. BadPayload for a function too short for its patch.
Result<PayloadRecord> make_record(const Process& proc, std::string_view name, const std::string& file,
                                  const Payload& payload, const MappedObject& obj, const LinkedPayload& linked);

}  // namespace hs
