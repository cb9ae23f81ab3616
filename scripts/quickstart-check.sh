#!/usr/bin/env bash
# Runs the README's quickstart commands, in the README's order, in one fresh
# directory: the server on its embedded default (start, the README's curl
# lines, stop), then the library example on the same ./recwal-data, then the
# quick evaluation; any error fails the check. scripts/test.sh runs it after
# the tests, reusing the binaries they built (debug): each `cargo run`
# command of the README is checked to be in README.md word for word and run
# as the binary it builds; the curl lines are taken from README.md itself.
#
# Needs curl, and 127.0.0.1:8089 free (the server's default address).
# RECWAL_QUICKSTART_PROFILE=release uses target/release instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
profile="${RECWAL_QUICKSTART_PROFILE:-debug}"
readme="$root/README.md"

say() { echo "quickstart-check: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

# The README commands this check stands for, and the binary each builds.
server_cmd='cargo run --release -p recwal-server -- serve'
example_cmd='cargo run --example quickstart -- ./recwal-data'
eval_cmd='cargo run --release --example evaluate -- examples/data/sample.inter'
for cmd in "$server_cmd" "$example_cmd" "$eval_cmd"; do
    grep -qF -- "$cmd" "$readme" || fail "README.md no longer says \`$cmd\`: update this check with it"
done
# Each curl line of the Quickstart section, with its continuation lines joined.
mapfile -t curls < <(awk '
    /^## Quickstart/ { on = 1; next }
    /^## / { on = 0 }
    on && (cont || /^curl /) {
        line = $0; cont = sub(/\\$/, "", line); cmd = cmd line
        if (!cont) { print cmd; cmd = "" }
    }' "$readme")
[[ ${#curls[@]} -eq 2 ]] || fail "expected two curl lines in README.md's Quickstart, found ${#curls[@]}"

profile_flag=()
[[ "$profile" == release ]] && profile_flag=(--release)
(cd "$root" && cargo build --quiet --locked "${profile_flag[@]}" -p recwal-server --bin recwal \
    && cargo build --quiet --locked "${profile_flag[@]}" -p recwal --example quickstart --example evaluate)
bin="$target/$profile/recwal"
examples="$target/$profile/examples"

if curl -s -o /dev/null --max-time 2 127.0.0.1:8089/healthz; then
    fail "something already answers on 127.0.0.1:8089; stop it first"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
say "in $work"

# 1. The server on its embedded default.
"$bin" serve >server.log 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' 127.0.0.1:8089/readyz | grep -q '^200$' && break
    kill -0 "$server_pid" 2>/dev/null || { cat server.log >&2; fail "the server exited before it was ready"; }
    sleep 0.1
done
curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:8089/readyz | grep -q '^200$' || { cat server.log >&2; fail "not ready after 60 s"; }
ingest="$(bash -c "${curls[0]} -w '\n%{http_code}'")"
[[ "${ingest##*$'\n'}" == 200 ]] || fail "ingest answered: $ingest"
recommend="$(bash -c "${curls[1]} -w '\n%{http_code}'")"
[[ "${recommend##*$'\n'}" == 200 ]] || fail "recommend answered: $recommend"
grep -q '"lamp"' <<<"$recommend" || fail "alice's user_cf recommendations should hold lamp (bob's): $recommend"
say "first start, three events: $(du -sh recwal-data | cut -f1) in recwal-data"
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
[[ $rc -eq 0 ]] || { cat server.log >&2; fail "the server exited with $rc on SIGTERM"; }

# 2. The library example, on the directory the server just used.
"$examples/quickstart" ./recwal-data >quickstart.out 2>&1 || { cat quickstart.out >&2; fail "the quickstart example failed"; }
grep -q 'events in the state' quickstart.out || { cat quickstart.out >&2; fail "unexpected quickstart output"; }

# 3. The quick evaluation, on the sample that ships in the repository.
"$examples/evaluate" "$root/examples/data/sample.inter" >evaluate.out 2>&1 || { cat evaluate.out >&2; fail "the evaluation failed"; }
grep -q '^| blend |' evaluate.out || { cat evaluate.out >&2; fail "the evaluation printed no blend row"; }
say "ok: server, library example and evaluation in one fresh directory"
