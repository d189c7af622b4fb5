#!/usr/bin/env bash
# Side by side: the same stateless OPTIONS responder (examples/kamailio.cfg) on ksr and on
# Kamailio 5.6, driven by the same sipp scenario on this machine. Prints messages/s and
# server CPU time per message for each, and the ratios.
#
#   benches/side_by_side.sh [MESSAGES] [RATE]      (defaults 60000 and 20000/s)
#
# Kamailio runs with -X fm (its faster allocator, see the oracle notes) and the same
# children count. sipp shares the cores, so msgs/s is capped by sipp near ~30k/s here:
# compare the CPU µs per message.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-60000}
RATE=${2:-20000}
PORT=${PORT:-35999}
cargo build --release --quiet
KSR=${CARGO_TARGET_DIR:-target}/release/ksr
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# CPU seconds (user+system) used so far by the given pids and their threads.
cpu_of() {
  python3 - "$@" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
total = 0
for pid in sys.argv[1:]:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    except OSError:
        pass
print(total / hz)
PY
}

# run NAME PIDS...: sipp against the server, prints "msgs/s cpu_us_per_msg".
drive() {
  local before after start end
  before=$(cpu_of "$@")
  start=$(date +%s.%N)
  sipp 127.0.0.1:$PORT -sf tests/sipp/options.xml -m "$MESSAGES" -r "$RATE" -i 127.0.0.1 \
    -buff_size 4194304 -nostdin -timeout 120s -trace_screen -screen_file "$TMP/screen" \
    >/dev/null 2>&1 || true
  end=$(date +%s.%N)
  after=$(cpu_of "$@")
  local ok
  ok=$(grep -E "^ +Successful call" "$TMP/screen" | awk '{print $(NF)}' | tail -1)
  python3 -c "
ok=int('${ok:-0}'); secs=$end-$start; cpu=$after-$before
print(f'{ok/secs:.0f} {cpu*1e6/max(ok,1):.1f} {ok}')"
}

wait_port() {
  for _ in $(seq 100); do
    if python3 - <<PY 2>/dev/null; then return 0; fi
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
s.sendto(b"OPTIONS sip:ping@127.0.0.1:$PORT SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKw;rport\r\nFrom: <sip:w@x>;tag=1\r\nTo: <sip:p@y>\r\nCall-ID: w\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", ("127.0.0.1", $PORT))
s.recv(100)
PY
    sleep 0.1
  done
  echo "server did not start" >&2; return 1
}

"$KSR" run -f examples/kamailio.cfg -A PORT=$PORT --debug=-1 2>"$TMP/ksr.log" &
KSR_PID=$!
wait_port
read -r KSR_RATE KSR_CPU KSR_OK < <(drive $KSR_PID)
kill $KSR_PID; wait $KSR_PID 2>/dev/null || true

kamailio -f examples/kamailio.cfg -A PORT=$PORT -L /usr/lib/x86_64-linux-gnu/kamailio/modules \
  --debug=-1 -X fm -E -DD -Y "$TMP" -w "$TMP" -P "$TMP/k.pid" 2>"$TMP/k.log" &
K_MAIN=$!
wait_port
K_PIDS=$(pgrep -f "kamailio -f examples/kamailio.cfg -A PORT=$PORT" | tr '\n' ' ')
# shellcheck disable=SC2086
read -r K_RATE K_CPU K_OK < <(drive $K_PIDS)
kill $K_MAIN; wait $K_MAIN 2>/dev/null || true

printf '%-10s %12s %16s %10s\n' server "msgs/s" "CPU µs/msg" "answered"
printf '%-10s %12s %16s %10s\n' ksr "$KSR_RATE" "$KSR_CPU" "$KSR_OK"
printf '%-10s %12s %16s %10s\n' kamailio "$K_RATE" "$K_CPU" "$K_OK"
python3 -c "print(f'ratio ksr/kamailio: throughput {$KSR_RATE/max($K_RATE,1):.2f}x, CPU per message {$KSR_CPU/max($K_CPU,0.001):.2f}x (lower is better)')"
