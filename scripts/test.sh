#!/usr/bin/env bash
# Builds hotsplice and runs every test (unit and end-to-end) with CTest.
#   scripts/test.sh [CTEST ARGS...]              into build/
#   scripts/test.sh --sanitize [CTEST ARGS...]   into build-asan/: the tool, its
#       libraries, the tests and the payload fuzzer built with AddressSanitizer
#       + UndefinedBehaviorSanitizer (HS_SANITIZE=ON; the target programs and
#       payloads stay plain); any report fails the test that caused it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --sanitize ]; then
  shift
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHS_WERROR=ON -DHS_FAULT_INJECTION=ON \
    -DHS_SANITIZE=ON ${HS_CMAKE_ARGS:-} >/dev/null
  ninja -C build-asan
  # halt_on_error: the first report ends the process (and fails its test).
  export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
  exec ctest --test-dir build-asan --output-on-failure -j2 "$@"
fi
HS_CMAKE_ARGS="-DHS_WERROR=ON -DHS_FAULT_INJECTION=ON ${HS_CMAKE_ARGS:-}" scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
