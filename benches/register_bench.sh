#!/usr/bin/env bash
# REGISTER + digest throughput of Debian's basic-kemi example (native routing, SQLite,
# WITH_AUTH + WITH_USRLOCDB + WITH_ANTIFLOOD + WITH_ACCDB, as tests/basic_kemi.rs runs it) on
# ksr and on Kamailio 5.6 (-X fm), with the same sipp scenario: the rate is stepped up until
# calls fail or sipp cannot keep the rate; prints, per server, the highest clean rate and the
# server CPU µs per call there, then the ratios.
#
#   benches/register_bench.sh [SECONDS_PER_STEP] [FIRST_RATE] [ROUTING]
#     ROUTING: native (default), lua, python, jsdt, native-nat (the last three with WITH_NAT
#     and WITH_IPAUTH on)
set -euo pipefail
cd "$(dirname "$0")/.."
STEP_SECS=${1:-4}
FIRST_RATE=${2:-1000}
ROUTING=${3:-native}
PORT=${PORT:-35997}
EX=/usr/share/doc/kamailio/examples/kemi
cargo build --release --quiet
KSR=${CARGO_TARGET_DIR:-target}/release/ksr
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

prepare() { # DIR: the example rewritten like tests/basic_kemi.rs, its database, users.csv
  local dir=$1
  mkdir -p "$dir"
  for f in standard auth_db usrloc acc htable permissions; do
    cat /usr/share/kamailio/db_sqlite/$f-create.sql
  done > "$dir/schema.sql"
  for t in acc missed_calls; do
    for c in src_user src_domain src_ip dst_ouser dst_user dst_domain; do
      echo "ALTER TABLE $t ADD COLUMN $c VARCHAR(128) NOT NULL DEFAULT '';"
    done
  done >> "$dir/schema.sql"
  echo "SEQUENTIAL" > "$dir/users.csv"
  for i in $(seq 1 1000); do
    echo "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('u$i', '127.0.0.1', 'pw$i', '', '');"
    echo "u$i;pw$i" >> "$dir/users.csv"
  done >> "$dir/schema.sql"
  sqlite3 "$dir/k.sqlite" < "$dir/schema.sql"
  local extra="#!define DBURL \"sqlite:///$dir/k.sqlite\"\nlisten=udp:127.0.0.1:$PORT\nrun_dir=\"$dir\"\n"
  # ROUTING: native, lua (WITH_NAT and WITH_IPAUTH off: no RTP proxy here), or native-nat,
  # python, jsdt (both on: the Python and JS scripts call nathelper, rtpproxy and
  # permissions unconditionally; no RTP proxy answers, the address table is empty).
  local drop=(-e '/^#!define WITH_NAT$/d' -e '/^#!define WITH_IPAUTH$/d')
  case "${ROUTING:-native}" in
    lua) extra="#!define WITH_CFGLUA\n$extra" ;;
    python) extra="#!define WITH_CFGPYTHON3\n$extra"; drop=() ;;
    jsdt) extra="#!define WITH_CFGJSDT\n$extra"; drop=() ;;
    native-nat) drop=() ;;
  esac
  sed "${drop[@]}" \
      -e 's/db_mysql.so/db_sqlite.so/' -e "s|/usr/local/etc/kamailio/|$dir/|g" \
      -e "s|^#!KAMAILIO\$|#!KAMAILIO\n$extra|" "$EX/kamailio-basic-kemi.cfg" > "$dir/kamailio.cfg"
  cp "$EX/kamailio-basic-kemi-native.cfg" "$EX/kamailio-basic-kemi-lua.lua" \
     "$EX/kamailio-basic-kemi-python.py" "$EX/kamailio-basic-kemi-jsdt.js" "$dir/"
}

cpu_of() {
  python3 - "$@" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK"); total = 0
for pid in sys.argv[1:]:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    except OSError:
        pass
print(total / hz)
PY
}

