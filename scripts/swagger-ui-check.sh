#!/usr/bin/env bash
# Swagger UI (/docs) in a real browser: Playwright for Python (pinned, in
# .venv-ui/, git-ignored) drives Debian's chromium (installed with
# apt when missing; RECWAL_CHROMIUM overrides the path) against a fresh
# `recwal serve` with a token (tests/python/test_swagger_ui.py): the page
# loads without the token, the document and every "Try it out" call carry
# it, no call does once logged out in Authorize, no console error.
# Screenshots go to $RECWAL_SCREENSHOTS (default: the scratch dir, kept on
# failure or with KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
VENV=.venv-ui
CHROMIUM="${RECWAL_CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "playwright==$PLAYWRIGHT_VERSION"
fi

cargo build --quiet --locked -p recwal-server --bin recwal
BIN="${CARGO_TARGET_DIR:-target}/debug/recwal"

WORK="$(mktemp -d)"
SHOTS="${RECWAL_SCREENSHOTS:-$WORK/screenshots}"
TOKEN="swagger-ui-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "swagger-ui-check: kept $WORK (screenshots, server log)" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

mkfifo "$WORK/stdout"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --log-format json --token "$TOKEN" \
    >"$WORK/stdout" 2>"$WORK/server.log" &
SERVER_PID=$!
exec 3<"$WORK/stdout"
read -r -t 60 first <&3
cat <&3 >>"$WORK/server.log" &
BASE="http://${first#listening on }"

RECWAL_URL="$BASE" RECWAL_TOKEN="$TOKEN" RECWAL_CHROMIUM="$CHROMIUM" RECWAL_SCREENSHOTS="$SHOTS" \
    "$VENV/bin/python" tests/python/test_swagger_ui.py || {
    echo "swagger-ui-check FAILED (screenshots and server log in $WORK)" >&2
    KEEP=1
    exit 1
}
echo "swagger-ui-check: Swagger UI works with the token rules (screenshots: $SHOTS)"
