# Shared by the probes: two Node backends, the bare undici proxy and Switchboard (access log on, and
# off on PORT_BASE+21), on loopback ports from PORT_BASE (default 19000), stopped on exit.
# Needs a built checkout (`npm run build`), wrk and, for some probes, nginx, strace, taskset, perf.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
PORT_BASE=${PORT_BASE:-19000}
B1=$((PORT_BASE + 1)); B2=$((PORT_BASE + 2)); BARE_PORT=$((PORT_BASE + 10)); GW_PORT=$((PORT_BASE + 20)); GW_OFF_PORT=$((PORT_BASE + 21))
WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$WORK"' EXIT

# gateway_config FILE PORT ACCESS_LOG: a gateway on PORT routing / round-robin to both backends.
gateway_config() {
  printf 'listen: 127.0.0.1:%s\nadmin: false\naccessLog: %s\nservices:\n  nodeb: { balancer: round-robin, instances: [127.0.0.1:%s, 127.0.0.1:%s] }\nroutes:\n  - { path: /, service: nodeb }\n' "$2" "$3" "$B1" "$B2" > "$1"
}

# wait_for_port PORT…: until each accepts a connection (10 s each at most).
wait_for_port() {
  for port in "$@"; do
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  done
}

# start_all [node flags for the proxies…]: starts everything and sets BARE, GW and GW_OFF to the proxies' pids.
start_all() {
  ${BACKEND_PREFIX:-} node bench/proxy/backend.mjs "$B1" >/dev/null & PIDS+=($!)
  ${BACKEND_PREFIX:-} node bench/proxy/backend.mjs "$B2" >/dev/null & PIDS+=($!)
  node "$@" bench/proxy/bare-proxy.mjs "$BARE_PORT" "$B1" "$B2" >/dev/null & BARE=$!; PIDS+=($BARE)
  for log in true false; do
    local port=$GW_PORT; [ "$log" = false ] && port=$GW_OFF_PORT
    gateway_config "$WORK/gw-$log.yaml" "$port" "$log"
    # stdout (the access log) into a pipe that is read and thrown away, as a log collector would.
    SWITCHBOARD_LOG_LEVEL=warn node --max-semi-space-size=32 "$@" bin/switchboard.js --config "$WORK/gw-$log.yaml" > >(cat >/dev/null) & PIDS+=($!)
    if [ "$log" = true ]; then GW=$!; else GW_OFF=$!; fi
  done
  wait_for_port "$B1" "$B2" "$BARE_PORT" "$GW_PORT" "$GW_OFF_PORT"
}

# baseline_checkout REF: builds Switchboard at REF in a temporary git worktree (sharing node_modules,
# removed on exit) and sets BASELINE_BIN to its bin/switchboard.js and BASELINE_NAME to switchboard-<short hash>.
baseline_checkout() {
  git worktree add -q --detach "$WORK/baseline" "$1"
  trap 'kill "${PIDS[@]}" 2>/dev/null; git worktree remove --force "$WORK/baseline"; rm -rf "$WORK"' EXIT
  ln -s "$PWD/node_modules" "$WORK/baseline/node_modules"
  (cd "$WORK/baseline" && node scripts/build.mjs >/dev/null)
  BASELINE_BIN=$WORK/baseline/bin/switchboard.js
  BASELINE_NAME=switchboard-$(git rev-parse --short "$1")
}

# cpu_ticks PID: user + system clock ticks (10 ms) of a process, all its threads.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
