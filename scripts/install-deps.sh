#!/usr/bin/env bash
# Installs what hotsplice needs to build and test on Debian 12 (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential gcc g++ binutils cmake ninja-build pkg-config \
  libfmt-dev libelf-dev libdw-dev libdebuginfod-dev debuginfod libzydis-dev libcli11-dev nlohmann-json3-dev \
  libgtest-dev googletest >/dev/null
