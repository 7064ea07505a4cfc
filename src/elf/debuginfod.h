// Asking debuginfod for a debug file by build-id, through elfutils'
// libdebuginfod, which honours DEBUGINFOD_URLS, DEBUGINFOD_CACHE_PATH,
// DEBUGINFOD_TIMEOUT and the rest of its environment. The library is loaded
// with dlopen on first use: linking it would make every hotsplice start map
// libcurl and its TLS stack (about 3 ms a run), for the rare stripped object
// whose debug file is not on disk.
#pragma once

#include <optional>
#include <string>

#include "support/bytes.h"

namespace hs {

struct DebuginfodAnswer {
  std::optional<std::string> path;  // the debug file (in debuginfod's cache)
  // For messages when there is no path: "debuginfod not configured
  // (DEBUGINFOD_URLS is unset)", "debuginfod (URLS) has none: ...".
  std::string said;
};

// Nothing is asked (no library loaded, no network) when DEBUGINFOD_URLS is
// unset or empty.
DebuginfodAnswer ask_debuginfod(ByteView build_id);

}  // namespace hs
