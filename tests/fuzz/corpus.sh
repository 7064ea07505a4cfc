#!/usr/bin/env bash
# Builds the fuzz corpus (real payloads, by the real builder) and runs the
# fuzzer on it: corpus.sh HOTSPLICE TARGET_DIR PATCH_DIR OUT_DIR FUZZER ITERATIONS SEED KLP_FORM
# (KLP_FORM: tests/fuzz/klp_form_main.cc, for payloads in the Linux
# livepatch ELF form)
set -euo pipefail
hs=$1 targets=$2 patches=$3 out=$4 fuzzer=$5 iterations=$6 seed=$7 klp_form=$8
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
# The Linux livepatch ELF form: .klp.rela sections, SHN_LIVEPATCH symbols.
klp() {  # source.S name object...
  local src=$1 name=$2
  shift 2
  "$hs" build "$patches/klp/$src" --target "$targets/klp_app" -o "$out/$name.built" >/dev/null
  "$klp_form" "$out/$name.built" "$out/$name.lp" "$@"
}
klp static.S klp_static klp_app
klp lib.S klp_lib libklp_lib.so
klp sympos.S klp_sympos klp_app
exec "$fuzzer" "$iterations" "$seed" "$out"/*.lp
