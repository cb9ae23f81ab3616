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

source scripts/lib/check-server.sh
start_check_server swagger-ui
SHOTS="${RECWAL_SCREENSHOTS:-$WORK/screenshots}"

RECWAL_URL="$BASE" RECWAL_TOKEN="$TOKEN" RECWAL_CHROMIUM="$CHROMIUM" RECWAL_SCREENSHOTS="$SHOTS" \
    "$VENV/bin/python" tests/python/test_swagger_ui.py || {
    echo "swagger-ui-check FAILED (screenshots and server log in $WORK)" >&2
    KEEP=1
    exit 1
}
echo "swagger-ui-check: Swagger UI works with the token rules (screenshots: $SHOTS)"
