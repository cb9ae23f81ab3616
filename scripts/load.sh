#!/usr/bin/env bash
# HTTP load figures for docs/BENCHMARKS.md ("The HTTP API under load"), in
# one run on one machine:
#
#   1. ML-100k (scripts/fetch-movielens.sh) imported into a fresh data
#      directory with the release `recwal import`;
#   2. the in-process `recommend` rate on that directory, 1 and 2 threads
#      (bench/benches/recommend_rate.rs): the reference;
#   3. `recwal serve` (release, default configuration) on it, and wrk
#      (Debian package `wrk`, installed with apt when missing):
#      `GET /v1/users/{user}/recommend?n=10` at 2, 8 and 64 connections,
#      `POST /v1/event` (one event, default group commit) at 64 connections,
#      `POST /v1/events` (100 events, each with its own id) at 8 and 32
#      connections (under the default `batch` durability a call waits for
#      the group commit's timer, 2 ms, so 8 closed-loop writers leave the
#      cores idle between groups; 32 keep the apply turn busy);
#   4. a markdown table on stdout: throughput, p50 / p99, and HTTP
#      `recommend` throughput ÷ the in-process rate on the same cores.
#
# Any non-2xx answer, socket error or timeout fails the run.
# RECWAL_LOAD_SECONDS (default 10) per case; RECWAL_LOAD_PORT (18089).
# wrk and the server share the machine's cores, as they would on a
# one-machine deployment; the in-process rate has them to itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${RECWAL_LOAD_SECONDS:-10}"
port="${RECWAL_LOAD_PORT:-18089}"
say() { echo "load: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

source scripts/lib/wrk.sh
ensure_wrk

ratings="$(scripts/fetch-movielens.sh)"
cargo build --quiet --locked --release -p recwal-server --bin recwal
bin="${CARGO_TARGET_DIR:-$root/target}/release/recwal"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"
say "importing $ratings into $data"
"$bin" import "$ratings" --data-dir "$data" >&2

say "in-process recommend rate (${seconds} s per thread count)"
inprocess="$(RECWAL_RATE_DATA_DIR="$data" RECWAL_RATE_USERS=943 RECWAL_RATE_THREADS=1,2 \
    RECWAL_RATE_SECONDS="$seconds" cargo bench --quiet --locked --bench recommend_rate 2>/dev/null | grep '^{')"
echo "$inprocess" >&2

"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' "127.0.0.1:$port/readyz" | grep -q '^200$' && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "the server exited before it was ready"; }
    sleep 0.1
done

# run NAME CONNECTIONS SCRIPT: wrk's report into $work/NAME.txt.
run() { wrk_case "$1" "http://127.0.0.1:$port" "$2" "$3" "$work"; }
# Warm-up, not reported.
RECWAL_LOAD_RUN=warm wrk -t2 -c8 -d2s -s scripts/load/recommend.lua "http://127.0.0.1:$port" >/dev/null
run recommend-2 2 recommend.lua
run recommend-8 8 recommend.lua
run recommend-64 64 recommend.lua
run event-64 64 event.lua
run events-8 8 events.lua
run events-32 32 events.lua

kill -TERM "$server_pid"
wait "$server_pid" || fail "the server exited with $? on SIGTERM"
server_pid=""

python3 - "$work" "$inprocess" <<'PY'
import json, re, sys

work, inprocess = sys.argv[1], sys.argv[2]
rates = {row["threads"]: row for row in map(json.loads, inprocess.splitlines())}
best = max(row["rate"] for row in rates.values())

sys.path.insert(0, "scripts/lib")
from wrk_report import parse as parse_in  # noqa: E402


def parse(name):
    return parse_in(work, name)

print("| case | connections | requests/s | events/s | p50 ms | p99 ms | p99 ÷ p50 | ÷ in-process |")
print("|---|---|---|---|---|---|---|---|")
for threads, row in sorted(rates.items()):
    print(f"| in-process `recommend` | {threads} thread(s) | {row['rate']:.0f} | | {row['p50_us']/1000:.2f} | {row['p99_us']/1000:.2f} | {row['p99_us']/max(row['p50_us'],1):.1f} | |")
for name, label, connections, events in [
    ("recommend-2", "HTTP `recommend`", 2, 0),
    ("recommend-8", "HTTP `recommend`", 8, 0),
    ("recommend-64", "HTTP `recommend`", 64, 0),
    ("event-64", "`POST /v1/event` (1 event)", 64, 1),
    ("events-8", "`POST /v1/events` (100 events)", 8, 100),
    ("events-32", "`POST /v1/events` (100 events)", 32, 100),
]:
    rate, p50, p99 = parse(name)
    ratio = f"{rate / best:.2f}" if events == 0 else ""
    per_s = f"{rate * events:.0f}" if events else ""
    print(f"| {label} | {connections} | {rate:.0f} | {per_s} | {p50:.2f} | {p99:.2f} | {p99 / p50:.1f} | {ratio} |")
print()
print(f"÷ in-process: HTTP requests/s divided by the best in-process rate ({best:.0f}/s).")
PY
