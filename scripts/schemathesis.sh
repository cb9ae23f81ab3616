#!/usr/bin/env bash
# Runs schemathesis (property-based API testing) against `recwal serve`'s own
# /openapi.json with every check (`--checks all`), twice: with the bearer
# token (every operation reachable) and without it (every protected operation
# must answer the declared 401). Exits non-zero on any failure or error.
#
# Starts the server itself: a fresh temporary data dir, a free loopback port,
# a token, a few seeded events. schemathesis is installed (pinned) into
# .venv-schemathesis/ (git-ignored) on first use.
#
# Short mode by default (RECWAL_SCHEMATHESIS_EXAMPLES=40 cases per operation
# and phase; ~1 minute on 2 cores; scripts/test.sh runs it with a fixed seed
# so that CI is repeatable); long mode: RECWAL_SCHEMATHESIS_EXAMPLES=200 (or
# more). RECWAL_SCHEMATHESIS_SEED fixes the seed (default: random); reports (JUnit) go to
# $RECWAL_SCHEMATHESIS_REPORTS (default: a temporary dir, kept on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${RECWAL_SCHEMATHESIS_EXAMPLES:-40}"
SEED="${RECWAL_SCHEMATHESIS_SEED:-$RANDOM}"
VENV=.venv-schemathesis

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

source scripts/lib/check-server.sh
start_check_server schemathesis
REPORTS="${RECWAL_SCHEMATHESIS_REPORTS:-$WORK/reports}"
mkdir -p "$REPORTS"
# A fresh machine has Python but maybe no curl: `fetch URL [BODY]` prints
# the answer's body and fails on any non-2xx status.
fetch() {
    python3 - "$TOKEN" "$@" <<'PY'
import sys, urllib.request
token, url = sys.argv[1], sys.argv[2]
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
with urllib.request.urlopen(request, timeout=10) as answer:
    sys.stdout.buffer.write(answer.read())
PY
}
for _ in $(seq 600); do
    if fetch "$BASE/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.1
done
fetch "$BASE/readyz" >/dev/null

# Some state, so recommendations and similar items are more than empty lists.
fetch "$BASE/v1/events" \
    '{"events":[{"user":"alice","item":"book","kind":"purchase"},{"user":"alice","item":"pen","kind":"click"},
        {"user":"bob","item":"book","kind":"view"},{"user":"bob","item":"lamp","kind":"rating","value":4.5}]}' >/dev/null

status=0
run_pass() {
    local name="$1" location="$2"
    shift 2
    echo "== schemathesis pass '$name': $EXAMPLES examples per operation, seed $SEED"
    if ! SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts" \
        "$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "$location" "$@" \
        --checks all --max-examples "$EXAMPLES" --seed "$SEED" --workers 2 \
        --generation-database none --no-color \
        --report junit --report-junit-path "$REPORTS/$name.xml"; then
        echo "schemathesis pass '$name' FAILED (seed $SEED; JUnit report $REPORTS/$name.xml)" >&2
        status=1
        KEEP=1
    fi
}
# The document itself is protected: the pass without a token reads it with
# one (-H applies to every request, so that pass loads a saved copy).
fetch "$BASE/openapi.json" >"$WORK/openapi.json"
run_pass token "$BASE/openapi.json" -H "Authorization: Bearer $TOKEN"
run_pass no-token "$WORK/openapi.json" --url "$BASE"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "schemathesis: the server died during the run" >&2
    status=1
fi
if [[ $status -eq 0 ]]; then
    echo "schemathesis: both passes green ($EXAMPLES examples per operation, seed $SEED)"
fi
exit $status