wait_port() {
  for _ in $(seq 100); do
    if python3 - <<PY 2>/dev/null; then return 0; fi
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
s.sendto(b"OPTIONS sip:127.0.0.1:$PORT SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKw;rport\r\nFrom: <sip:w@x>;tag=1\r\nTo: <sip:p@y>\r\nCall-ID: w\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", $PORT))
s.recv(100)
PY
    sleep 0.1
  done
  echo "server did not start" >&2; return 1
}

# step DIR RATE PIDS...: prints "ok failed achieved_rate cpu_us_per_call"
step() {
  local dir=$1 rate=$2; shift 2
  local calls=$((rate * STEP_SECS)) before after start end
  before=$(cpu_of "$@"); start=$(date +%s.%N)
  sipp 127.0.0.1:$PORT -sf benches/sipp/register_auth.xml -inf "$dir/users.csv" -m "$calls" \
    -r "$rate" -i 127.0.0.1 -buff_size 4194304 -nostdin -timeout $((STEP_SECS * 4 + 10))s \
    -recv_timeout 4000 -trace_screen -screen_file "$dir/screen" >/dev/null 2>&1 || true
  end=$(date +%s.%N); after=$(cpu_of "$@")
  local ok failed
  ok=$(grep -E "^ +Successful call" "$dir/screen" | awk '{print $NF}' | tail -1)
  failed=$(grep -E "^ +Failed call" "$dir/screen" | awk '{print $NF}' | tail -1)
  python3 -c "
ok=int('${ok:-0}'); failed=int('${failed:-0}'); secs=$end-$start; cpu=$after-$before
print(ok, failed, f'{ok/secs:.0f}', f'{cpu*1e6/max(ok,1):.1f}')"
}

# ramp NAME DIR PIDS...: steps the rate up; prints "best_rate cpu_us_at_best"
ramp() {
  local name=$1 dir=$2; shift 2
  local rate=$FIRST_RATE best=0 best_cpu=0
  while :; do
    read -r ok failed achieved cpu < <(step "$dir" "$rate" "$@")
    echo "  $name rate $rate/s: $ok ok, $failed failed, $achieved calls/s, ${cpu} µs CPU/call" >&2
    if [ "$failed" -gt 0 ] || [ "$achieved" -lt $((rate * 85 / 100)) ]; then break; fi
    best=$achieved; best_cpu=$cpu
    rate=$((rate * 2))
    [ "$rate" -gt 64000 ] && break
  done
  echo "$best $best_cpu"
}

if [ "${RB_LIB:-}" = 1 ]; then return 0; fi

prepare "$TMP/ksr"
(cd "$TMP/ksr" && exec "$KSR" run -f kamailio.cfg --debug=-1 2>"$TMP/ksr/server.log") &
KSR_PID=$!
wait_port
read -r KSR_BEST KSR_CPU < <(ramp ksr "$TMP/ksr" $KSR_PID)
kill $KSR_PID; wait $KSR_PID 2>/dev/null || true

prepare "$TMP/k"
kamailio -f "$TMP/k/kamailio.cfg" -L /usr/lib/x86_64-linux-gnu/kamailio/modules --debug=-1 \
  -X fm -E -DD -Y "$TMP/k" -w "$TMP/k" -P "$TMP/k/k.pid" 2>"$TMP/k/server.log" &
K_MAIN=$!
wait_port
K_PIDS=$(pgrep -f "kamailio -f $TMP/k/kamailio.cfg" | tr '\n' ' ')
# shellcheck disable=SC2086
read -r K_BEST K_CPU < <(ramp kamailio "$TMP/k" $K_PIDS)
kill $K_MAIN; wait $K_MAIN 2>/dev/null || true

printf '%-10s %22s %18s\n' server "best clean calls/s" "CPU µs per call"
printf '%-10s %22s %18s\n' ksr "$KSR_BEST" "$KSR_CPU"
printf '%-10s %22s %18s\n' kamailio "$K_BEST" "$K_CPU"
python3 -c "print(f'ratio ksr/kamailio ($ROUTING): calls/s {$KSR_BEST/max($K_BEST,1):.2f}x, CPU per call {$KSR_CPU/max($K_CPU,0.001):.2f}x (lower is better)')"
