#!/usr/bin/env bash
# Where a request's time goes at one connection: three alternating rounds of wrk -t1 -c1 against a
# direct backend, the bare undici proxy, Switchboard and Switchboard without its access log, each
# with its p50 and the proxy's CPU µs per request (/proc/<pid>/stat, all threads); then, once each
# for the bare proxy, Switchboard and nginx (1 worker, upstream keepalive), voluntary context
# switches per request and `strace -c -f` syscall counts over 3 s.
# Run: bash bench/proxy/probes/one-connection.sh   (env PORT_BASE)
source "$(dirname "$0")/common.sh"
start_all
NGINX_PORT=$((PORT_BASE + 30))
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1; daemon off; error_log /dev/null; pid $WORK/nginx/nginx.pid;
events {}
http { access_log off; upstream b { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
  server { listen 127.0.0.1:$NGINX_PORT; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
wait_for_port "$NGINX_PORT"
NGINX_WORKER=$(pgrep -P "${PIDS[-1]}" | head -1)
for port in "$B1" "$BARE_PORT" "$GW_PORT" "$GW_OFF_PORT" "$NGINX_PORT"; do wrk -t1 -c1 -d2s "http://127.0.0.1:$port/" >/dev/null; done

echo "wrk -t1 -c1 -d4s, three alternating rounds: p50, and the process's CPU per request"
run() {
  local before; before=$(cpu_ticks "$3")
  wrk -t1 -c1 -d4s --latency "http://127.0.0.1:$1/" > "$WORK/wrk.out"
  awk -v name="$2" -v ticks=$(($(cpu_ticks "$3") - before)) '/^ +50%/ { p50 = $2 } /^ +[0-9]+ requests in/ { n = $1 } END { printf "%-26s %7d requests  p50 %-9s %6.1f CPU µs/req\n", name, n, p50, ticks * 10000 / n }' "$WORK/wrk.out"
}
for round in 1 2 3; do
  run "$B1" "direct (backend's CPU)" "${PIDS[0]}"; run "$BARE_PORT" bare "$BARE"; run "$GW_PORT" switchboard "$GW"; run "$GW_OFF_PORT" "switchboard, log off" "$GW_OFF"
done

echo; echo "voluntary context switches per request (all threads), wrk -t1 -c1 -d4s"
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { sum += $2 } END { print sum }'; }
for row in "bare $BARE_PORT $BARE" "switchboard $GW_PORT $GW" "nginx $NGINX_PORT $NGINX_WORKER"; do
  set -- $row
  before=$(switches "$3"); wrk -t1 -c1 -d4s "http://127.0.0.1:$2/" > "$WORK/wrk.out"
  awk -v name="$1" -v switches=$(($(switches "$3") - before)) '/^ +[0-9]+ requests in/ { printf "%-12s %.2f\n", name, switches / $1 }' "$WORK/wrk.out"
done

echo; echo "strace -c -f over wrk -t1 -c1 -d3s (calls ÷ requests is per request)"
for row in "bare $BARE_PORT $BARE" "switchboard $GW_PORT $GW" "nginx $NGINX_PORT $NGINX_WORKER"; do
  set -- $row
  strace -f -c -p "$3" -o "$WORK/strace.txt" 2>/dev/null & tracer=$!
  sleep 0.5
  requests=$(wrk -t1 -c1 -d3s "http://127.0.0.1:$2/" | awk '/^ +[0-9]+ requests in/ { print $1 }')
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  echo "$1: $requests requests"; awk 'NR > 2 && $NF !~ /^-/ && $NF != "total" { print "  " $NF, $4 }' "$WORK/strace.txt" | head -8
done
