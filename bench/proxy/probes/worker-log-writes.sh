#!/usr/bin/env bash
# What the workers' shared access log costs in writes: Switchboard with `workers: 2` (access log on,
# stdout a pipe read by `cat`), and at BASELINE=<ref> if given; `strace -c` on one worker over 4 s
# of wrk -t1 -c50. Each request a worker serves makes one `writev` (the answer to the client) and one
# `write` (the request upstream), so (write − writev) ÷ writev is the access log's writes per request
# (`bash bench/proxy/probes/one-connection.sh` shows that pair per request). The traced worker runs
# slower under ptrace, which batches fewer lines per write than an untraced one would.
# Run: bash bench/proxy/probes/worker-log-writes.sh   (env PORT_BASE, BASELINE)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
node bench/proxy/backend.mjs "$B1" >/dev/null & PIDS+=($!)
node bench/proxy/backend.mjs "$B2" >/dev/null & PIDS+=($!)
ROWS=("switchboard $GW_PORT bin/switchboard.js")
if [ -n "${BASELINE:-}" ]; then
  baseline_checkout "$BASELINE"
  ROWS+=("$BASELINE_NAME $GW_OFF_PORT $BASELINE_BIN")
fi
declare -A PRIMARY
for row in "${ROWS[@]}"; do
  set -- $row
  gateway_config "$WORK/$1.yaml" "$2" true
  echo 'workers: 2' >> "$WORK/$1.yaml"
  SWITCHBOARD_LOG_LEVEL=warn node "$3" --config "$WORK/$1.yaml" > >(cat > /dev/null) & PIDS+=($!)
  PRIMARY[$1]=$!
done
wait_for_port "$B1" "$B2"
for row in "${ROWS[@]}"; do
  set -- $row
  wait_for_port "$2"
  # A worker: a child of the primary running the same bin (the workers carry the semi-space flag).
  worker=$(ps -eo pid,ppid,args | awk -v p="${PRIMARY[$1]}" '$2 == p && /semi-space/ { print $1 }' | head -1)
  [ -n "$worker" ] || { echo "$1: no worker found under ${PRIMARY[$1]}" >&2; exit 1; }
  wrk -t1 -c50 -d2s "http://127.0.0.1:$2/" > /dev/null
  strace -c -e trace=write,writev -p "$worker" -o "$WORK/strace.txt" 2> /dev/null & tracer=$!; PIDS+=($tracer)
  sleep 0.5
  wrk -t1 -c50 -d4s "http://127.0.0.1:$2/" > /dev/null
  kill -INT "$tracer"; wait "$tracer" 2> /dev/null || true
  awk -v name="$1" '$NF == "write" { write = $4 } $NF == "writev" { writev = $4 } END { if (writev == 0) { print name ": no answers traced"; exit } printf "%-24s %6d answers by one worker, %5d access log writes, %.3f per request\n", name, writev, write - writev, (write - writev) / writev }' "$WORK/strace.txt"
done
