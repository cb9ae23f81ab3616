#!/usr/bin/env bash
# Replica figures for docs/BENCHMARKS.md ("Replicas on NATS JetStream"), in
# one run on one machine, each beside its single-node reference:
#
#   1. single node: the release `recwal serve` (no cluster) on a fresh data
#      directory; wrk `POST /v1/event` (64 connections), `POST /v1/events`
#      (100 events a request, 8 connections), then `GET .../recommend`
#      (8 connections) on what was ingested;
#   2. a local 3-node JetStream cluster (scripts/nats-cluster.sh, stream
#      replicas 3) and three release `recwal serve --cluster` nodes on fresh
#      data directories; the same ingest cases through node 1, recommend on
#      each node in turn; per node, the publish-to-applied delay p50 / p99
#      from `recwal_cluster_apply_delay_seconds` (bucket bounds, linear
#      within a bucket as Prometheus' histogram_quantile);
#   3. restart: node 3 is SIGKILLed, more batches go through node 1, node 3
#      is started again; the time until it answers /readyz 200 with the
#      stream's last sequence applied;
#   4. join: a fourth node on an empty data directory starts from the
#      snapshot bucket (the nodes publish one every 5 s, at a digest point
#      another node agreed on) and reads the rest of the stream: the time
#      until it is ready, and until it applied the stream's last sequence
#      (the path a node behind the stream's retention re-seeds by).
#
# wrk (Debian package) and every process share the machine's cores.
# RECWAL_BENCH_SECONDS (default 10) per wrk case. Any non-2xx answer, socket
# error or timeout fails the run. Prints a markdown table.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${RECWAL_BENCH_SECONDS:-10}"
say() { echo "cluster-bench: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

source scripts/lib/wrk.sh
ensure_wrk
NATS_SERVER="$(scripts/install-nats.sh)"
export NATS_SERVER
cargo build --quiet --locked --release -p recwal-server --bin recwal
bin="${CARGO_TARGET_DIR:-$root/target}/release/recwal"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    scripts/nats-cluster.sh stop "$work/nats" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# serve NAME PORT [FLAGS...]: starts a node, waits until it is ready.
serve() {
    local name="$1" port="$2"
    shift 2
    "$bin" serve --data-dir "$work/$name" --listen "127.0.0.1:$port" "$@" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    eval "pid_$name=$pid"
    for _ in $(seq 1 600); do
        curl -s -o /dev/null --max-time 2 -w '%{http_code}' "127.0.0.1:$port/readyz" | grep -q '^200$' && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/$name.log" >&2; fail "$name exited before it was ready"; }
        sleep 0.1
    done
    fail "$name not ready after 60 s"
}

# run NAME URL CONNECTIONS SCRIPT: wrk's report into $work/NAME.txt.
run() { wrk_case "$1" "$2" "$3" "$4" "$work"; }

# applied_seq PORT: the node's applied stream sequence (from /readyz).
applied_seq() {
    curl -s --max-time 2 "127.0.0.1:$1/readyz" | python3 -c \
        'import json,sys; b=json.load(sys.stdin); print((b.get("cluster") or {}).get("stream_seq_applied", -1))'
}

say "single node"
serve single 18190
run single-event-64 http://127.0.0.1:18190 64 event.lua
run single-events-8 http://127.0.0.1:18190 8 events.lua
run single-recommend-8 http://127.0.0.1:18190 8 recommend.lua
kill -TERM "$pid_single"
wait "$pid_single" || fail "the single node exited with $? on SIGTERM"

say "3-node NATS JetStream cluster"
urls="$(scripts/nats-cluster.sh start "$work/nats")"
cluster_flags=(--cluster "$urls" --set cluster.snapshot_interval_ms=5000)
for node in 1 2 3; do
    serve "node$node" "1819$node" "${cluster_flags[@]}"
done
run cluster-event-64 http://127.0.0.1:18191 64 event.lua
run cluster-events-8 http://127.0.0.1:18191 8 events.lua
# Every node has applied everything before it is asked for recommendations.
last="$(applied_seq 18191)"
for node in 2 3; do
    for _ in $(seq 1 600); do
        [[ "$(applied_seq "1819$node")" -ge "$last" ]] && break
        sleep 0.1
    done
done
for node in 1 2 3; do
    run "cluster-recommend-8-node$node" "http://127.0.0.1:1819$node" 8 recommend.lua
done
for node in 1 2 3; do
    curl -s "127.0.0.1:1819$node/metrics" | grep '^recwal_cluster_apply_delay_seconds' >"$work/delay-node$node.txt"
done

say "restart: node 3 killed, 2 s of batches through node 1, node 3 started again"
kill -KILL "$pid_node3"
wait "$pid_node3" 2>/dev/null || true
RECWAL_LOAD_RUN="gap-$$" wrk -t1 -c4 -d2s -s scripts/load/events.lua http://127.0.0.1:18191 >/dev/null
last="$(applied_seq 18191)"
started="$(date +%s.%N)"
serve node3 18193 "${cluster_flags[@]}"
ready="$(date +%s.%N)"
while [[ "$(applied_seq 18193)" -lt "$last" ]]; do sleep 0.01; done
caught_up="$(date +%s.%N)"

say "join: node 4 on an empty data dir, from the snapshot bucket"
# metric PORT NAME: a metric without labels.
metric() { curl -s --max-time 2 "127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'; }
for _ in $(seq 1 1200); do
    published=0
    for node in 1 2 3; do
        seq_published="$(metric "1819$node" recwal_cluster_snapshot_published_seq)"
        [[ "${seq_published:-0}" -gt 0 ]] && published=1
    done
    [[ "$published" == 1 ]] && break
    sleep 0.1
done
[[ "$published" == 1 ]] || fail "no node published a snapshot within 120 s"
join_last="$(applied_seq 18191)"
join_started="$(date +%s.%N)"
serve node4 18194 "${cluster_flags[@]}"
join_ready="$(date +%s.%N)"
while [[ "$(applied_seq 18194)" -lt "$join_last" ]]; do sleep 0.01; done
join_caught_up="$(date +%s.%N)"
seeded="$(metric 18194 recwal_cluster_seeded_from_seq)"
[[ "${seeded:-0}" -gt 0 ]] || fail "node 4 did not start from the snapshot bucket"
snapshot_bytes="$(du -b "$work/node4/snapshots" | awk '{ print $1 }')"

python3 - "$work" "$started" "$ready" "$caught_up" "$last" \
    "$join_started" "$join_ready" "$join_caught_up" "$join_last" "$seeded" "$snapshot_bytes" <<'PY'
import re, sys

work, started, ready, caught_up, last = sys.argv[1], *map(float, sys.argv[2:5]), int(sys.argv[5])
join_started, join_ready, join_caught_up = map(float, sys.argv[6:9])
join_last, seeded, snapshot_bytes = map(int, sys.argv[9:12])

sys.path.insert(0, "scripts/lib")
from wrk_report import parse as parse_in  # noqa: E402


def parse(name):
    return parse_in(work, name)

def quantile(buckets, q):
    """histogram_quantile: linear within the bucket holding rank q·count."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0
    for upper, cumulative in buckets:
        if cumulative >= rank:
            if upper == float("inf"):
                return float("inf")  # beyond the last bound: printed as "> bound"
            inside = cumulative - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 0)
        lower, below = upper, cumulative
    return lower

print("| case | single node | 3-node cluster |")
print("|---|---|---|")
for label, single, cluster, events in [
    ("`POST /v1/event` (1 event), 64 connections", "single-event-64", "cluster-event-64", 1),
    ("`POST /v1/events` (100 events), 8 connections", "single-events-8", "cluster-events-8", 100),
]:
    cells = []
    for name in (single, cluster):
        rate, p50, p99 = parse(name)
        cells.append(f"{rate * events:,.0f} events/s, p50 {p50:.2f} / p99 {p99:.2f} ms")
    print(f"| {label} | {cells[0]} | {cells[1]} (through node 1) |")
rate, p50, p99 = parse("single-recommend-8")
nodes = []
for node in (1, 2, 3):
    r, a, b = parse(f"cluster-recommend-8-node{node}")
    nodes.append(f"node {node}: {r:,.0f} req/s, p50 {a:.2f} / p99 {b:.2f} ms")
print(f"| `GET .../recommend`, 8 connections | {rate:,.0f} req/s, p50 {p50:.2f} / p99 {p99:.2f} ms | {'; '.join(nodes)} |")
delays = []
for node in (1, 2, 3):
    buckets = []
    for line in open(f"{work}/delay-node{node}.txt"):
        m = re.match(r'recwal_cluster_apply_delay_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            upper = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets.append((upper, int(m.group(2))))
    def show(q):
        value = quantile(buckets, q)
        return f"> {buckets[-2][0] * 1000:.0f}" if value == float("inf") else f"{value * 1000:.1f}"

    delays.append(f"node {node}: p50 {show(0.5)} / p99 {show(0.99)} ms ({buckets[-1][1]:,} messages)")
print(f"| publish-to-applied delay (the ingest cases above) | — | {'; '.join(delays)} |")
print(
    f"| restart after SIGKILL (node 3; stream at {last:,}) | — | ready in {ready - started:.2f} s, "
    f"caught up in {caught_up - started:.2f} s |"
)
print(
    f"| join on an empty data dir (node 4; stream at {join_last:,}) | — | from the bucket's snapshot at sequence "
    f"{seeded:,} ({snapshot_bytes / 1e6:.1f} MB): ready in {join_ready - join_started:.2f} s, "
    f"caught up in {join_caught_up - join_started:.2f} s |"
)
PY
