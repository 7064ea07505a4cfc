#!/usr/bin/env bash
# Long fuzzing runs (the payload fuzzer, then the registry fuzzer) under
# AddressSanitizer + UndefinedBehaviorSanitizer, in the sanitized build
# (build-asan, HS_SANITIZE=ON, as scripts/test.sh --sanitize makes it):
#   tests/fuzz/run.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
iterations=${1:-2000000} seed=${2:-$RANDOM}
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHS_FAULT_INJECTION=ON -DHS_SANITIZE=ON >/dev/null
ninja -C build-asan hotsplice payload_fuzz registry_fuzz hello calc dup cet greeter greet >/dev/null
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
echo "fuzzing $iterations inputs, seed $seed"
tests/fuzz/corpus.sh build-asan/src/hotsplice build-asan/tests/e2e/targets tests/e2e/patches \
  build-asan/tests/fuzz/corpus build-asan/tests/fuzz/payload_fuzz "$iterations" "$seed"
echo "fuzzing the registry reader and repair planner: $iterations inputs, seed $seed"
build-asan/tests/fuzz/registry_fuzz "$iterations" "$seed" tests/fuzz/registry_corpus
