#!/usr/bin/env bash
# What a burst after an idle spell meets: V8 shrinks an idle process's young generation, and grows it
# again only as objects survive scavenges, so the fewer a request leaves behind, the longer the
# first seconds of a burst scavenge often. Switchboard (access log on) as started, once more per
# `;`-separated set of Node flags in VARIANTS (default: --min-semi-space-size=8 and 16), and at
# BASELINE=<ref> if given; three rounds, each gateway served wrk -t1 -c50 -d4s in turn and then idle
# while the others are served and IDLE_S (default 8) more after each. Prints per round and
# gateway: req/s, p50/p99, scavenges and mark-compacts (--trace-gc) during its 4 s, and its RSS.
# Run: bash bench/proxy/probes/after-idle.sh   (env PORT_BASE, VARIANTS, BASELINE, IDLE_S)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ROWS=()
node bench/proxy/backend.mjs "$B1" >/dev/null & PIDS+=($!)
node bench/proxy/backend.mjs "$B2" >/dev/null & PIDS+=($!)
# start_gateway NAME PORT BIN [NODE FLAGS]: the GC lines are kept, the access log read and dropped.
start_gateway() {
  gateway_config "$WORK/$1.yaml" "$2" true
  SWITCHBOARD_LOG_LEVEL=warn node --max-semi-space-size=32 ${4:-} --trace-gc "$3" --config "$WORK/$1.yaml" > >(grep --line-buffered 'Scavenge\|Mark-Compact' > "$WORK/$1.gc") & PIDS+=($!)
  ROWS+=("$1 $2 $!")
}
port=$GW_PORT
start_gateway switchboard "$port" bin/switchboard.js
IFS=';' read -ra variants <<< "${VARIANTS:---min-semi-space-size=8;--min-semi-space-size=16}"
for flags in "${variants[@]}"; do
  port=$((port + 1))
  start_gateway "switchboard${flags// /}" "$port" bin/switchboard.js "$flags"
done
if [ -n "${BASELINE:-}" ]; then
  baseline_checkout "$BASELINE"
  start_gateway "$BASELINE_NAME" $((port + 1)) "$BASELINE_BIN"
fi
for row in "${ROWS[@]}"; do set -- $row; wait_for_port "$2"; done
wait_for_port "$B1" "$B2"
for row in "${ROWS[@]}"; do set -- $row; wrk -t1 -c50 -d3s "http://127.0.0.1:$2/" >/dev/null; done
for round in 1 2 3; do
  for row in "${ROWS[@]}"; do
    set -- $row
    seen=$(wc -l < "$WORK/$1.gc")
    wrk -t1 -c50 -d4s --latency "http://127.0.0.1:$2/" | awk -v name="$1" '/^ +(50|99)%/ { line = line " " $1 "=" $2 } /Requests\/sec/ { rps = $2 } END { printf "%-45s %5.0f req/s, latency%s", name, rps, line }'
    sleep 0.3
    tail -n +$((seen + 1)) "$WORK/$1.gc" > "$WORK/round.gc"
    echo "  scavenges $(grep -c Scavenge "$WORK/round.gc" || true), mark-compacts $(grep -c Mark-Compact "$WORK/round.gc" || true), RSS $(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$3/status") MB"
    sleep "${IDLE_S:-8}"
  done
done
