// Where a payload's mapping goes in the target, and what it is called.
//
// A payload must be mapped so that every byte of it is within rel32 reach
// (±2 GiB) of every byte of the object it patches: the `jmp rel32` written at
// each patched function and the payload's PC-relative references to the
// object's globals both depend on it. choose_base() picks a free range from
// the process's memory map, below the object when there is room (above an
// executable sits its heap, which must stay free to grow), else above it.
//
// The mapping is a memfd named after the payload, so that a later invocation
// (a repair, the activeness check) recognises it as hotsplice's and whose.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "process/process.h"
#include "support/error.h"
#include "support/remote_ptr.h"

namespace hs {

// A page-aligned base for `size` bytes in a gap of `maps` (the target's
// mappings, in any order), with at least 16 pages free on either side,
// at or above 1 MiB, within reach of `object`: the highest such base below the object, else
// the highest in the lowest gap above it. BadTarget if there is none.
Result<RemoteAddr> choose_base(const std::vector<MapEntry>& maps, RemoteRange object, u64 size);

// The name of a payload's memfd ("hotsplice:NAME"; /proc/PID/maps shows
// "/memfd:hotsplice:NAME (deleted)").
std::string payload_mapping_name(std::string_view payload);

}  // namespace hs
