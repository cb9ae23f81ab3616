#!/usr/bin/env bash
# A local 3-node NATS JetStream cluster, for trying `recwal serve --cluster`
# out and for tests (server/tests/cluster.rs starts its own nodes the same way).
#
#   scripts/nats-cluster.sh start DIR   write DIR/n{1,2,3}.conf, start the nodes
#                                       (stores in DIR/n{1,2,3}/, logs in
#                                       DIR/n{1,2,3}.log, pids in DIR/n{1,2,3}.pid),
#                                       wait until all three answer /healthz and
#                                       print the client URL list
#   scripts/nats-cluster.sh stop DIR    stop the nodes started in DIR (SIGTERM,
#                                       then SIGKILL after 10 s); keeps the stores
#   scripts/nats-cluster.sh status DIR  which nodes run
#
# Ports: client NATS_BASE_PORT+i (default 4222, 4223, 4224), cluster routes
# NATS_BASE_PORT+2000+i, monitoring NATS_BASE_PORT+4000+i (i = 0, 1, 2).
# NATS_SYNC_INTERVAL (default: the server's own, every 2 minutes) sets
# JetStream's `sync_interval`, e.g. `always` (docs/CLUSTER.md says what each
# costs and guarantees). The binary: NATS_SERVER, else scripts/install-nats.sh.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
ACTION="$1"
DIR="$2"
BASE="${NATS_BASE_PORT:-4222}"
log() { echo "nats-cluster: $*" >&2; }

node_pid() {
    local pid_file="$DIR/n$1.pid"
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

case "$ACTION" in
start)
    NATS_SERVER="${NATS_SERVER:-$("$(dirname "$0")/install-nats.sh")}"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    ROUTES=""
    for i in 0 1 2; do
        ROUTES+="nats-route://127.0.0.1:$((BASE + 2000 + i)), "
    done
    SYNC=""
    if [[ -n "${NATS_SYNC_INTERVAL:-}" ]]; then
        SYNC="sync_interval: ${NATS_SYNC_INTERVAL}"
    fi
    URLS=()
    for i in 1 2 3; do
        if pid="$(node_pid "$i")"; then
            log "n$i already runs (pid $pid)"
        else
            cat >"$DIR/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((BASE + i - 1))
http: 127.0.0.1:$((BASE + 4000 + i - 1))
jetstream {
  store_dir: "$DIR/n$i"
  $SYNC
}
cluster {
  name: recwal
  listen: 127.0.0.1:$((BASE + 2000 + i - 1))
  routes: [ ${ROUTES%, } ]
}
CONF
            "$NATS_SERVER" -c "$DIR/n$i.conf" >>"$DIR/n$i.log" 2>&1 &
            echo $! >"$DIR/n$i.pid"
            log "n$i started (pid $!, log $DIR/n$i.log)"
        fi
        URLS+=("nats://127.0.0.1:$((BASE + i - 1))")
    done
    for i in 1 2 3; do
        port=$((BASE + 4000 + i - 1))
        for _ in $(seq 1 100); do
            if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
                break
            fi
            node_pid "$i" >/dev/null || { log "n$i exited; see $DIR/n$i.log"; exit 1; }
            sleep 0.2
        done
    done
    log "cluster up"
    (IFS=,; echo "${URLS[*]}")
    ;;
stop)
    for i in 1 2 3; do
        if pid="$(node_pid "$i")"; then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                kill -KILL "$pid"
            fi
            log "n$i stopped"
        fi
        rm -f "$DIR/n$i.pid"
    done
    ;;
status)
    for i in 1 2 3; do
        if pid="$(node_pid "$i")"; then echo "n$i running (pid $pid)"; else echo "n$i stopped"; fi
    done
    ;;
*) usage ;;
esac
