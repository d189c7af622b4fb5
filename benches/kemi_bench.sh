#!/usr/bin/env bash
# `ksr bench` on Debian's basic-kemi example: the same corpus (benches/corpus: OPTIONS,
# REGISTER without and with credentials, INVITE, in-dialog BYE, a reply) through the native
# routing and through kamailio-basic-kemi-lua.lua, with the real modules (SQLite auth_db and
# usrloc) and a recording transport. Prepared like tests/basic_kemi.rs.
#
#   benches/kemi_bench.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
export RB_LIB=1
# shellcheck source=register_bench.sh
source benches/register_bench.sh
ROUTING=native prepare "$TMP/native"
ROUTING=lua prepare "$TMP/lua"
"$KSR" bench -f "$TMP/native/kamailio.cfg" -f "$TMP/lua/kamailio.cfg" -n "$N" 2>/dev/null
