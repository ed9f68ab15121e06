#!/usr/bin/env bash
# Is the p99/p50 tail at 50 connections the other processes taking the proxy's core? Three
# alternating rounds of wrk -t1 -c50 --latency against the bare undici proxy and Switchboard, each
# as started, then with the proxy pinned to CPU 0 and wrk and the backends to CPU 1 (taskset), then
# reniced to -10 (needs root). Prints p50/p75/p90/p99 per row.
# Run: bash bench/proxy/probes/tail.sh   (env PORT_BASE, DURATION_S)
source "$(dirname "$0")/common.sh"
BACKEND_PREFIX="taskset -c 1" start_all
for port in "$BARE_PORT" "$GW_PORT"; do wrk -t1 -c50 -d3s "http://127.0.0.1:$port/" >/dev/null; done
run() { taskset -c 1 wrk -t1 -c50 -d"${DURATION_S:-5}"s --latency "http://127.0.0.1:$1/" | awk -v name="$2" '/^ +(50|75|90|99)%/ { line = line " " $1 "=" $2 } /Requests\/sec/ { rps = $2 } END { printf "%-22s %8.0f req/s %s\n", name, rps, line }'; }
place() { for pid in "$BARE" "$GW"; do taskset -a -p -c "$1" "$pid" >/dev/null; renice -n "$2" -p "$pid" >/dev/null; done; }
for round in 1 2 3; do
  place 0,1 0; run "$BARE_PORT" bare; run "$GW_PORT" switchboard
  place 0 0; run "$BARE_PORT" "bare, pinned"; run "$GW_PORT" "switchboard, pinned"
  place 0,1 -10; run "$BARE_PORT" "bare, nice -10"; run "$GW_PORT" "switchboard, nice -10"
done
