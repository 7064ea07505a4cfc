#!/usr/bin/env bash
# Builds hotsplice and runs every test (unit and end-to-end) with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
HS_CMAKE_ARGS="-DHS_WERROR=ON -DHS_FAULT_INJECTION=ON ${HS_CMAKE_ARGS:-}" scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
