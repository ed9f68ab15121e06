#!/usr/bin/env bash
# What stalls each proxy's event loop under load: two alternating rounds of wrk -t1 -c50 -d5s
# against the bare undici proxy and Switchboard (access log off, so --trace-gc has stdout to
# itself), each with the request latency percentiles, the loop's delay (loop-delay.mjs), the
# four longest scavenge pauses and every mark-compact of the round (--trace-gc).
# Run: bash bench/proxy/probes/stalls.sh   (env PORT_BASE)
source "$(dirname "$0")/common.sh"
node bench/proxy/backend.mjs "$B1" >/dev/null & PIDS+=($!)
node bench/proxy/backend.mjs "$B2" >/dev/null & PIDS+=($!)
PRELOAD=./bench/proxy/probes/loop-delay.mjs
node --trace-gc --import "$PRELOAD" bench/proxy/bare-proxy.mjs "$BARE_PORT" "$B1" "$B2" > "$WORK/bare.gc" 2> "$WORK/bare.delay" & BARE=$!; PIDS+=($BARE)
gateway_config "$WORK/gw.yaml" "$GW_PORT" false
SWITCHBOARD_LOG_LEVEL=warn node --max-semi-space-size=32 --trace-gc --import "$PRELOAD" bin/switchboard.js --config "$WORK/gw.yaml" > "$WORK/switchboard.gc" 2> "$WORK/switchboard.delay" & GW=$!; PIDS+=($GW)
wait_for_port "$B1" "$B2" "$BARE_PORT" "$GW_PORT"
for port in "$BARE_PORT" "$GW_PORT"; do wrk -t1 -c50 -d3s "http://127.0.0.1:$port/" >/dev/null; done
for round in 1 2; do
  for row in "bare $BARE_PORT $BARE" "switchboard $GW_PORT $GW"; do
    set -- $row
    kill -USR2 "$3"; sleep 0.2
    seen=$(wc -l < "$WORK/$1.gc")
    wrk -t1 -c50 -d5s --latency "http://127.0.0.1:$2/" | awk -v name="$1" '/^ +(50|90|99)%/ { line = line " " $1 "=" $2 } /Requests\/sec/ { rps = $2 } END { printf "%s: %.0f req/s, latency%s\n", name, rps, line }'
    kill -USR2 "$3"; sleep 0.3
    echo "  $(tail -1 "$WORK/$1.delay")"
    tail -n +$((seen + 1)) "$WORK/$1.gc" > "$WORK/round.gc"
    echo "  scavenges: $(grep -c Scavenge "$WORK/round.gc" || true), longest pauses ms: $(grep Scavenge "$WORK/round.gc" | awk '{ for (i = 1; i <= NF; i++) if ($i == "MB,") print $(i + 1) }' | sort -n | tail -4 | tr '\n' ' ')"
    grep Mark-Compact "$WORK/round.gc" | sed -E 's/^\[[^]]*\] +[0-9]+ ms: //; s/\(average mu.*//' | cut -c1-150 | sed 's/^/  /' || true
  done
done
