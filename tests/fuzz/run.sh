#!/usr/bin/env bash
# Long fuzzing run under AddressSanitizer + UndefinedBehaviorSanitizer:
#   tests/fuzz/run.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
iterations=${1:-2000000} seed=${2:-$RANDOM}
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
ninja -C build-asan hotsplice payload_fuzz hello calc dup cet greeter greet >/dev/null
export ASAN_OPTIONS=detect_leaks=0
echo "fuzzing $iterations inputs, seed $seed"
tests/fuzz/corpus.sh build-asan/src/hotsplice build-asan/tests/e2e/targets tests/e2e/patches \
  build-asan/tests/fuzz/corpus build-asan/tests/fuzz/payload_fuzz "$iterations" "$seed"
