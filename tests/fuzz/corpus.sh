#!/usr/bin/env bash
# Builds the fuzz corpus (real payloads, by the real builder) and runs the
# fuzzer on it: corpus.sh HOTSPLICE TARGET_DIR PATCH_DIR OUT_DIR FUZZER ITERATIONS SEED
set -euo pipefail
hs=$1 targets=$2 patches=$3 out=$4 fuzzer=$5 iterations=$6 seed=$7
mkdir -p "$out"
build() {  # patch target [depends]
  local dep=()
  [ $# -ge 3 ] && dep=(--depends "$out/$3.lp")
  "$hs" build "$patches/$1.c" --target "$targets/$2" -o "$out/$1.lp" "${dep[@]}" >/dev/null
}
build hello_v2 hello
build world_v2 hello hello_v2
build cumulative hello
build nop hello
build expect_ok hello
build libc_call calc
build globals calc
build hooks calc
build sympos dup
build cet_v2 cet
build greet_v2 libgreet.so
exec "$fuzzer" "$iterations" "$seed" "$out"/*.lp
