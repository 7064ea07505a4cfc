#!/usr/bin/env bash
# Configures and builds hotsplice into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${HS_CMAKE_ARGS:-} >/dev/null
ninja -C build
