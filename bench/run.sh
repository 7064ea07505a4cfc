#!/usr/bin/env bash
# The one command for the benchmarks (bench/README.md):
#
#   bench/run.sh              every figure, 20 runs each (a few minutes)
#   bench/run.sh --quick      5 runs, short throughput phases (under a minute)
#   bench/run.sh --only stop,wall --runs 30   (other hsbench options pass through)
#
# Configures a Release build with -DHS_BENCH=ON in build-bench/ (or
# $HS_BENCH_BUILD), builds hotsplice, the benchmark targets and payloads,
# runs hsbench, and writes bench/results/results.{json,md} and PNG plots.
# Needs gnuplot (and valgrind for the instruction counts): installed with
# apt-get when missing and running as root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HS_BENCH_BUILD:-$root/build-bench}
results=$root/bench/results
plotdata=$build/bench/plotdata

need=()
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v valgrind >/dev/null || need+=(valgrind)
if ((${#need[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bench/run.sh: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
  else
    echo "bench/run.sh: missing ${need[*]} (apt-get install ${need[*]}); continuing without" >&2
  fi
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DHS_BENCH=ON -DHS_TESTS=OFF >/dev/null ||
    { echo "bench/run.sh: configuring failed; scripts/install-deps.sh installs the build dependencies" >&2; exit 1; }
else
  cmake "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BENCH=ON -DHS_TESTS=OFF >/dev/null
fi
echo "[hsbench] building in $build (the first build takes a few minutes)" >&2
cmake --build "$build" -j"$(nproc)" >/dev/null ||
  { cmake --build "$build" -j1 2>&1 | tail -30; exit 1; }

mkdir -p "$results" "$plotdata"
"$build/bench/hsbench" --out "$results" --plot-data "$plotdata" --source "$root" "$@"

if command -v gnuplot >/dev/null; then
  gnuplot -e "datadir='$plotdata'; outdir='$results'" "$root/bench/plots.gp"
  echo "[hsbench] plots: $(cd "$results" && ls ./*.png | tr '\n' ' ')" >&2
fi
