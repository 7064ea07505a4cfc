// Payloads compiled at test time the way `hotsplice build` compiles them
// (gcc -O2 -fPIC -ffunction-sections -fdata-sections, the build-id notes,
// ld -r --build-id=sha1), without a target: for the unit tests of the ELF
// reader, the payload parser and the loader.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "support/bytes.h"
#include "support/files.h"

namespace hs::test {

// A GNU build-id note in assembler (20 bytes of `fill`), for
// `.livepatch.depends` and friends.
std::string note_asm(std::string_view section, u8 fill);

// Compiles `source` (with -I include/ and `cflags`) and the assembler
// `notes` into DIR/NAME.lp. Returns its path, or what failed with the
// compiler's and linker's output.
std::expected<std::string, std::string> compile_payload(const std::string& dir, std::string_view name,
                                                        std::string_view source, std::string_view notes,
                                                        std::string_view cflags = "");

// The patch source of the good payload: two replacements (one with an
// expectation), one NOP-out, metadata, a load hook and a pre-apply hook.
inline constexpr std::string_view kPatchSource = R"(#include <hotsplice/livepatch.h>
int helper_global = 5;
static int fixed_hello(void) { return 2 + helper_global; }
int fixed_other(int x) { return x * 3 + helper_global; }
static void on_load(void) { helper_global = 1; }
static int pre(void *p) { (void)p; return 0; }
HOTSPLICE_REPLACE("hello", fixed_hello);
HOTSPLICE_REPLACE_EXPECT("main.c#other", fixed_other, 0x55, 0x48, 0x89, 0xe5);
HOTSPLICE_NOP("debug_log,2", 5);
HOTSPLICE_INFO("cve", "CVE-2026-0001");
HOTSPLICE_INFO("description", "fix hello");
HOTSPLICE_LOAD_HOOK(on_load);
HOTSPLICE_PREAPPLY_HOOK(pre);
)";

inline constexpr u8 kDependsFill = 0x11;
inline constexpr u8 kObjectDependsFill = 0x22;
inline constexpr u32 kOldSize = 0x20;

// Builds DIR/NAME.lp from `source` with depends / object_depends notes of
// kDependsFill / kObjectDependsFill, then fills in every old_size left 0
// with kOldSize as the builder would from the target. "" (and a test
// failure) if that fails.
std::string build_payload(const TempDir& dir, std::string_view source = kPatchSource, std::string_view name = "fix");

}  // namespace hs::test
