#!/usr/bin/env bash
# `ksr bench` on Debian's basic-kemi example: the same corpus (benches/corpus: OPTIONS,
# REGISTER without and with credentials, INVITE, in-dialog BYE, a reply) through the native
# routing and through the Lua, Python and JavaScript scripts of the example set, with the
# real modules (SQLite auth_db and usrloc) and a recording transport. Prepared like
# tests/basic_kemi.rs: native and Lua without WITH_NAT/WITH_IPAUTH, then native, Python and
# JS with both on (what the Python and JS scripts need).
#
#   benches/kemi_bench.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
export RB_LIB=1
# shellcheck source=register_bench.sh
source benches/register_bench.sh
for r in native lua native-nat python jsdt; do
  ROUTING=$r prepare "$TMP/$r"
done
echo "WITH_NAT and WITH_IPAUTH off:"
"$KSR" bench -f "$TMP/native/kamailio.cfg" -f "$TMP/lua/kamailio.cfg" -n "$N" 2>/dev/null
echo "WITH_NAT and WITH_IPAUTH on:"
"$KSR" bench -f "$TMP/native-nat/kamailio.cfg" -f "$TMP/python/kamailio.cfg" \
  -f "$TMP/jsdt/kamailio.cfg" -n "$N" 2>/dev/null
