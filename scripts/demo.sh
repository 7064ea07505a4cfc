#!/usr/bin/env bash
# The demo: a running program changed live, then changed back.
# Installs the dependencies (needs root), builds, and runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; fi
scripts/build.sh >/dev/null
HS=build/src/hotsplice
work=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT

gcc -O2 -g -o "$work/server" demo/server.c
echo "== starting demo/server: it prints a greeting every 0.4 s"
"$work/server" & server=$!
sleep 1.3

echo "== hotsplice build demo/fix.c --target server -o fix.lp"
$HS build demo/fix.c --target "$work/server" -o "$work/fix.lp"
$HS info "$work/fix.lp"
echo "== hotsplice load $server fix.lp   (same process, no restart)"
$HS load "$server" "$work/fix.lp"
sleep 1.3
echo "== hotsplice list $server"
$HS list "$server"
echo "== hotsplice revert $server fix"
$HS revert "$server" fix
sleep 1.3
echo "== hotsplice unload $server fix"
$HS unload "$server" fix
$HS list "$server"
