#!/usr/bin/env bash
# What each proxy's requests leave to the garbage collector: two alternating rounds of wrk -t1 -c50
# -d10s against the bare undici proxy and Switchboard (access log on), each with its request rate
# and latency, its scavenges (count, mean pause, mean KB surviving each and KB promoted by each, from
# --trace-gc-nvp), how much its old space grew (old-growth.mjs: growth beyond what was promoted is
# allocated in the old generation directly) and its mark-compacts. BASELINE=<ref> adds Switchboard
# at that commit (a git worktree in a temporary directory, built there, sharing node_modules).
# Run: bash bench/proxy/probes/promotion.sh   (env PORT_BASE, BASELINE, DURATION_S)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PRELOAD=./bench/proxy/probes/old-growth.mjs
ROWS=()
node bench/proxy/backend.mjs "$B1" >/dev/null & PIDS+=($!)
node bench/proxy/backend.mjs "$B2" >/dev/null & PIDS+=($!)
node --trace-gc-nvp --import "$PRELOAD" bench/proxy/bare-proxy.mjs "$BARE_PORT" "$B1" "$B2" > "$WORK/bare.gc" 2> "$WORK/bare.err" & PIDS+=($!)
ROWS+=("bare $BARE_PORT $!")
# start_gateway NAME PORT BIN: Switchboard with the access log on; the GC lines are kept, the log lines read and dropped.
start_gateway() {
  gateway_config "$WORK/$1.yaml" "$2" true
  SWITCHBOARD_LOG_LEVEL=warn node --max-semi-space-size=32 --trace-gc-nvp --import "$PRELOAD" "$3" --config "$WORK/$1.yaml" 2> "$WORK/$1.err" > >(grep --line-buffered 'gc=' > "$WORK/$1.gc") & PIDS+=($!)
  ROWS+=("$1 $2 $!")
}
start_gateway switchboard "$GW_PORT" bin/switchboard.js
if [ -n "${BASELINE:-}" ]; then
  baseline_checkout "$BASELINE"
  start_gateway "$BASELINE_NAME" "$GW_OFF_PORT" "$BASELINE_BIN"
fi
for row in "${ROWS[@]}"; do set -- $row; wait_for_port "$2"; done
wait_for_port "$B1" "$B2"
for row in "${ROWS[@]}"; do set -- $row; wrk -t1 -c50 -d3s "http://127.0.0.1:$2/" >/dev/null; done
for round in 1 2; do
  for row in "${ROWS[@]}"; do
    set -- $row
    kill -USR2 "$3"; sleep 0.2
    seen=$(wc -l < "$WORK/$1.gc")
    wrk -t1 -c50 -d"${DURATION_S:-10}"s --latency "http://127.0.0.1:$2/" | awk -v name="$1" '/^ +(50|90|99)%/ { line = line " " $1 "=" $2 } /Requests\/sec/ { rps = $2 } END { printf "%s: %.0f req/s, latency%s\n", name, rps, line }'
    kill -USR2 "$3"; sleep 0.5
    tail -n +$((seen + 1)) "$WORK/$1.gc" | awk -v growth="$(tail -1 "$WORK/$1.err")" '
      / gc=s / { n++; for (i = 1; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
      / gc=mc / { m++; for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "pause") mc += kv[2] } }
      END { printf "  %d scavenges: mean pause %.2f ms, survived %.0f KB, promoted %.0f KB (%.1f MB in all); %s; %d mark-compacts, %.1f ms of pauses\n", n, s["pause"] / n, s["new_space_survived"] / n / 1024, s["promoted"] / n / 1024, s["promoted"] / 1e6, growth, m, mc }'
  done
done
